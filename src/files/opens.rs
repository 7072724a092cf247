//! Which files each followed process has open, to give a close its
//! duration. Bounded: past `capacity` open files the oldest is forgotten
//! (its close then has no duration), so a process that opens millions of
//! files, or events lost to an overflow, cannot grow psdiff without end.

use std::collections::VecDeque;
use std::ffi::OsStr;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A process and a path; hashed by the path's bytes (an `OsStr` hashes
/// faster than a `Path`, which hashes component by component).
type Key = (u32, Arc<OsStr>);

pub struct Opens {
    capacity: usize,
    /// Per process and path, the open times not yet closed, oldest first,
    /// each with its sequence number.
    open: HashMap<Key, VecDeque<(u64, Instant)>>,
    /// Every open in order, for forgetting the oldest; entries already
    /// closed are skipped when met.
    order: VecDeque<(u64, Key)>,
    next: u64,
    len: usize,
    /// Opens forgotten to stay within `capacity`.
    pub forgotten: u64,
}

impl Opens {
    pub fn new(capacity: usize) -> Opens {
        Opens {
            capacity: capacity.max(1),
            open: HashMap::default(),
            order: VecDeque::new(),
            next: 0,
            len: 0,
            forgotten: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn open(&mut self, pid: u32, path: Arc<OsStr>, at: Instant) {
        while self.len >= self.capacity {
            self.forget_oldest();
        }
        let seq = self.next;
        self.next += 1;
        self.open
            .entry((pid, path.clone()))
            .or_default()
            .push_back((seq, at));
        self.order.push_back((seq, (pid, path)));
        self.len += 1;
        // Closed entries stay in `order` until met; keep it near `len`.
        if self.order.len() > 2 * self.capacity {
            let open = &self.open;
            self.order.retain(|(seq, key)| {
                open.get(key)
                    .is_some_and(|times| times.iter().any(|(s, _)| s == seq))
            });
        }
    }

    /// How long the file had been open: from the oldest open of `path` by
    /// `pid` not yet closed. `None` when no open is known.
    pub fn close(&mut self, pid: u32, path: &Arc<OsStr>, at: Instant) -> Option<Duration> {
        let key = (pid, path.clone());
        let times = self.open.get_mut(&key)?;
        let (_, opened) = times.pop_front()?;
        if times.is_empty() {
            self.open.remove(&key);
        }
        self.len -= 1;
        Some(at.saturating_duration_since(opened))
    }

    fn forget_oldest(&mut self) {
        while let Some((seq, key)) = self.order.pop_front() {
            let Some(times) = self.open.get_mut(&key) else {
                continue;
            };
            let Some(i) = times.iter().position(|(s, _)| *s == seq) else {
                continue;
            };
            times.remove(i);
            if times.is_empty() {
                self.open.remove(&key);
            }
            self.len -= 1;
            self.forgotten += 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Arc<OsStr> {
        Arc::from(OsStr::new(p))
    }

    #[test]
    fn a_close_is_timed_from_its_open() {
        let mut opens = Opens::new(10);
        let t0 = Instant::now();
        let a = path("/etc/a");
        opens.open(1, a.clone(), t0);
        opens.open(1, a.clone(), t0 + Duration::from_millis(5));
        assert_eq!(
            opens.close(1, &a, t0 + Duration::from_millis(10)),
            Some(Duration::from_millis(10))
        );
        assert_eq!(opens.close(2, &a, t0), None, "another process");
        assert_eq!(
            opens.close(1, &a, t0 + Duration::from_millis(10)),
            Some(Duration::from_millis(5))
        );
        assert_eq!(opens.close(1, &a, t0), None);
        assert_eq!(opens.len(), 0);
    }

    #[test]
    fn a_million_opens_never_closed_stay_within_capacity() {
        let mut opens = Opens::new(1000);
        let now = Instant::now();
        let paths: Vec<Arc<OsStr>> = (0..5000).map(|i| path(&format!("/data/{i}"))).collect();
        for i in 0..1_000_000usize {
            opens.open((i % 7) as u32, paths[i % paths.len()].clone(), now);
            // Some are closed, so `order` holds stale entries too.
            if i % 3 == 0 {
                opens.close((i % 7) as u32, &paths[i % paths.len()], now);
            }
            assert!(opens.len() <= 1000);
            assert!(opens.order.len() <= 2000);
        }
        // Full before the last open, which was closed again.
        assert_eq!(opens.len(), 999);
        assert!(opens.forgotten > 600_000, "{}", opens.forgotten);
        // The newest opens are the ones kept.
        let last = 999_998usize;
        assert!(
            opens
                .close((last % 7) as u32, &paths[last % paths.len()], now)
                .is_some()
        );
    }
}
