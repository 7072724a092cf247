//! Runs psdiff's fuzz targets for a while: `cargo bench --bench fuzz --
//! SECONDS_PER_TARGET`. Prints the executions per target; writes any
//! crashing input to fuzz/crashes/ and exits 1.

use std::time::Duration;

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let crashes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/crashes");
    let mut found = 0;
    for target in psdiff::fuzz::targets() {
        let round = psdiff::fuzz::run(&target, Duration::from_secs(seconds), u64::MAX, seed);
        println!(
            "{:12} {:>12} executions  {} crashes",
            round.target,
            round.executions,
            round.crashes.len()
        );
        for (i, input) in round.crashes.iter().enumerate() {
            std::fs::create_dir_all(&crashes).unwrap();
            std::fs::write(crashes.join(format!("{}-{i}", round.target)), input).unwrap();
            found += 1;
        }
    }
    println!("seed {seed}");
    if found > 0 {
        eprintln!("{found} crashing inputs written to {}", crashes.display());
        std::process::exit(1);
    }
}
