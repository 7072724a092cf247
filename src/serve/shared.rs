//! Answers shared between requests for a short time: a burst of a hundred
//! requests for the same thing reads /proc once, not a hundred times.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// Values computed on a blocking thread and shared, per key, by every
/// request that arrives while one is being computed or within `ttl` of it.
/// While a new value is computed, the others get the previous one if it is
/// less than two `ttl`s old: only the request that starts the work waits.
pub struct Shared<K, V> {
    ttl: Duration,
    slots: Mutex<HashMap<K, Entry<V>>>,
}

struct Entry<V> {
    slot: Arc<Slot<V>>,
    /// The value before the one in `slot`, with when it was computed.
    previous: Option<(Instant, V)>,
}

struct Slot<V> {
    value: OnceCell<(Instant, V)>,
}

impl<V> Slot<V> {
    fn new() -> Arc<Slot<V>> {
        Arc::new(Slot {
            value: OnceCell::new(),
        })
    }
}

impl<K, V> Shared<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(ttl: Duration) -> Self {
        Shared {
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The value for `key`: a recent one, the one being computed (or the
    /// one before it), or a new one from `compute`.
    pub async fn get(&self, key: K, compute: impl FnOnce() -> V + Send + 'static) -> V {
        let slot = {
            let mut slots = self.slots.lock().expect("no panic holds this lock");
            let ttl = self.ttl;
            match slots.get_mut(&key) {
                Some(entry) => match entry.slot.value.get() {
                    Some((at, value)) if at.elapsed() < ttl => return value.clone(),
                    Some(done) => {
                        entry.previous = Some(done.clone());
                        entry.slot = Slot::new();
                        entry.slot.clone()
                    }
                    None => match &entry.previous {
                        Some((at, value)) if at.elapsed() < 2 * ttl => return value.clone(),
                        _ => entry.slot.clone(),
                    },
                },
                None => {
                    // Answers for keys not asked for lately go, so the map
                    // stays as small as the set of keys in use.
                    slots.retain(|_, e| {
                        e.slot
                            .value
                            .get()
                            .is_none_or(|(at, _)| at.elapsed() < 2 * ttl)
                    });
                    let slot = Slot::new();
                    slots.insert(
                        key,
                        Entry {
                            slot: slot.clone(),
                            previous: None,
                        },
                    );
                    slot
                }
            }
        };
        let (_, value) = slot
            .value
            .get_or_init(|| async {
                let value = tokio::task::spawn_blocking(compute)
                    .await
                    .expect("a /proc reading panicked");
                (Instant::now(), value)
            })
            .await;
        value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_computation() {
        let shared = Arc::new(Shared::<u8, usize>::new(Duration::from_secs(60)));
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (shared, runs) = (shared.clone(), runs.clone());
                tokio::spawn(async move {
                    shared
                        .get(1, move || {
                            std::thread::sleep(Duration::from_millis(50));
                            runs.fetch_add(1, Ordering::SeqCst) + 1
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_old_value_is_computed_again_and_serves_meanwhile() {
        let ttl = Duration::from_millis(100);
        let shared = Arc::new(Shared::<u8, u32>::new(ttl));
        assert_eq!(shared.get(1, || 1).await, 1);
        assert_eq!(shared.get(1, || 2).await, 1);
        tokio::time::sleep(ttl).await;
        // The first request after the ttl waits for the new value; one
        // arriving while it is computed gets the previous one.
        let slow = {
            let shared = shared.clone();
            tokio::spawn(async move {
                shared
                    .get(1, || {
                        std::thread::sleep(Duration::from_millis(50));
                        3
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(shared.get(1, || 4).await, 1);
        assert_eq!(slow.await.unwrap(), 3);
        assert_eq!(shared.get(1, || 5).await, 3);
        // Other keys have values of their own.
        assert_eq!(shared.get(2, || 6).await, 6);
        // After a quiet spell, the first request waits for a fresh value.
        tokio::time::sleep(2 * ttl).await;
        assert_eq!(shared.get(1, || 7).await, 7);
    }
}
