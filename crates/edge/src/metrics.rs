//! Counters and histograms, rendered in the Prometheus text format on the ops
//! listener. Gauges (cache size, member health, pool counters) are read from
//! their owners at scrape time.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// (site, status, cache result)
type RequestLabels = (Arc<str>, u16, &'static str);

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<RequestLabels, u64>>,
    upstream: Mutex<HashMap<Arc<str>, Histogram>>,
    rate_limited: Mutex<HashMap<(Arc<str>, &'static str), u64>>,
    /// wp-cron.php runs by site and outcome ("ok", "failed").
    wp_cron: Mutex<HashMap<(Arc<str>, &'static str), u64>>,
    pub purges: AtomicU64,
    /// Entries purged by site and kind (url, prefix, tag, site, all).
    purged: Mutex<HashMap<(Arc<str>, &'static str), u64>>,
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

/// A counter by site and one more label, rows sorted.
fn per_site(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    counts: &Mutex<HashMap<(Arc<str>, &'static str), u64>>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let counts = counts.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<_> = counts.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    for ((site, value), n) in rows {
        let _ = writeln!(out, "{name}{{site=\"{site}\",{label}=\"{value}\"}} {n}");
    }
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

    /// Appends the request and upstream series.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP murakumo_requests_total Requests answered, by site, status and cache result.\n# TYPE murakumo_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = requests.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for ((site, status, cache), n) in rows {
            let _ = writeln!(out, "murakumo_requests_total{{site=\"{site}\",status=\"{status}\",cache=\"{cache}\"}} {n}");
        }
        drop(requests);
        out.push_str("# HELP murakumo_upstream_seconds Time from sending a request to php-fpm to its response head.\n# TYPE murakumo_upstream_seconds histogram\n");
        let upstream = self.upstream.lock().unwrap_or_else(|e| e.into_inner());
        let mut sites: Vec<_> = upstream.iter().collect();
        sites.sort_by(|a, b| a.0.cmp(b.0));
        for (site, h) in sites {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "murakumo_upstream_seconds_bucket{{site=\"{site}\",le=\"{b}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "murakumo_upstream_seconds_bucket{{site=\"{site}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "murakumo_upstream_seconds_sum{{site=\"{site}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "murakumo_upstream_seconds_count{{site=\"{site}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# TYPE murakumo_purge_requests_total counter\nmurakumo_purge_requests_total {}",
            self.purges.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP murakumo_purge_fanout_failures_total Other edges (purge_fanout) a purge did not reach.\n# TYPE murakumo_purge_fanout_failures_total counter\nmurakumo_purge_fanout_failures_total {}",
            self.purge_fanout_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE murakumo_tls_handshake_failures_total counter\nmurakumo_tls_handshake_failures_total {}",
            self.tls_handshake_failures.load(Ordering::Relaxed)
        );
        per_site(
            out,
            "murakumo_rate_limited_total",
            "Requests refused with 429, by site and limit (login or site).",
            "limit",
            &self.rate_limited,
        );
        per_site(
            out,
            "murakumo_wp_cron_runs_total",
            "Runs of wp-cron.php by the edge (site.wp_cron), by site and outcome.",
            "outcome",
            &self.wp_cron,
        );
        per_site(
            out,
            "murakumo_cache_purged_total",
            "Page-cache entries removed by purges, by site and kind (url, prefix, tag, site, all).",
            "kind",
            &self.purged,
        );
        let counters: [(&str, &str, &AtomicU64); 3] = [
            (
                "murakumo_connections_refused_per_client_total",
                "Connections closed at once because their client had max_connections_per_client open.",
                &self.connections_refused_per_client,
            ),
            (
                "murakumo_slow_readers_cut_total",
                "Connections cut because the client left a response unread for send_timeout.",
                &self.slow_readers_cut,
            ),
            (
                "murakumo_idle_connections_closed_total",
                "Connections closed after idle_timeout without a request in progress.",
                &self.idle_closed,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
    }
}
