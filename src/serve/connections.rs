//! Which connections the server keeps when there are too many.
//!
//! Leaving new connections in the kernel's queue while the cap is reached
//! lets anyone who can connect starve everyone else: a local user holding
//! a thousand idle sockets, re-opened as they are closed, kept every
//! token holder out. So every connection is accepted, and at the cap the
//! oldest one that has not shown a valid token makes room. A token holder
//! is thus never queued behind strangers, and strangers only push out
//! each other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// One open connection, as the requests on it see it.
#[derive(Debug, Default)]
pub struct Connection {
    trusted: AtomicBool,
    evicted: Notify,
}

impl Connection {
    /// A valid token came on this connection.
    pub fn trust(&self) {
        self.trusted.store(true, Ordering::Relaxed);
    }

    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Relaxed)
    }

    /// Resolves when the connection is to be closed to make room.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

/// The open connections, in the order they came.
pub struct Connections {
    cap: usize,
    open: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    by_age: BTreeMap<u64, Arc<Connection>>,
}

/// A place among the open connections; dropping it frees the place.
pub struct Admitted {
    pub connection: Arc<Connection>,
    key: u64,
    connections: Arc<Connections>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.lock().by_age.remove(&self.key);
    }
}

impl Connections {
    pub fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            open: Mutex::new(Registry::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.open.lock().expect("no panic holds this lock")
    }

    /// A place for a new connection, made by closing the oldest one
    /// without a token if the cap is reached; None when every open
    /// connection has shown a token (the new one is then closed).
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut registry = self.lock();
        if registry.by_age.len() >= self.cap {
            let oldest = registry
                .by_age
                .iter()
                .find(|(_, c)| !c.is_trusted())
                .map(|(key, _)| *key)?;
            if let Some(evicted) = registry.by_age.remove(&oldest) {
                // notify_one keeps the wake-up if nobody waits yet.
                evicted.evicted.notify_one();
            }
        }
        let key = registry.next;
        registry.next += 1;
        let connection = Arc::new(Connection::default());
        registry.by_age.insert(key, connection.clone());
        Some(Admitted {
            connection,
            key,
            connections: self.clone(),
        })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().by_age.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_stranger_makes_room_and_token_holders_stay() {
        let connections = Connections::new(3);
        let first = connections.admit().unwrap();
        first.connection.trust();
        let second = connections.admit().unwrap();
        let _third = connections.admit().unwrap();
        let _fourth = connections.admit().unwrap();
        assert_eq!(connections.open(), 3);
        // The second was the oldest without a token.
        let registry = connections.lock();
        assert!(!registry.by_age.contains_key(&second.key));
        assert!(registry.by_age.contains_key(&first.key));
        drop(registry);
        drop(second);
        assert_eq!(connections.open(), 3);
    }

    #[test]
    fn when_every_connection_has_a_token_a_new_one_is_refused() {
        let connections = Connections::new(2);
        let a = connections.admit().unwrap();
        let b = connections.admit().unwrap();
        a.connection.trust();
        b.connection.trust();
        assert!(connections.admit().is_none());
        drop(a);
        assert!(connections.admit().is_some());
    }
}
