//! Picks the site for a request by its Host: exact names first, then the
//! longest matching wildcard. The port in Host is ignored for matching.

use std::collections::HashMap;
use std::sync::Arc;

use murakumo_config::HostPattern;

/// The names are the configuration's, so no client can fill a bucket:
/// a fast unseeded hash serves.
type NameHasher = foldhash::fast::FixedState;

pub struct Router<T> {
    exact: HashMap<String, Arc<T>, NameHasher>,
    /// (suffix, site), longest suffix first.
    wildcards: Vec<(String, Arc<T>)>,
}

impl<T> Router<T> {
    pub fn new(entries: impl IntoIterator<Item = (HostPattern, Arc<T>)>) -> Self {
        let mut exact = HashMap::default();
        let mut wildcards = Vec::new();
        for (pattern, site) in entries {
            match pattern {
                HostPattern::Exact(name) => {
                    exact.insert(name, site);
                }
                HostPattern::Wildcard(suffix) => wildcards.push((suffix, site)),
            }
        }
        wildcards.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Router { exact, wildcards }
    }

    /// The site for a Host header value (`name` or `name:port`).
    pub fn route(&self, host: &str) -> Option<&Arc<T>> {
        self.route_name(&murakumo_cache::key::host_name(host))
    }

    /// The site for a host name as [`murakumo_cache::key::host_name`] reads
    /// it (lowercase, no port, no trailing dot).
    pub fn route_name(&self, name: &str) -> Option<&Arc<T>> {
        if let Some(site) = self.exact.get(name) {
            return Some(site);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| {
                name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            })
            .map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_before_wildcard_and_longest_wildcard_first() {
        let r = Router::new([
            (HostPattern::parse("wp.test").unwrap(), Arc::new("blog")),
            (HostPattern::parse("*.wp.test").unwrap(), Arc::new("any")),
            (
                HostPattern::parse("*.shop.wp.test").unwrap(),
                Arc::new("shop"),
            ),
            (HostPattern::parse("www.wp.test").unwrap(), Arc::new("www")),
        ]);
        assert_eq!(**r.route("wp.test:8080").unwrap(), "blog");
        assert_eq!(**r.route("WWW.wp.test").unwrap(), "www");
        assert_eq!(**r.route("a.wp.test").unwrap(), "any");
        assert_eq!(**r.route("x.y.wp.test").unwrap(), "any");
        assert_eq!(**r.route("a.shop.wp.test").unwrap(), "shop");
        assert!(r.route("evilwp.test").is_none());
        assert!(r.route("other.test").is_none());
    }
}
