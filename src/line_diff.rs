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

use std::collections::HashSet;
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
    let old_keys = keys(old);
    let new_keys = keys(new);
    let (old_shared, new_shared) = shared(&old_keys, &new_keys);

    // Only lines found on both sides can match; the rest are settled.
    let old_kept: Vec<u32> = (0..old.len() as u32)
        .filter(|&i| old_shared[i as usize])
        .collect();
    let new_kept: Vec<u32> = (0..new.len() as u32)
        .filter(|&j| new_shared[j as usize])
        .collect();
    let kept_keys =
        |kept: &[u32], keys: &[u64]| kept.iter().map(|&k| keys[k as usize]).collect::<Vec<u64>>();
    // Usually every change is a line that came or went and the shared lines
    // are in the same order on both sides; then they all pair up as they are.
    let in_order = old_kept.len() == new_kept.len()
        && old_kept
            .iter()
            .zip(&new_kept)
            .all(|(&i, &j)| old_keys[i as usize] == new_keys[j as usize]);
    let ops = if in_order {
        vec![DiffOp::Equal {
            old_index: 0,
            new_index: 0,
            len: old_kept.len(),
        }]
    } else {
        let (old_seq, new_seq) = (
            kept_keys(&old_kept, &old_keys),
            kept_keys(&new_kept, &new_keys),
        );
        capture_diff_slices_deadline(
            Algorithm::Myers,
            &old_seq,
            &new_seq,
            Some(Instant::now() + deadline),
        )
    };

    let mut changes = Vec::with_capacity(old.len() - old_kept.len() + new.len() - new_kept.len());
    let (mut i, mut j) = (0, 0);
    for op in ops {
        let DiffOp::Equal {
            old_index,
            new_index,
            len,
        } = op
        else {
            continue;
        };
        for k in 0..len {
            let (oi, nj) = (
                old_kept[old_index + k] as usize,
                new_kept[new_index + k] as usize,
            );
            // Keys are hashes: a pair counts as unchanged only if the texts
            // agree, so a collision can add a missing/extra pair but never
            // hide a change.
            if old[oi] != new[nj] {
                continue;
            }
            emit(&mut changes, Kind::Missing, &old[i..oi]);
            emit(&mut changes, Kind::Extra, &new[j..nj]);
            (i, j) = (oi + 1, nj + 1);
        }
    }
    emit(&mut changes, Kind::Missing, &old[i..]);
    emit(&mut changes, Kind::Extra, &new[j..]);
    changes
}

fn emit<'a>(changes: &mut Vec<Change<'a>>, kind: Kind, lines: &[&'a str]) {
    changes.extend(lines.iter().map(|line| Change { kind, line }));
}

/// The key of each line: a hash of its text and of its parent's key, the
/// parent being the nearest line above with less indentation. So a line's
/// key stands for its whole path from the root.
fn keys(lines: &[&str]) -> Vec<u64> {
    const ROOT: u64 = 0x243f_6a88_85a3_08d3;
    let mut ancestors: Vec<(usize, u64)> = Vec::new();
    lines
        .iter()
        .map(|&line| {
            let depth = line.len() - line.trim_start_matches(' ').len();
            while ancestors.last().is_some_and(|&(d, _)| d >= depth) {
                ancestors.pop();
            }
            let parent = ancestors.last().map_or(ROOT, |&(_, key)| key);
            let key = text_hash(line) ^ parent.rotate_left(23).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            ancestors.push((depth, key));
            key
        })
        .collect()
}

fn text_hash(line: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(line)
}

/// Which lines of each side have a line with the same key on the other.
///
/// Both sides are sorted alike, so a walk with one cursor per side pairs
/// nearly every unchanged line in order, touching memory only sequentially;
/// after a mismatch it looks a few lines ahead on both sides to resync.
/// The lines it could not pair are looked up in small hash sets (a line
/// is shared when the other side has its key among its own left-overs or
/// among the lines the walk paired), so no table of every line is built.
fn shared(a: &[u64], b: &[u64]) -> (Vec<bool>, Vec<bool>) {
    const WINDOW: usize = 32;
    let (mut in_a, mut in_b) = (vec![false; a.len()], vec![false; b.len()]);
    let (mut rest_a, mut rest_b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    // After a failed resync, wait this many steps before the next try, so
    // that a run of changed lines costs no lookahead per line.
    let (mut backoff, mut wait) = (1, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            (in_a[i], in_b[j]) = (true, true);
            (i, j) = (i + 1, j + 1);
            backoff = 1;
            continue;
        }
        let (ahead_a, ahead_b) = if wait == 0 {
            let find = |side: &[u64], from: usize, key: u64| {
                side[from..(from + WINDOW).min(side.len())]
                    .iter()
                    .position(|&k| k == key)
            };
            (find(a, i + 1, b[j]), find(b, j + 1, a[i]))
        } else {
            wait -= 1;
            (None, None)
        };
        match (ahead_a, ahead_b) {
            (Some(x), y) if y.is_none_or(|y| x <= y) => {
                rest_a.extend(i..=i + x);
                i += x + 1;
            }
            (_, Some(y)) => {
                rest_b.extend(j..=j + y);
                j += y + 1;
            }
            _ => {
                if wait == 0 {
                    wait = backoff;
                    backoff = (backoff * 2).min(WINDOW);
                }
                rest_a.push(i);
                rest_b.push(j);
                (i, j) = (i + 1, j + 1);
            }
        }
    }
    rest_a.extend(i..a.len());
    rest_b.extend(j..b.len());
    if rest_a.is_empty() && rest_b.is_empty() {
        return (in_a, in_b);
    }
    // A left-over line is shared when its key is among the other side's
    // left-overs, or among the keys the walk paired (those are on both
    // sides). Bitmaps of each side's left-over keys, small enough for the
    // cache, rule out nearly every line with one bit test; exact sets are
    // built only for the lines they do not rule out.
    let bits_a = Bitmap::of(rest_a.iter().map(|&k| a[k]), rest_a.len().max(rest_b.len()));
    let bits_b = Bitmap::of(rest_b.iter().map(|&k| b[k]), rest_a.len().max(rest_b.len()));
    let maybe = |side: &[u64], rest: &[usize], other: &Bitmap| -> KeySet {
        rest.iter()
            .map(|&k| side[k])
            .filter(|&key| other.has(key))
            .collect()
    };
    let (maybe_a, maybe_b) = (maybe(a, &rest_a, &bits_b), maybe(b, &rest_b, &bits_a));
    let bits_any = bits_a.union(&bits_b);
    let paired: KeySet = (0..a.len())
        .filter(|&k| in_a[k] && bits_any.has(a[k]))
        .map(|k| a[k])
        .collect();
    for &k in &rest_a {
        in_a[k] = paired.contains(&a[k]) || maybe_b.contains(&a[k]);
    }
    for &k in &rest_b {
        in_b[k] = paired.contains(&b[k]) || maybe_a.contains(&b[k]);
    }
    (in_a, in_b)
}

/// A one-hash Bloom filter over keys (which are hashes already): `has` is
/// false only for keys never added.
struct Bitmap {
    words: Vec<u64>,
    mask: u64,
}

impl Bitmap {
    /// About 32 bits per key, so that few keys are let through wrongly.
    fn of(keys: impl Iterator<Item = u64>, count: usize) -> Bitmap {
        let bits = (count.max(256) * 32).next_power_of_two() as u64;
        let mut map = Bitmap {
            words: vec![0; (bits / 64) as usize],
            mask: bits - 1,
        };
        for key in keys {
            let bit = key & map.mask;
            map.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        map
    }

    /// Both maps, which must be of one size.
    fn union(&self, other: &Bitmap) -> Bitmap {
        Bitmap {
            words: self
                .words
                .iter()
                .zip(&other.words)
                .map(|(x, y)| x | y)
                .collect(),
            mask: self.mask,
        }
    }

    fn has(&self, key: u64) -> bool {
        let bit = key & self.mask;
        self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }
}

/// Keys are hashes already, so the set's hasher passes them through.
type KeySet = HashSet<u64, BuildHasherDefault<PassThrough>>;

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
    fn blocks_longer_than_the_resync_window() {
        let old: Vec<String> = (0..300).map(|i| format!("  l{i}")).collect();
        let mut new = old.clone();
        let inserted: Vec<String> = (0..100).map(|i| format!("  new{i}")).collect();
        new.splice(100..100, inserted.iter().cloned());
        new.drain(250..330); // drops old l150..l229
        let old_refs: Vec<&str> = old.iter().map(String::as_str).collect();
        let new_refs: Vec<&str> = new.iter().map(String::as_str).collect();
        let changes = diff(&old_refs, &new_refs);
        let extra: Vec<&str> = changes
            .iter()
            .filter(|c| c.kind == Kind::Extra)
            .map(|c| c.line)
            .collect();
        let missing: Vec<&str> = changes
            .iter()
            .filter(|c| c.kind == Kind::Missing)
            .map(|c| c.line)
            .collect();
        assert_eq!(
            extra,
            inserted.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(
            missing,
            old[150..230].iter().map(String::as_str).collect::<Vec<_>>()
        );
    }

    #[test]
    fn random_edits_turn_old_into_new() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let old: Vec<String> = (0..next(60))
                .map(|_| format!("{}p{}", "  ".repeat(next(3) as usize), next(8)))
                .collect();
            let mut new = old.clone();
            for _ in 0..next(10) {
                let at = next(new.len() as u64 + 1) as usize;
                match next(3) {
                    0 if at < new.len() => drop(new.remove(at)),
                    1 => new.insert(at, format!("{}p{}", "  ".repeat(next(3) as usize), next(8))),
                    _ if at < new.len() => new[at].push('x'),
                    _ => {}
                }
            }
            let o: Vec<&str> = old.iter().map(String::as_str).collect();
            let n: Vec<&str> = new.iter().map(String::as_str).collect();
            let changes = diff(&o, &n);
            // As many changes as the minimal edit script over whole paths.
            let lcs = reference_lcs(&paths(&o), &paths(&n));
            let missing = changes.iter().filter(|c| c.kind == Kind::Missing).count();
            let extra = changes.len() - missing;
            assert_eq!(
                (missing, extra),
                (o.len() - lcs, n.len() - lcs),
                "old {o:?}\nnew {n:?}\n{changes:?}"
            );
        }
    }

    /// Each line with the lines above it that are its ancestors.
    fn paths(lines: &[&str]) -> Vec<String> {
        let mut stack: Vec<(usize, String)> = Vec::new();
        lines
            .iter()
            .map(|line| {
                let depth = line.len() - line.trim_start().len();
                while stack.last().is_some_and(|(d, _)| *d >= depth) {
                    stack.pop();
                }
                let path = format!("{}/{line}", stack.last().map_or("", |(_, p)| p.as_str()));
                stack.push((depth, path.clone()));
                path
            })
            .collect()
    }

    fn reference_lcs(a: &[String], b: &[String]) -> usize {
        let mut table = vec![vec![0; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                table[i][j] = if a[i] == b[j] {
                    table[i + 1][j + 1] + 1
                } else {
                    table[i + 1][j].max(table[i][j + 1])
                };
            }
        }
        table[0][0]
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
