//! Answers shared between requests for a short time: a burst of a hundred
//! requests for the same thing reads /proc once, not a hundred times.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// Values computed on a blocking thread and shared, per key, by every
/// request that arrives while one is being computed or within `ttl` of it.
pub struct Shared<K, V> {
    ttl: Duration,
    slots: Mutex<HashMap<K, Arc<Slot<V>>>>,
}

struct Slot<V> {
    value: OnceCell<(Instant, V)>,
}

impl<V> Slot<V> {
    /// A slot still worth joining: being computed, or computed recently.
    fn is_live(&self, ttl: Duration) -> bool {
        self.value.get().is_none_or(|(at, _)| at.elapsed() < ttl)
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

    /// The value for `key`: a recent one, the one being computed, or a
    /// new one from `compute`.
    pub async fn get(&self, key: K, compute: impl FnOnce() -> V + Send + 'static) -> V {
        let slot = {
            let mut slots = self.slots.lock().expect("no panic holds this lock");
            match slots.get(&key) {
                Some(slot) if slot.is_live(self.ttl) => slot.clone(),
                _ => {
                    // Old answers for other keys go too, so the map stays
                    // as small as the set of keys asked for lately.
                    slots.retain(|_, s| s.is_live(self.ttl));
                    let slot = Arc::new(Slot {
                        value: OnceCell::new(),
                    });
                    slots.insert(key, slot.clone());
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

    #[tokio::test]
    async fn an_old_value_is_computed_again() {
        let shared = Shared::<u8, u32>::new(Duration::from_millis(20));
        assert_eq!(shared.get(1, || 1).await, 1);
        assert_eq!(shared.get(1, || 2).await, 1);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(shared.get(1, || 3).await, 3);
        assert_eq!(shared.get(2, || 4).await, 4);
    }
}
