//! Counters and histograms the edge records as it serves; the ops
//! listener's `/metrics` reads them ([`crate::ops`]'s Prometheus writer),
//! with the gauges it reads from their owners (cache size, member health,
//! pool counters) at scrape time.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The upper bounds of the upstream-time histogram, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default, Clone)]
pub struct Histogram {
    /// Cumulative: `buckets[i]` counts the samples up to `BUCKETS[i]`.
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

/// (site, status, cache result)
pub type RequestLabels = (Arc<str>, u16, &'static str);
/// (site, one more label's value)
pub type SiteLabels = (Arc<str>, &'static str);

/// Shards of the request counts: each thread counts in its own, so the
/// runtime's workers do not wait on one lock or bounce one cache line.
const SHARDS: usize = 16;

/// A row of request counts, by the identity of its labels: the site name's
/// `Arc` (kept alive by the row, so its address names it alone; a reload
/// makes a new one, merged by name when read), the status, and the cache
/// label's address.
type RequestSlot = (usize, u16, usize);

/// One shard, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
struct RequestShard(Mutex<HashMap<RequestSlot, (RequestLabels, u64), foldhash::fast::FixedState>>);

#[derive(Default)]
pub struct Metrics {
    requests: [RequestShard; SHARDS],
    upstream: Mutex<HashMap<Arc<str>, Histogram>>,
    rate_limited: Mutex<HashMap<SiteLabels, u64>>,
    /// wp-cron.php runs by site and outcome ("ok", "failed").
    wp_cron: Mutex<HashMap<SiteLabels, u64>>,
    pub purges: AtomicU64,
    /// Entries purged by site and kind (url, prefix, tag, site, all).
    purged: Mutex<HashMap<SiteLabels, u64>>,
    /// Edges a purge was to be passed on to but did not reach.
    pub purge_fanout_failures: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Connections closed at once: one client had too many open.
    pub connections_refused_per_client: AtomicU64,
    /// Connections cut because the client left a response unread.
    pub slow_readers_cut: AtomicU64,
    /// Connections closed for having no request in progress too long.
    pub idle_closed: AtomicU64,
    /// Connections dropped because a request head took longer than
    /// `header_timeout` to arrive (slowloris).
    pub header_timeouts: AtomicU64,
}

impl Metrics {
    /// One answered request. No allocation and no label hashing beyond
    /// three words, in the thread's own shard.
    pub fn request(&self, site: &Arc<str>, status: u16, cache: &'static str) {
        let slot = (
            Arc::as_ptr(site).cast::<u8>() as usize,
            status,
            cache.as_ptr() as usize,
        );
        let mut m = self.requests[shard()]
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match m.get_mut(&slot) {
            Some((_, n)) => *n += 1,
            None => {
                // A reload names the site anew: its row moves to the new
                // name's address (one row per name, status and label, not
                // one per reload).
                let old = m
                    .iter()
                    .find(|(_, ((s, st, c), _))| **s == **site && *st == status && *c == cache)
                    .map(|(k, _)| *k);
                let before = old.and_then(|k| m.remove(&k)).map_or(0, |(_, n)| n);
                m.insert(slot, ((site.clone(), status, cache), before + 1));
            }
        }
    }

    /// A request refused by a rate limit (`limit`: "login" or "site").
    pub fn rate_limited(&self, site: &Arc<str>, limit: &'static str) {
        let mut m = self.rate_limited.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((site.clone(), limit)).or_default() += 1;
    }

    /// Entries a purge of `kind` removed from `site`'s cache.
    pub fn purged(&self, site: &Arc<str>, kind: &'static str, n: usize) {
        let mut m = self.purged.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((site.clone(), kind)).or_default() += n as u64;
    }

    /// A run of the site's wp-cron.php (`wp_cron`).
    pub fn wp_cron(&self, site: &Arc<str>, ok: bool) {
        let mut m = self.wp_cron.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((site.clone(), if ok { "ok" } else { "failed" }))
            .or_default() += 1;
    }

    pub fn upstream_time(&self, site: &Arc<str>, d: Duration) {
        let secs = d.as_secs_f64();
        let mut m = self.upstream.lock().unwrap_or_else(|e| e.into_inner());
        let h = m.entry(site.clone()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The request counts, summed over the shards (and over the names a
    /// reload made anew), sorted by label.
    pub fn request_counts(&self) -> Vec<(RequestLabels, u64)> {
        let mut sum: HashMap<RequestLabels, u64> = HashMap::new();
        for shard in &self.requests {
            let m = shard.0.lock().unwrap_or_else(|e| e.into_inner());
            for (labels, n) in m.values() {
                *sum.entry(labels.clone()).or_default() += n;
            }
        }
        let mut rows: Vec<_> = sum.into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// The upstream-time histogram of every site, sorted by site.
    pub fn upstream_histograms(&self) -> Vec<(Arc<str>, Histogram)> {
        let m = self.upstream.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = m.iter().map(|(k, h)| (k.clone(), h.clone())).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    pub fn rate_limited_counts(&self) -> Vec<(SiteLabels, u64)> {
        sorted(&self.rate_limited)
    }

    pub fn wp_cron_counts(&self) -> Vec<(SiteLabels, u64)> {
        sorted(&self.wp_cron)
    }

    pub fn purged_counts(&self) -> Vec<(SiteLabels, u64)> {
        sorted(&self.purged)
    }
}

/// The calling thread's shard of the request counts.
fn shard() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

fn sorted<K: Ord + Clone>(m: &Mutex<HashMap<K, u64>>) -> Vec<(K, u64)> {
    let m = m.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<_> = m.iter().map(|(k, n)| (k.clone(), *n)).collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counts_add_up_over_threads_and_renamed_sites() {
        let m = Arc::new(Metrics::default());
        let blog: Arc<str> = Arc::from("blog");
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (m, blog) = (m.clone(), blog.clone());
                s.spawn(move || {
                    for _ in 0..1000 {
                        m.request(&blog, 200, "HIT");
                    }
                    m.request(&blog, 404, "MISS");
                });
            }
        });
        // A reload names the site with a new Arc: one row still, in every
        // shard (the old row moves to the new name).
        let reloaded: Arc<str> = Arc::from("blog");
        m.request(&reloaded, 200, "HIT");
        m.request(&reloaded, 200, "HIT");
        let rows_in_shards: usize = m.requests.iter().map(|s| s.0.lock().unwrap().len()).sum();
        assert!(rows_in_shards <= 2 * 4 + 2, "{rows_in_shards} rows");
        m.request(&Arc::from("shop"), 200, "HIT");
        let rows = m.request_counts();
        let count = |site: &str, status, cache| {
            rows.iter()
                .find(|((s, st, c), _)| &**s == site && *st == status && *c == cache)
                .map(|(_, n)| *n)
        };
        assert_eq!(count("blog", 200, "HIT"), Some(4002));
        assert_eq!(count("blog", 404, "MISS"), Some(4));
        assert_eq!(count("shop", 200, "HIT"), Some(1));
        assert_eq!(rows.len(), 3);
    }
}
