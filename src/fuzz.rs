//! A mutation fuzzer on stable Rust for the parsers that read what others
//! write: /proc stat and status (any local user shapes their comm), the
//! TOML rules, the baseline, the check rules and ranges, the diff, and the
//! API's request bodies.
//! Each target gets seeds mutated at random; a panic is a crash. `psdiff`
//! runs it through `fuzz/run.sh`; the tests run a short, seeded round.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// What a round found for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub target: &'static str,
    pub executions: u64,
    /// Inputs that panicked.
    pub crashes: Vec<Vec<u8>>,
}

/// A parser under test and the inputs it starts from.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    pub run: fn(&[u8]),
}

pub fn targets() -> Vec<Target> {
    let stat = b"2361 (cat) R 2356 2356 1033 0 -1 4194304 96 0 0 0 7 3 0 0 20 -5 1 0 19129 3133440 375 18446744073709551615 0 0\n";
    vec![
        Target {
            name: "proc-stat",
            seeds: vec![stat.to_vec(), b"7 (a) b) (\nc) S 1 7 7 0 -1 2097216 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0".to_vec()],
            run: |input| {
                let _ = crate::snapshot::parse::parse_stat(input);
            },
        },
        Target {
            name: "proc-status",
            seeds: vec![b"Name:\tx\nUid:\t1000\t0\t1000\t0\nGid:\t5\t6\t7\t8\nGroups:\n".to_vec()],
            run: |input| {
                let _ = crate::snapshot::parse::parse_status(input);
                let _ = crate::snapshot::parse::trim_cmdline(input);
            },
        },
        Target {
            name: "rules-toml",
            seeds: vec![
                crate::config::DEFAULTS_TOML.as_bytes().to_vec(),
                b"[[check]]\nname = \"c\"\nmatch = { command = \"*\", user = \"root\" }\nper = \"user\"\ncount = \"-2\"\n".to_vec(),
            ],
            run: |input| {
                let text = String::from_utf8_lossy(input);
                if let Ok(parsed) = crate::config::parse("fuzz.toml", &text) {
                    let config = crate::config::Config {
                        rules: parsed.rules,
                        checks: parsed.checks,
                        ..Default::default()
                    };
                    let users = crate::snapshot::UserNames::from_nss();
                    let _ = crate::rules::RuleSet::compile(&config, &users);
                    let _ = crate::check::compile_all(&config, &users);
                }
            },
        },
        Target {
            name: "baseline",
            seeds: vec![b"root  {user=root}\n  INIT  {user=root}\n    /usr/sbin/cron -f  {user=root}\n".to_vec()],
            run: |input| {
                if let Ok(b) = crate::baseline::parse(std::path::Path::new("fuzz.db"), input.to_vec()) {
                    let lines: Vec<&str> = b.lines().collect();
                    let _ = crate::line_diff::diff(&lines, &lines[lines.len() / 2..]);
                }
            },
        },
        Target {
            name: "check-rules",
            seeds: vec![b"tor:1-1".to_vec(), b"@10:20".to_vec(), b"~:10".to_vec(), b"sshd:1-".to_vec(), b"@1.5M:2GiB".to_vec(), b"5m:".to_vec(), b"tcp:[::1]:25".to_vec(), b"500ms".to_vec()],
            run: |input| {
                let text = String::from_utf8_lossy(input);
                let _ = crate::check::parse_spec(&text);
                let _ = crate::check::range::Bounds::parse(&text);
                let _ = crate::check::range::NagiosRange::parse(&text);
                if let Ok(listen) = crate::check::port::Listen::parse(&text) {
                    let _ = crate::check::port::Probe::address(None, Some(&listen));
                }
                let _ = crate::check::port::parse_timeout(&text);
                let _ = crate::check::restarts::parse_window(&text);
                for resource in crate::check::Resource::ALL {
                    if let Ok(range) = resource.range(&text) {
                        let _ = range.alerts(1.0);
                        let _ = resource.show(range.start.unwrap_or(0.0).abs());
                    }
                }
            },
        },
        Target {
            name: "diff",
            seeds: vec![b"r\n a\n  b\n a\n  c\n d\n".to_vec()],
            run: |input| {
                // The first half against the second, as two dumps.
                let text = String::from_utf8_lossy(input);
                let lines: Vec<&str> = text.lines().collect();
                let (old, new) = lines.split_at(lines.len() / 2);
                let changes = crate::line_diff::diff(old, new);
                let missing = changes.iter().filter(|c| c.kind == crate::line_diff::Kind::Missing).count();
                assert_eq!(old.len() - missing + (changes.len() - missing), new.len());
            },
        },
        Target {
            name: "api-bodies",
            seeds: vec![
                br#"{"pid": 1234, "signal": "HUP"}"#.to_vec(),
                br#"{"pid": 1234, "priority": -5}"#.to_vec(),
                br#"{"cmd": ["/usr/bin/systemctl", "status", "nginx"]}"#.to_vec(),
                b"pid,name,open_files".to_vec(),
            ],
            run: |input| {
                // Every body to every route, as a client may send it; and
                // the same bytes as a ?fields= list.
                use crate::serve::body;
                let _ = body::signal_request(input);
                let _ = body::renice_request(input);
                if let Ok(run) = body::run_request(input) {
                    assert!(!run.cmd.is_empty());
                }
                let _ = crate::serve::process::FieldSet::parse(&String::from_utf8_lossy(input));
            },
        },
    ]
}

/// xorshift64*: small, fast, and seedable, which is all a mutator needs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to these formats, to be dropped in.
const INTERESTING: &[&[u8]] = &[
    b"(",
    b")",
    b" ",
    b"\n",
    b"\t",
    b"\0",
    b"-",
    b":",
    b"@",
    b"~",
    b"=",
    b"\"",
    b"'",
    b"[",
    b"]",
    b"{",
    b"}",
    b"  {user=",
    b"[[rule]]",
    b"[[check]]",
    b"\"pid\": ",
    b"\"signal\": ",
    b"\"priority\": ",
    b"\"cmd\": [",
    b"1e999",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"-1",
    b"\xff",
    b"\xc3",
    b"\\u0000",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                input.splice(at..at, piece.iter().copied());
            }
            3 => {
                let seed = &seeds[rng.below(seeds.len())];
                let from = rng.below(seed.len());
                let end = (from + rng.below(64)).min(seed.len());
                input.splice(at..at, seed[from..end].iter().copied());
            }
            4 if !input.is_empty() => {
                let from = rng.below(input.len());
                let end = (from + rng.below(32)).min(input.len());
                let copy = input[from..end].to_vec();
                input.splice(at..at, copy);
            }
            _ => input.insert(at, rng.next() as u8),
        }
    }
    input.truncate(1 << 16);
}

/// Fuzzes `target` until `budget` is spent or `max_runs` inputs are tried.
pub fn run(target: &Target, budget: Duration, max_runs: u64, seed: u64) -> Round {
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let mut round = Round {
        target: target.name,
        executions: 0,
        crashes: Vec::new(),
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while round.executions < max_runs && started.elapsed() < budget {
        let mut input = target.seeds[rng.below(target.seeds.len())].clone();
        mutate(&mut rng, &mut input, &target.seeds);
        round.executions += 1;
        if catch_unwind(AssertUnwindSafe(|| (target.run)(&input))).is_err() {
            round.crashes.push(input);
        }
    }
    std::panic::set_hook(hook);
    round
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_seeded_round_finds_no_crash() {
        for target in targets() {
            let round = run(&target, Duration::from_secs(5), 3_000, 0x5eed);
            assert!(
                round.crashes.is_empty(),
                "{}: {:?}",
                target.name,
                round
                    .crashes
                    .first()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
            );
            assert_eq!(round.executions, 3_000, "{}", target.name);
        }
    }
}
