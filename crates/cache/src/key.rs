//! Cache keys: site, scheme, host (lowercase, port dropped), path and the
//! query with tracking parameters removed, so `/?utm_source=x` and `/` share
//! one entry and purging `http://host/` reaches both.

use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub site: Arc<str>,
    pub https: bool,
    pub host: String,
    /// Path and (filtered) query, e.g. `/2024/05/hello/` or `/?p=1`.
    pub target: String,
}

impl CacheKey {
    pub fn new(
        site: Arc<str>,
        https: bool,
        host: &str,
        path: &str,
        query: Option<&str>,
    ) -> CacheKey {
        let host = host_without_port(host).to_ascii_lowercase();
        let mut target = path.to_string();
        if let Some(q) = query.map(strip_tracking).filter(|q| !q.is_empty()) {
            target.push('?');
            target.push_str(&q);
        }
        CacheKey {
            site,
            https,
            host,
            target,
        }
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host, self.target)
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Query parameters that only tell analytics where a visitor came from; they
/// never change the page.
pub fn is_tracking_param(name: &str) -> bool {
    const EXACT: [&str; 9] = [
        "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "_ga", "_gl", "yclid",
    ];
    name.starts_with("utm_") || EXACT.contains(&name)
}

/// The query without tracking parameters, other parameters kept in order.
pub fn strip_tracking(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| !is_tracking_param(kv.split('=').next().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_params_do_not_split_entries() {
        let site: Arc<str> = "blog".into();
        let a = CacheKey::new(
            site.clone(),
            false,
            "WP.test:8080",
            "/",
            Some("utm_source=x&fbclid=1"),
        );
        let b = CacheKey::new(site.clone(), false, "wp.test", "/", None);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "http://wp.test/");
        let c = CacheKey::new(site, false, "wp.test", "/", Some("p=1&utm_medium=m"));
        assert_eq!(c.target, "/?p=1");
    }

    #[test]
    fn ports_are_dropped() {
        assert_eq!(host_without_port("a.test:80"), "a.test");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("a.test"), "a.test");
    }
}
