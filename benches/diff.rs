//! The diff engine alone, in process: `cargo bench --bench diff -- OLD NEW [RUNS]`
//! prints the median and the minimum time of `psdiff::diff::diff` over the two files'
//! lines. bench/show.py runs it beside a dump of live processes.

use std::time::Instant;

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
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let changes = psdiff::diff::diff(&old, &new);
            std::hint::black_box(changes);
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "diff-median-ms {:.3} diff-min-ms {:.3}",
        times[times.len() / 2] * 1e3,
        times[0] * 1e3
    );
}
