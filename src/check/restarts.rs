//! How often a daemon was replaced: `restarts = "0-2"` with `within =
//! "1h"`. systemd's `Restart=` brings a killed daemon back in ~100 ms, so
//! a list of processes never shows the death; the pids and start times
//! do. Each run remembers the check's main processes (those whose parent
//! it does not match) in a ledger under `--state-dir`; when one is gone
//! and another has come, or the unit's own NRestarts went up, that is a
//! restart. The ledger is small (events older than a week go, at most
//! 1,000 per check), written atomically, and safe to delete: the next run
//! starts counting afresh.
//!
//! When `psdiff watch` runs, its journal saw every exit: a restart is then
//! each exit (or loss) of a main process's program, in its unit and as
//! its user, that a start of it followed, however fast `Restart=` was.
//! The count is the larger of the journal's and the ledger's (the
//! watcher may have started within the window).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "restarts.json";
const KEEP_SECONDS: f64 = 7.0 * 86400.0;
const MAX_EVENTS: usize = 1000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    checks: BTreeMap<String, CheckState>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct CheckState {
    /// The main processes last seen, as (pid, start time in ticks).
    seen: Vec<(u32, u64)>,
    /// systemd's NRestarts of each unit last seen.
    units: BTreeMap<String, u64>,
    /// When each restart was seen (seconds since the epoch).
    events: Vec<f64>,
}

/// The ledger of one run.
pub struct Ledger {
    path: PathBuf,
    state: State,
    now: f64,
    /// The watcher's journal, while a watcher writes it.
    journal: Option<crate::journal::Journal>,
}

/// What a main process is across its restarts: its program, title, unit
/// and user (a new pid and start time each time).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signature {
    pub exe: String,
    pub argv: String,
    pub unit: Option<String>,
    pub uid: u32,
}

impl Ledger {
    /// Reads the ledger in `dir`; a missing or damaged one starts afresh
    /// (damage is said on stderr).
    pub fn open(dir: &Path) -> Ledger {
        let path = dir.join(FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                eprintln!(
                    "psdiff: {} is damaged ({e}); counting restarts afresh",
                    path.display()
                );
                State::default()
            }),
            Err(_) => State::default(),
        };
        let now = crate::clock::unix_now();
        Ledger {
            path,
            state,
            now,
            journal: None,
        }
    }

    /// Counts from the watcher's journal at `path` too, when a watcher
    /// is writing it.
    pub fn with_journal(mut self, path: &Path) -> Ledger {
        match crate::journal::Journal::open_to_read(path) {
            Ok(Some(journal))
                if journal
                    .watcher()
                    .ok()
                    .flatten()
                    .is_some_and(|w| w.running()) =>
            {
                self.journal = Some(journal);
            }
            Ok(_) => {}
            Err(e) => eprintln!("psdiff: {e}; counting restarts without the watcher"),
        }
        self
    }

    /// The watcher's journal, while a watcher writes it (storm checks
    /// count from it too).
    pub fn journal(&self) -> Option<&crate::journal::Journal> {
        self.journal.as_ref()
    }

    /// Records what `check` sees now, and returns how many restarts fall
    /// within the last `within` seconds.
    pub fn observe(
        &mut self,
        check: &str,
        mut mains: Vec<(u32, u64)>,
        units: BTreeMap<String, u64>,
        within: f64,
        signatures: &[Signature],
    ) -> usize {
        let journaled = self.journaled(signatures, within);
        mains.sort_unstable();
        let first = !self.state.checks.contains_key(check);
        let entry = self.state.checks.entry(check.to_string()).or_default();
        if !first {
            let gone = entry.seen.iter().filter(|p| !mains.contains(p)).count();
            let came = mains.iter().filter(|p| !entry.seen.contains(p)).count();
            let replaced = gone.min(came);
            let by_unit: u64 = units
                .iter()
                .filter_map(|(unit, &n)| n.checked_sub(*entry.units.get(unit)?))
                .sum();
            let restarts = (replaced as u64).max(by_unit);
            for _ in 0..restarts.min(MAX_EVENTS as u64) {
                entry.events.push(self.now);
            }
        }
        entry.seen = mains;
        entry.units = units;
        let now = self.now;
        entry.events.retain(|&t| now - t <= KEEP_SECONDS);
        let excess = entry.events.len().saturating_sub(MAX_EVENTS);
        entry.events.drain(..excess);
        let ledger = entry.events.iter().filter(|&&t| now - t <= within).count();
        ledger.max(journaled.unwrap_or(0) as usize)
    }

    /// The restarts the journal saw within `within` seconds, when there
    /// is a watcher's journal.
    fn journaled(&self, signatures: &[Signature], within: f64) -> Option<u64> {
        let journal = self.journal.as_ref()?;
        let mut total = 0;
        let mut distinct: Vec<&Signature> = signatures.iter().collect();
        distinct.sort();
        distinct.dedup();
        for s in distinct {
            match journal.restarts(&s.exe, &s.argv, s.unit.as_deref(), s.uid, self.now - within) {
                Ok(n) => total += n,
                Err(e) => {
                    eprintln!("psdiff: {e}; counting restarts without the watcher");
                    return None;
                }
            }
        }
        Some(total)
    }

    /// Writes the ledger, keeping only the checks in `names`.
    pub fn save(&mut self, names: &[&str]) -> Result<(), String> {
        self.state
            .checks
            .retain(|name, _| names.contains(&name.as_str()));
        let text = serde_json::to_vec(&self.state).expect("serializes");
        if let Some(dir) = self.path.parent() {
            crate::atomic::create_dirs(dir, 0o755)
                .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        }
        crate::atomic::write(&self.path, &text, 0o644)
            .map_err(|e| format!("cannot keep restarts in {}: {e}", self.path.display()))
    }
}

/// systemd's NRestarts of `unit`, when systemd runs this host.
pub fn systemd_restarts(unit: &str) -> Option<u64> {
    if !Path::new("/run/systemd/system").exists() {
        return None;
    }
    let out = std::process::Command::new("systemctl")
        .args(["show", "--property=NRestarts", "--value", "--", unit])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `1h`, `30m`, `2d`, `90s`: a window.
pub fn parse_window(text: &str) -> Result<f64, String> {
    let bad = || format!("within {text:?} is not a time (write 90s, 30m, 1h or 2d)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(bad()),
    };
    let seconds = value * scale;
    if !(seconds > 0.0 && seconds <= KEEP_SECONDS) {
        return Err(format!("within {text:?} must be above 0 and at most 7d"));
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_processes_and_unit_counters_are_restarts() {
        // A folder not made yet: the ledger makes it.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ledger");
        let mut ledger = Ledger::open(&dir);
        let none = BTreeMap::new;
        assert_eq!(ledger.observe("d", vec![(10, 1)], none(), 3600.0, &[]), 0);
        assert_eq!(ledger.observe("d", vec![(10, 1)], none(), 3600.0, &[]), 0);
        assert_eq!(ledger.observe("d", vec![(11, 5)], none(), 3600.0, &[]), 1);
        // Stopped is not restarted; coming back is.
        assert_eq!(ledger.observe("d", vec![], none(), 3600.0, &[]), 1);
        assert_eq!(ledger.observe("d", vec![(12, 9)], none(), 3600.0, &[]), 1);
        let units = |n| BTreeMap::from([("d.service".to_string(), n)]);
        assert_eq!(ledger.observe("d", vec![(12, 9)], units(4), 3600.0, &[]), 1);
        // Three restarts by systemd between two looks, one of them seen.
        assert_eq!(
            ledger.observe("d", vec![(13, 20)], units(7), 3600.0, &[]),
            4
        );
        ledger.save(&["d"]).unwrap();
        let mut again = Ledger::open(&dir);
        again.now += 7200.0;
        assert_eq!(again.observe("d", vec![(13, 20)], units(7), 3600.0, &[]), 0);
        assert_eq!(
            again.observe("d", vec![(13, 20)], units(7), 3.0 * 3600.0, &[]),
            4
        );
        again.save(&[]).unwrap();
        assert!(Ledger::open(&dir).state.checks.is_empty());
        std::fs::write(dir.join(FILE), "{half").unwrap();
        assert!(Ledger::open(&dir).state.checks.is_empty());
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("1h").unwrap(), 3600.0);
        assert_eq!(parse_window("90s").unwrap(), 90.0);
        assert_eq!(parse_window("2d").unwrap(), 172800.0);
        for bad in ["", "1w", "0m", "8d", "h"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }
}
