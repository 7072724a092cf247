//! The line diff between a baseline and a fresh dump.
//!
//! A line is matched by its text and its parent line, so a process that
//! moved to another parent (or whose parent's line changed) is missing in
//! one place and extra in the other, never silently "the same".
//!
//! Lines that occur on one side only can be in no common subsequence, so
//! they are settled first in linear time (as GNU diff discards them); the
//! rest goes to `similar` with a deadline. So a baseline where every line
//! changed costs one hash per line, and no input can make the diff slow:
//! past the deadline `similar` answers with a longer edit script, which at
//! worst reports an unchanged line as missing and extra.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use similar::{Algorithm, DiffOp, capture_diff_slices_deadline};

/// The most time the subsequence search may take.
pub const DEADLINE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// In the baseline, not running now.
    Missing,
    /// Running now, not in the baseline.
    Extra,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<'a> {
    pub kind: Kind,
    pub line: &'a str,
}

/// Changes from `old` to `new` in tree order: between two unchanged lines,
/// the missing ones first, then the extra ones.
pub fn diff<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<Change<'a>> {
    diff_with_deadline(old, new, DEADLINE)
}

pub fn diff_with_deadline<'a>(
    old: &[&'a str],
    new: &[&'a str],
    deadline: Duration,
) -> Vec<Change<'a>> {
    // A line is known by its text and its parent's identity, so the same
    // process under another parent is another line. Only the old side goes
    // into the table: a new line not found there matches nothing.
    let mut table: Table = Table::with_capacity_and_hasher(old.len(), Default::default());
    let old_ids = identities(old, |line, parent| {
        let next = table.len() as u32;
        Some(*table.entry(key(line, parent)).or_insert(next))
    });
    let new_ids = identities(new, |line, parent| table.get(&key(line, parent)).copied());
    let mut in_new = vec![false; table.len()];
    for &id in new_ids.iter().flatten() {
        in_new[id as usize] = true;
    }

    // Only lines found on both sides can match.
    let old_kept: Vec<usize> = (0..old.len())
        .filter(|&i| old_ids[i].is_some_and(|id| in_new[id as usize]))
        .collect();
    let new_kept: Vec<usize> = (0..new.len()).filter(|&j| new_ids[j].is_some()).collect();
    let old_seq: Vec<u32> = old_kept.iter().filter_map(|&i| old_ids[i]).collect();
    let new_seq: Vec<u32> = new_kept.iter().filter_map(|&j| new_ids[j]).collect();
    let ops = capture_diff_slices_deadline(
        Algorithm::Myers,
        &old_seq,
        &new_seq,
        Some(Instant::now() + deadline),
    );

    let mut changes = Vec::with_capacity(old.len() - old_kept.len() + new.len() - new_kept.len());
    let (mut i, mut j) = (0, 0);
    let mut emit_until = |oi: usize, nj: usize, changes: &mut Vec<Change<'a>>| {
        changes.extend(old[i..oi].iter().map(|line| Change {
            kind: Kind::Missing,
            line,
        }));
        changes.extend(new[j..nj].iter().map(|line| Change {
            kind: Kind::Extra,
            line,
        }));
        i = oi + 1;
        j = nj + 1;
    };
    for op in ops {
        if let DiffOp::Equal {
            old_index,
            new_index,
            len,
        } = op
        {
            for k in 0..len {
                emit_until(
                    old_kept[old_index + k],
                    new_kept[new_index + k],
                    &mut changes,
                );
            }
        }
    }
    emit_until(old.len(), new.len(), &mut changes);
    changes
}

/// The identity of each line: its text under its parent's identity. The
/// parent is the nearest line above with less indentation. `id_of` maps a
/// line (its text and parent's identity) to an identity, or to
/// `None` for a line unknown to the table, whose children are then unknown
/// too.
///
/// Lines are keyed by a 64-bit hash of their text: no string compares in
/// the table. Every matched pair is compared by text afterwards, so a
/// collision can only ever add a missing/extra pair, never hide a change.
fn identities(lines: &[&str], mut id_of: impl FnMut(&str, u64) -> Option<u32>) -> Vec<Option<u32>> {
    const ROOT: u64 = u64::MAX;
    let mut ancestors: Vec<(usize, Option<u32>)> = Vec::new();
    lines
        .iter()
        .map(|&line| {
            let depth = line.len() - line.trim_start_matches(' ').len();
            while ancestors.last().is_some_and(|&(d, _)| d >= depth) {
                ancestors.pop();
            }
            let id = match ancestors.last() {
                Some(&(_, None)) => None,
                parent => {
                    let parent = parent.and_then(|&(_, id)| id).map_or(ROOT, u64::from);
                    id_of(line, parent)
                }
            };
            ancestors.push((depth, id));
            id
        })
        .collect()
}

/// Line identities by key; the keys are hashes already, so the table's
/// hasher passes them through.
type Table = HashMap<u64, u32, BuildHasherDefault<PassThrough>>;

#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// The table key of a line under a parent (`u64::MAX` for the top).
fn key(line: &str, parent: u64) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(line) ^ parent.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(old: &str, new: &str) -> Vec<String> {
        let old: Vec<&str> = old.lines().collect();
        let new: Vec<&str> = new.lines().collect();
        diff(&old, &new)
            .iter()
            .map(|c| {
                format!(
                    "{}{}",
                    if c.kind == Kind::Missing { "-" } else { "+" },
                    c.line
                )
            })
            .collect()
    }

    #[test]
    fn nothing_changed() {
        assert!(show("a\nb\nc", "a\nb\nc").is_empty());
        assert!(show("", "").is_empty());
    }

    #[test]
    fn missing_and_extra_in_tree_order() {
        assert_eq!(show("r\n a\n b\n c", "r\n a\n c\n d"), vec!["- b", "+ d"]);
        assert_eq!(show("r\n a\n b", "r\n a2\n b"), vec!["- a", "+ a2"]);
        assert_eq!(show("", "r\n a"), vec!["+r", "+ a"]);
        assert_eq!(show("r\n a", ""), vec!["-r", "- a"]);
    }

    #[test]
    fn a_moved_process_is_missing_in_one_place_and_extra_in_the_other() {
        let old = "root\n  INIT\n    p1\n      w\n    p2";
        let new = "root\n  INIT\n    p1\n    p2\n      w";
        assert_eq!(show(old, new), vec!["-      w", "+      w"]);
    }

    #[test]
    fn children_of_a_changed_parent_are_under_another_parent() {
        let old = "root\n  INIT\n    nginx -c a\n      worker";
        let new = "root\n  INIT\n    nginx -c b\n      worker";
        assert_eq!(
            show(old, new),
            vec![
                "-    nginx -c a",
                "-      worker",
                "+    nginx -c b",
                "+      worker"
            ]
        );
    }

    #[test]
    fn duplicates_count() {
        assert_eq!(show("r\n w\n w\n w", "r\n w\n w"), vec!["- w"]);
        assert_eq!(show("r\n w", "r\n w\n w"), vec!["+ w"]);
    }

    #[test]
    fn a_zero_deadline_still_gives_a_correct_superset() {
        let old: Vec<String> = (0..2000).map(|i| format!("l{}", i % 7)).collect();
        let new: Vec<String> = (0..2000).map(|i| format!("l{}", (i * 3) % 7)).collect();
        let old: Vec<&str> = old.iter().map(String::as_str).collect();
        let new: Vec<&str> = new.iter().map(String::as_str).collect();
        let changes = diff_with_deadline(&old, &new, Duration::ZERO);
        // Applying the changes must turn old into new.
        let missing = changes.iter().filter(|c| c.kind == Kind::Missing).count();
        let extra = changes.iter().filter(|c| c.kind == Kind::Extra).count();
        assert_eq!(old.len() - missing + extra, new.len());
    }
}
