//! One cache fill per key at a time: the first request for a missing key
//! leads (goes to PHP), the others wait for it and then look again.
//!
//! The lead is a guard: however the leader ends (stored, not cacheable,
//! failed, its client went away), dropping the guard wakes the waiters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::key::CacheKey;

#[derive(Default)]
pub struct Coalescer {
    inflight: Arc<Mutex<HashMap<CacheKey, watch::Receiver<()>>>>,
}

/// The caller's part in a fill.
pub enum Turn {
    Lead(Lead),
    Wait(Waiter),
}

/// Held by the one request that fills a key.
pub struct Lead {
    inflight: Arc<Mutex<HashMap<CacheKey, watch::Receiver<()>>>>,
    key: CacheKey,
    _done: watch::Sender<()>,
}

impl Drop for Lead {
    fn drop(&mut self) {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&self.key);
    }
}

pub struct Waiter(watch::Receiver<()>);

impl Waiter {
    /// Resolves when the leader is done, whatever its outcome.
    pub async fn wait(mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

impl Coalescer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn turn(&self, key: &CacheKey) -> Turn {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = map.get(key) {
            return Turn::Wait(Waiter(rx.clone()));
        }
        let (tx, rx) = watch::channel(());
        map.insert(key.clone(), rx);
        Turn::Lead(Lead {
            inflight: self.inflight.clone(),
            key: key.clone(),
            _done: tx,
        })
    }

    /// Takes the lead only if nobody holds it (for background refreshes).
    pub fn try_lead(&self, key: &CacheKey) -> Option<Lead> {
        match self.turn(key) {
            Turn::Lead(l) => Some(l),
            Turn::Wait(_) => None,
        }
    }

    pub fn inflight(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_leader_and_waiters_wake_when_it_drops() {
        let c = Arc::new(Coalescer::new());
        let key = CacheKey::new("s".into(), false, "a", "/", None);
        let lead = match c.turn(&key) {
            Turn::Lead(l) => l,
            Turn::Wait(_) => panic!("first caller must lead"),
        };
        let woke = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..10 {
            let Turn::Wait(w) = c.turn(&key) else {
                panic!("second caller must wait")
            };
            let woke = woke.clone();
            tasks.push(tokio::spawn(async move {
                w.wait().await;
                woke.fetch_add(1, Ordering::SeqCst);
            }));
        }
        tokio::task::yield_now().await;
        assert_eq!(woke.load(Ordering::SeqCst), 0);
        assert!(c.try_lead(&key).is_none());
        drop(lead);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(woke.load(Ordering::SeqCst), 10);
        assert_eq!(c.inflight(), 0);
        assert!(c.try_lead(&key).is_some());
    }
}
