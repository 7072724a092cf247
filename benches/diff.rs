//! The diff engine alone, in process: `cargo bench --bench diff -- OLD NEW [RUNS]`
//! prints the median and minimum time of `psdiff::line_diff::diff` over the two
//! files' lines, cold (caches evicted before each run, as for `show`, which
//! runs once a minute in a fresh process) and warm (run after run).
//! bench/show.py runs it beside a dump of live processes.

use std::time::Instant;

/// Larger than the last-level cache of the machines we run on.
const EVICT_BYTES: usize = 64 << 20;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [old, new, rest @ ..] = args.as_slice() else {
        eprintln!("usage: cargo bench --bench diff -- OLD NEW [RUNS]");
        return;
    };
    let runs: usize = rest.first().and_then(|r| r.parse().ok()).unwrap_or(15);
    let old = std::fs::read_to_string(old).expect("OLD is readable text");
    let new = std::fs::read_to_string(new).expect("NEW is readable text");
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let mut evict = vec![0u8; EVICT_BYTES];
    for (mode, cold) in [("cold", true), ("warm", false)] {
        let mut times: Vec<f64> = (0..runs)
            .map(|run| {
                if cold {
                    for byte in evict.iter_mut().step_by(64) {
                        *byte = byte.wrapping_add(run as u8);
                    }
                }
                let started = Instant::now();
                std::hint::black_box(psdiff::line_diff::diff(&old, &new));
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{mode}-median-ms {:.3} {mode}-min-ms {:.3}",
            times[times.len() / 2] * 1e3,
            times[0] * 1e3
        );
    }
    std::hint::black_box(&evict);
}
