//! The line diff between a baseline and a fresh dump.
//!
//! Lines that occur on one side only can be in no common subsequence, so
//! they are settled first in linear time (as GNU diff discards them); the
//! rest goes to `similar` with a deadline. So a baseline where every line
//! changed costs one hash per line, and no input can make the diff slow:
//! past the deadline `similar` answers with a longer edit script, which at
//! worst reports an unchanged line as missing and extra.

use std::collections::HashMap;
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
    // Intern lines; count where each occurs.
    let mut ids: HashMap<&str, u32> = HashMap::with_capacity(old.len() + new.len());
    let mut in_old: Vec<bool> = Vec::new();
    let mut in_new: Vec<bool> = Vec::new();
    let mut intern = |line: &'a str, old_side: bool| {
        let next = ids.len() as u32;
        let id = *ids.entry(line).or_insert(next);
        if id == next {
            in_old.push(false);
            in_new.push(false);
        }
        if old_side {
            in_old[id as usize] = true;
        } else {
            in_new[id as usize] = true;
        }
        id
    };
    let old_ids: Vec<u32> = old.iter().map(|l| intern(l, true)).collect();
    let new_ids: Vec<u32> = new.iter().map(|l| intern(l, false)).collect();

    // Only lines found on both sides can match.
    let old_kept: Vec<usize> = (0..old.len())
        .filter(|&i| in_new[old_ids[i] as usize])
        .collect();
    let new_kept: Vec<usize> = (0..new.len())
        .filter(|&j| in_old[new_ids[j] as usize])
        .collect();
    let old_seq: Vec<u32> = old_kept.iter().map(|&i| old_ids[i]).collect();
    let new_seq: Vec<u32> = new_kept.iter().map(|&j| new_ids[j]).collect();
    let ops = capture_diff_slices_deadline(
        Algorithm::Myers,
        &old_seq,
        &new_seq,
        Some(Instant::now() + deadline),
    );

    let mut changes = Vec::new();
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
