//! Which connections the edge takes: at most `max_connections` in all (the
//! accept loops wait for a free slot, leaving new connections in the
//! kernel's backlog) and at most `max_connections_per_client` from one
//! client address (more are closed at once). A trusted proxy's own address
//! is not counted: its connections carry many clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

pub struct Admission {
    slots: Arc<Semaphore>,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    open: AtomicUsize,
}

/// A connection's place: released when the connection ends.
pub struct Ticket {
    admission: Arc<Admission>,
    client: Option<IpAddr>,
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(max_connections: usize) -> Arc<Admission> {
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            per_client: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
        })
    }

    /// Waits until the edge may take one more connection (`None` only if
    /// the slots were closed, which nothing does).
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Admits a connection from `client` (`None`: not counted per client),
    /// or refuses it when that client already has `max_per_client` open.
    pub fn admit(
        self: &Arc<Self>,
        slot: OwnedSemaphorePermit,
        client: Option<IpAddr>,
        max_per_client: usize,
        metrics: &Metrics,
    ) -> Option<Ticket> {
        let client = client.map(|ip| ip.to_canonical());
        if let Some(ip) = client {
            let mut map = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
            let open = map.entry(ip).or_insert(0);
            if *open >= max_per_client {
                drop(map);
                metrics
                    .connections_refused_per_client
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %ip, max_per_client, "too many connections from one client; closing");
                return None;
            }
            *open += 1;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Ticket {
            admission: self.clone(),
            client,
            _slot: slot,
        })
    }

    /// Connections open from `client` now.
    #[cfg(test)]
    fn open_from(&self, client: IpAddr) -> usize {
        let map = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&client.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.client {
            let mut map = self
                .admission
                .per_client
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(open) = map.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_client_cap_and_release() {
        let a = Admission::new(10);
        let m = Metrics::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let t1 = a.admit(a.slot().await.unwrap(), Some(ip), 2, &m).unwrap();
        let t2 = a
            .admit(a.slot().await.unwrap(), Some(mapped), 2, &m)
            .unwrap();
        assert!(a.admit(a.slot().await.unwrap(), Some(ip), 2, &m).is_none());
        assert_eq!(m.connections_refused_per_client.load(Ordering::Relaxed), 1);
        // Uncounted (trusted proxy) connections pass.
        let t3 = a.admit(a.slot().await.unwrap(), None, 2, &m).unwrap();
        drop(t1);
        assert_eq!(a.open_from(ip), 1);
        let t4 = a.admit(a.slot().await.unwrap(), Some(ip), 2, &m).unwrap();
        drop((t2, t3, t4));
        assert_eq!(a.open_from(ip), 0);
        assert_eq!(a.open(), 0);
        assert!(a.per_client.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn total_cap_waits_for_a_free_slot() {
        let a = Admission::new(1);
        let m = Metrics::default();
        let t = a.admit(a.slot().await.unwrap(), None, 1, &m).unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), a.slot()).await;
        assert!(
            waiting.is_err(),
            "a second slot was given while the first is held"
        );
        drop(t);
        tokio::time::timeout(std::time::Duration::from_secs(5), a.slot())
            .await
            .expect("slot freed");
    }
}
