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

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<RequestLabels, u64>>,
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
}

impl Metrics {
    pub fn request(&self, site: &Arc<str>, status: u16, cache: &'static str) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((site.clone(), status, cache)).or_default() += 1;
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

    /// The request counts, sorted by label.
    pub fn request_counts(&self) -> Vec<(RequestLabels, u64)> {
        sorted(&self.requests)
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

fn sorted<K: Ord + Clone>(m: &Mutex<HashMap<K, u64>>) -> Vec<(K, u64)> {
    let m = m.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<_> = m.iter().map(|(k, n)| (k.clone(), *n)).collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}
