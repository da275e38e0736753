//! `/metrics`: every series the edge exports, written by one Prometheus
//! text-format writer ([`Exposition`]): each family once, its `HELP` and
//! `TYPE` first, then all of its samples, label values escaped. Counters
//! come from [`crate::metrics`]; gauges are read from their owners (caches,
//! php-fpm pools, ACME, connections) at scrape time.

use std::fmt::{self, Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::metrics::BUCKETS;
use crate::state::Edge;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

#[derive(Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

/// A Prometheus text exposition being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// A label value, escaped as the text format wants (`\`, `"`, newline).
struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

impl Exposition {
    /// Starts a family: its `HELP` and `TYPE` lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        };
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample: `name{labels} value` (`name` may carry a histogram's
    /// `_bucket`, `_sum` or `_count` suffix).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &dyn Display)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v.to_string();
                let _ = write!(self.out, "{label}=\"{}\"", Escaped(&v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The whole `/metrics` page.
pub fn render(edge: &Edge) -> String {
    let mut x = Exposition::default();
    requests(&mut x, edge);
    counters(&mut x, edge);
    caches(&mut x, edge);
    php_pools(&mut x, edge);
    acme(&mut x, edge);
    shared_cache(&mut x, edge);
    x.single(
        "murakumo_draining",
        Kind::Gauge,
        "Whether the edge is draining (readiness fails).",
        u8::from(edge.is_draining()),
    );
    x.single(
        "murakumo_connections_open",
        Kind::Gauge,
        "Client connections open now.",
        edge.admission.open(),
    );
    x.finish()
}

fn requests(x: &mut Exposition, edge: &Edge) {
    let m = &edge.metrics;
    let name = "murakumo_requests_total";
    x.family(
        name,
        Kind::Counter,
        "Requests answered, by site, status and cache result.",
    );
    for ((site, status, cache), n) in m.request_counts() {
        x.sample(
            name,
            &[("site", &site), ("status", &status), ("cache", &cache)],
            n,
        );
    }
    let name = "murakumo_upstream_seconds";
    x.family(
        name,
        Kind::Histogram,
        "Time from sending a request to php-fpm to its response head.",
    );
    for (site, h) in m.upstream_histograms() {
        let bucket = format!("{name}_bucket");
        for (le, n) in BUCKETS.iter().zip(h.buckets) {
            x.sample(&bucket, &[("site", &site), ("le", le)], n);
        }
        x.sample(&bucket, &[("site", &site), ("le", &"+Inf")], h.count);
        x.sample(&format!("{name}_sum"), &[("site", &site)], h.sum);
        x.sample(&format!("{name}_count"), &[("site", &site)], h.count);
    }
}

/// Counters by site and one more label.
fn counters(x: &mut Exposition, edge: &Edge) {
    let m = &edge.metrics;
    let families = [
        (
            "murakumo_rate_limited_total",
            "Requests refused with 429, by site and limit (login or site).",
            "limit",
            m.rate_limited_counts(),
        ),
        (
            "murakumo_wp_cron_runs_total",
            "Runs of wp-cron.php by the edge (site.wp_cron), by site and outcome.",
            "outcome",
            m.wp_cron_counts(),
        ),
        (
            "murakumo_cache_purged_total",
            "Page-cache entries removed by purges, by site and kind (url, prefix, tag, site, all).",
            "kind",
            m.purged_counts(),
        ),
    ];
    for (name, help, label, rows) in families {
        x.family(name, Kind::Counter, help);
        for ((site, value), n) in rows {
            x.sample(name, &[("site", &site), (label, &value)], n);
        }
    }
    let plain: [(&str, &str, &AtomicU64); 7] = [
        (
            "murakumo_purge_requests_total",
            "Purge orders received on the ops listener.",
            &m.purges,
        ),
        (
            "murakumo_purge_fanout_failures_total",
            "Other edges (purge_fanout) a purge did not reach.",
            &m.purge_fanout_failures,
        ),
        (
            "murakumo_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out.",
            &m.tls_handshake_failures,
        ),
        (
            "murakumo_connections_refused_per_client_total",
            "Connections closed at once because their client had max_connections_per_client open.",
            &m.connections_refused_per_client,
        ),
        (
            "murakumo_slow_readers_cut_total",
            "Connections cut because the client left a response unread for send_timeout.",
            &m.slow_readers_cut,
        ),
        (
            "murakumo_idle_connections_closed_total",
            "Connections closed after idle_timeout without a request in progress.",
            &m.idle_closed,
        ),
        (
            "murakumo_header_timeouts_total",
            "Connections dropped because a request head took longer than header_timeout to arrive.",
            &m.header_timeouts,
        ),
    ];
    for (name, help, value) in plain {
        x.single(name, Kind::Counter, help, value.load(Ordering::Relaxed));
    }
}

/// The page cache's size, per site.
fn caches(x: &mut Exposition, edge: &Edge) {
    let sites = edge.sites();
    let caches: Vec<(&Arc<str>, [u64; 4])> = sites
        .list
        .iter()
        .filter_map(|site| {
            let c = site.cache.as_ref()?;
            let ((entries, bytes), (tags, refs)) = (c.store.usage(), c.store.tag_usage());
            Some((&site.name, [entries, bytes, tags as u64, refs as u64]))
        })
        .collect();
    let families = [
        ("murakumo_cache_entries", "Entries in the page cache."),
        ("murakumo_cache_bytes", "Bytes the page cache holds."),
        (
            "murakumo_cache_tags",
            "Distinct tags in the page cache's tag index.",
        ),
        (
            "murakumo_cache_tag_refs",
            "(tag, entry) references in the tag index.",
        ),
    ];
    for (i, (name, help)) in families.into_iter().enumerate() {
        x.family(name, Kind::Gauge, help);
        for (site, values) in &caches {
            x.sample(name, &[("site", site)], values[i]);
        }
    }
}

/// The shared page cache (Redis), when there is one.
fn shared_cache(x: &mut Exposition, edge: &Edge) {
    let Some(shared) = edge.shared() else { return };
    let s = shared.stats();
    let counters = [
        (
            "murakumo_shared_cache_hits_total",
            "Lookups in the shared cache that found a page.",
            &s.hits,
        ),
        (
            "murakumo_shared_cache_misses_total",
            "Lookups in the shared cache that found none.",
            &s.misses,
        ),
        (
            "murakumo_shared_cache_errors_total",
            "Shared cache calls that failed or timed out (answered without it).",
            &s.errors,
        ),
        (
            "murakumo_shared_cache_stores_total",
            "Pages stored in the shared cache.",
            &s.stores,
        ),
        (
            "murakumo_shared_cache_overtaken_total",
            "Pages not stored in the shared cache: a purge came while PHP rendered them.",
            &s.overtaken,
        ),
        (
            "murakumo_shared_cache_purges_sent_total",
            "Purges this edge stamped in the shared cache and announced.",
            &s.purges_sent,
        ),
        (
            "murakumo_shared_cache_purges_applied_total",
            "Purges announced by other edges and applied to this edge's memory.",
            &s.purges_applied,
        ),
    ];
    for (name, help, value) in counters {
        x.single(name, Kind::Counter, help, value.load(Ordering::Relaxed));
    }
    let micros = s.lookup_micros.load(Ordering::Relaxed);
    x.family(
        "murakumo_shared_cache_lookup_seconds",
        Kind::Summary,
        "Time shared cache lookups took.",
    );
    x.sample(
        "murakumo_shared_cache_lookup_seconds_sum",
        &[],
        format!("{:.6}", micros as f64 / 1e6),
    );
    x.sample(
        "murakumo_shared_cache_lookup_seconds_count",
        &[],
        s.lookups.load(Ordering::Relaxed),
    );
    x.single(
        "murakumo_shared_cache_up",
        Kind::Gauge,
        "Whether the edge reaches the shared cache now.",
        u8::from(shared.status() == murakumo_shared_cache::Status::Up),
    );
}

/// Every php-fpm pool (public, and admin when it is another): members and
/// connection counters.
fn php_pools(x: &mut Exposition, edge: &Edge) {
    let sites = edge.sites();
    let pools: Vec<_> = sites
        .list
        .iter()
        .flat_map(|site| {
            let admin = (!Arc::ptr_eq(&site.public, &site.admin)).then_some(&site.admin);
            std::iter::once(&site.public)
                .chain(admin)
                .map(move |p| (&site.name, p))
        })
        .collect();
    type MemberValue = fn(&murakumo_fastcgi::pool::MemberStatus) -> u64;
    let members: [(&str, Kind, &str, MemberValue); 3] = [
        (
            "murakumo_php_member_up",
            Kind::Gauge,
            "Whether a php-fpm member accepts connections.",
            |m| u64::from(m.up),
        ),
        (
            "murakumo_php_member_outstanding",
            Kind::Gauge,
            "Requests a php-fpm member is serving now.",
            |m| m.outstanding as u64,
        ),
        (
            "murakumo_php_member_idle_connections",
            Kind::Gauge,
            "Kept-alive connections to a php-fpm member, idle now.",
            |m| m.idle as u64,
        ),
    ];
    let statuses: Vec<_> = pools.iter().map(|(_, p)| p.pool.status()).collect();
    for (name, kind, help, value) in members {
        x.family(name, kind, help);
        for ((site, p), members) in pools.iter().zip(&statuses) {
            for m in members {
                x.sample(
                    name,
                    &[("site", site), ("pool", &p.role), ("member", &m.address)],
                    value(m),
                );
            }
        }
    }
    type PoolValue = fn(&crate::php::PhpPool) -> u64;
    let counters: [(&str, Kind, &str, PoolValue); 5] = [
        (
            "murakumo_fastcgi_connections_opened_total",
            Kind::Counter,
            "FastCGI connections opened to php-fpm.",
            |p| p.pool.stats().opened.load(Ordering::Relaxed),
        ),
        (
            "murakumo_fastcgi_connections_reused_total",
            Kind::Counter,
            "Requests sent on a kept-alive FastCGI connection.",
            |p| p.pool.stats().reused.load(Ordering::Relaxed),
        ),
        (
            "murakumo_fastcgi_connect_failures_total",
            Kind::Counter,
            "Failed connection attempts to php-fpm members.",
            |p| p.pool.stats().connect_failures.load(Ordering::Relaxed),
        ),
        (
            "murakumo_php_saturated_total",
            Kind::Counter,
            "Requests answered 503 because the php pool stayed busy or its queue was full.",
            |p| p.pool.stats().saturated.load(Ordering::Relaxed),
        ),
        (
            "murakumo_php_queued",
            Kind::Gauge,
            "Requests waiting for a php-fpm connection.",
            |p| p.pool.queued() as u64,
        ),
    ];
    for (name, kind, help, value) in counters {
        x.family(name, kind, help);
        for (site, p) in &pools {
            x.sample(name, &[("site", site), ("pool", &p.role)], value(p));
        }
    }
}

/// ACME certificates, per site that uses it.
fn acme(x: &mut Exposition, edge: &Edge) {
    let Some(acme) = edge.certs.acme() else {
        return;
    };
    let statuses = acme.statuses();
    let unix = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    };
    type AcmeValue<'a> = Box<dyn Fn(&murakumo_tls::acme::Status) -> u64 + 'a>;
    let families: [(&str, Kind, &str, AcmeValue); 5] = [
        (
            "murakumo_certificate_expiry_seconds",
            Kind::Gauge,
            "When the site's ACME certificate expires (Unix time).",
            Box::new(move |s| unix(s.not_after)),
        ),
        (
            "murakumo_acme_renewal_failing",
            Kind::Gauge,
            "Whether the last renewal of the site's certificate failed.",
            Box::new(|s| u64::from(s.last_error.is_some())),
        ),
        (
            "murakumo_acme_failures_total",
            Kind::Counter,
            "Failed ACME orders.",
            Box::new(|s| s.failures),
        ),
        (
            "murakumo_acme_certificates_issued_total",
            Kind::Counter,
            "Certificates this edge ordered and was issued by ACME.",
            Box::new(|s| s.issued),
        ),
        (
            "murakumo_acme_certificates_adopted_total",
            Kind::Counter,
            "Certificates another edge of the fleet ordered, served here.",
            Box::new(|s| s.adopted),
        ),
    ];
    for (name, kind, help, value) in families {
        x.family(name, kind, help);
        for (site, s) in &statuses {
            x.sample(name, &[("site", site)], value(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_with_escaped_labels() {
        let mut x = Exposition::default();
        x.family("a_total", Kind::Counter, "Things.");
        x.sample(
            "a_total",
            &[("site", &"blog"), ("member", &"unix:/run/a\"b")],
            3,
        );
        x.sample("a_total", &[], 1.5);
        assert_eq!(
            x.finish(),
            "# HELP a_total Things.\n# TYPE a_total counter\n\
             a_total{site=\"blog\",member=\"unix:/run/a\\\"b\"} 3\na_total 1.5\n"
        );
    }
}
