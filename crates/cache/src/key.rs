//! Cache keys, and the one canonical request each key stands for.
//!
//! The rule the page cache keeps: everything PHP sees that can change a
//! response is either part of the key or normalised away before PHP sees
//! it. A key is built from the scheme, the host and port the client named
//! (lowercase, no trailing dot; the scheme's default port dropped), the
//! normalised path and
//! the query without tracking parameters. The edge fills an entry by sending
//! PHP exactly this key's request ([`CacheKey::request_uri`],
//! [`CacheKey::host_header`]), never the variant a client happened to send,
//! so `GET //`, `/%73ample-page/` or `/?utm_source=<script>` are rendered as
//! `/`, `/sample-page/` and `/`, and no variant can put another page (a
//! canonical redirect, a reflected parameter) under a key.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub site: Arc<str>,
    pub https: bool,
    /// Host name, lowercase, without port.
    pub host: String,
    /// The port the client named, unless it is the scheme's default.
    pub port: Option<u16>,
    /// The request target PHP is given: the normalised path percent-encoded
    /// one way ([`encode_path`]) and the query without tracking parameters,
    /// e.g. `/2024/05/hello/`, `/caf%c3%a9/`.
    pub target: String,
}

/// A request's key as the request spells it, borrowed where it can be:
/// what a cache hit looks up with, so that a hit allocates nothing for
/// its key (a host already in lowercase, a path with nothing to escape and
/// no query are the common case). [`KeyView::to_key`] makes the
/// [`CacheKey`] a miss stores under; both hash and compare alike
/// ([`Equivalent`](equivalent::Equivalent)).
#[derive(Debug)]
pub struct KeyView<'a> {
    site: &'a Arc<str>,
    https: bool,
    host: Cow<'a, str>,
    port: Option<u16>,
    /// The encoded path, no query.
    path: Cow<'a, str>,
    /// The query without tracking parameters, when any is left.
    query: Option<String>,
}

impl<'a> KeyView<'a> {
    /// `host` is the Host header as sent, `path` the normalised (decoded)
    /// path, `query` the raw query.
    pub fn new(
        site: &'a Arc<str>,
        https: bool,
        host: &'a str,
        path: &'a str,
        query: Option<&str>,
    ) -> KeyView<'a> {
        let (name, port) = split_host(host);
        KeyView::of_host(site, https, canonical_name(name), port, path, query)
    }

    /// As [`KeyView::new`], with the Host already read: `name` as
    /// [`host_name`] reads it, `port` as [`host_port`] does.
    pub fn of_host(
        site: &'a Arc<str>,
        https: bool,
        name: Cow<'a, str>,
        port: Option<u16>,
        path: &'a str,
        query: Option<&str>,
    ) -> KeyView<'a> {
        let default_port = if https { 443 } else { 80 };
        KeyView {
            site,
            https,
            host: name,
            port: port.filter(|p| *p != default_port),
            path: encode_path(path),
            query: query.map(strip_tracking).filter(|q| !q.is_empty()),
        }
    }

    /// The key this view stands for.
    pub fn to_key(&self) -> CacheKey {
        let mut target =
            String::with_capacity(self.path.len() + self.query.as_ref().map_or(0, |q| q.len() + 1));
        target.push_str(&self.path);
        if let Some(q) = &self.query {
            target.push('?');
            target.push_str(q);
        }
        CacheKey {
            site: self.site.clone(),
            https: self.https,
            host: self.host.clone().into_owned(),
            port: self.port,
            target,
        }
    }
}

/// How a key is hashed, owned or viewed: the path and the query apart (an
/// encoded path holds no `?`, so a target splits at its first one). The
/// site is left out: each site has a page cache of its own, where every
/// key has the same one (equality still compares it).
fn hash_parts<H: Hasher>(
    state: &mut H,
    (https, host, port): (bool, &str, Option<u16>),
    path: &str,
    query: Option<&str>,
) {
    https.hash(state);
    host.hash(state);
    port.hash(state);
    path.hash(state);
    query.hash(state);
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (path, query) = match self.target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (&self.target[..], None),
        };
        let head = (self.https, &self.host[..], self.port);
        hash_parts(state, head, path, query);
    }
}

impl Hash for KeyView<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let head = (self.https, &self.host[..], self.port);
        hash_parts(state, head, &self.path, self.query.as_deref());
    }
}

impl KeyView<'_> {
    /// A cheap hash for the hot-entry memo ([`crate::hot`]): a few
    /// multiplies over the path, host and query bytes. Not for a table a
    /// client could fill: keys aimed at one slot only miss the memo.
    pub(crate) fn memo_hash(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = u64::from(self.https) ^ (u64::from(self.port.unwrap_or(0)) << 8);
        let query = self.query.as_deref().unwrap_or("");
        for part in [self.path.as_bytes(), self.host.as_bytes(), query.as_bytes()] {
            let mut chunks = part.chunks_exact(8);
            for c in &mut chunks {
                let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                h = (h.rotate_left(5) ^ word).wrapping_mul(K);
            }
            let last = chunks
                .remainder()
                .iter()
                .fold(part.len() as u64, |w, &b| (w << 8) | u64::from(b));
            h = (h.rotate_left(5) ^ last).wrapping_mul(K);
        }
        h ^ (h >> 29)
    }

    /// Whether this view names `key`, the site aside: for keys of one
    /// site's store, where every key has the same one.
    pub(crate) fn names_in_site(&self, key: &CacheKey) -> bool {
        let target = key.target.as_bytes();
        let path = self.path.as_bytes();
        let target_matches = match &self.query {
            None => target == path,
            Some(q) => {
                target.len() == path.len() + 1 + q.len()
                    && target.starts_with(path)
                    && target[path.len()] == b'?'
                    && target.ends_with(q.as_bytes())
            }
        };
        target_matches && self.https == key.https && self.port == key.port && *self.host == key.host
    }
}

impl equivalent::Equivalent<CacheKey> for KeyView<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        self.names_in_site(key) && **self.site == *key.site
    }
}

impl CacheKey {
    /// `host` is the Host header as sent, `path` the normalised (decoded)
    /// path, `query` the raw query.
    pub fn new(
        site: Arc<str>,
        https: bool,
        host: &str,
        path: &str,
        query: Option<&str>,
    ) -> CacheKey {
        KeyView::new(&site, https, host, path, query).to_key()
    }

    /// The `Host` header PHP is given for this key.
    pub fn host_header(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The port the client addressed (the scheme's default when it named none).
    pub fn server_port(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }

    /// `REQUEST_URI` for this key.
    pub fn request_uri(&self) -> &str {
        &self.target
    }

    /// `QUERY_STRING` for this key (empty when there is none).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// Whether `other` names the same resource (the site aside): a redirect
    /// from this key to `other` would be a loop.
    pub fn same_resource(&self, other: &CacheKey) -> bool {
        self.https == other.https
            && self.host == other.host
            && self.port == other.port
            && self.target == other.target
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.target)
    }
}

/// `example.com:8080` → (`example.com`, 8080); `[::1]:80` → (`[::1]`, 80);
/// a port that is not a number stays part of the name.
fn split_host(host: &str) -> (&str, Option<u16>) {
    let name = host_without_port(host);
    let port = host
        .get(name.len()..)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|p| p.parse::<u16>().ok());
    (name, port)
}

/// The port a Host header names, if it names one.
pub fn host_port(host: &str) -> Option<u16> {
    split_host(host).1
}

/// The name a Host header names, as keys, routes and redirects compare it:
/// no port, no trailing dot (`example.com.` is `example.com`), lowercase.
pub fn host_name(host: &str) -> Cow<'_, str> {
    canonical_name(host_without_port(host))
}

/// A host name (its port split off) without trailing dots, in lowercase;
/// borrowed when it already is.
fn canonical_name(name: &str) -> Cow<'_, str> {
    let name = name.trim_end_matches('.');
    match name.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(name.to_ascii_lowercase()),
        false => Cow::Borrowed(name),
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
    // The port: the digits after the last `:` (none: `host:`).
    let b = host.as_bytes();
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    let colon = b.len() - digits;
    match colon.checked_sub(1) {
        Some(i) if b[i] == b':' => &host[..i],
        _ => host,
    }
}

/// [`is_path_byte`] as a table: every cacheable request's path is checked
/// byte by byte.
const PATH_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_path_byte(b as u8);
        b += 1;
    }
    table
};

/// Bytes a path keeps as they are: RFC 3986's unreserved characters,
/// sub-delimiters, `:`, `@` and `/`. Everything else is `%xx`.
const fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// The one encoded form of a decoded path: what may stay literal stays
/// literal (`%73` becomes `s`), the rest is escaped with lowercase hex, as
/// WordPress writes its own permalinks (`/caf%c3%a9/`). `?` and `#` in a
/// decoded path are escaped, so a path can never pose as a query.
pub fn encode_path(path: &str) -> Cow<'_, str> {
    if path.bytes().all(|b| PATH_BYTES[b as usize]) {
        return Cow::Borrowed(path);
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(path.len() + 16);
    for b in path.bytes() {
        if PATH_BYTES[b as usize] {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    Cow::Owned(out)
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

    fn key(https: bool, host: &str, path: &str, query: Option<&str>) -> CacheKey {
        CacheKey::new("blog".into(), https, host, path, query)
    }

    #[test]
    fn tracking_params_do_not_split_entries() {
        let a = key(false, "WP.test", "/", Some("utm_source=x&fbclid=1"));
        let b = key(false, "wp.test", "/", None);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "http://wp.test/");
        assert_eq!(a.request_uri(), "/");
        assert_eq!(a.query(), "");
        let c = key(false, "wp.test", "/", Some("p=1&utm_medium=m"));
        assert_eq!(c.target, "/?p=1");
        assert_eq!(c.query(), "p=1");
    }

    #[test]
    fn the_port_the_client_named_is_part_of_the_key() {
        let a = key(true, "localhost:18443", "/", None);
        let b = key(true, "localhost", "/", None);
        assert_ne!(
            a, b,
            "a redirect for Host: localhost must not land on :18443"
        );
        assert_eq!(a.host_header(), "localhost:18443");
        assert_eq!(a.server_port(), 18443);
        // The scheme's default port is the same as none.
        assert_eq!(key(true, "localhost:443", "/", None), b);
        assert_eq!(b.host_header(), "localhost");
        assert_eq!(b.server_port(), 443);
        assert_eq!(key(false, "a.test:80", "/", None).port, None);
        assert_eq!(key(false, "a.test:443", "/", None).port, Some(443));
        assert_eq!(
            key(false, "[::1]:8080", "/", None).host_header(),
            "[::1]:8080"
        );
        assert_eq!(key(true, "Localhost.:18443", "/", None), a);
        // Not a port: kept in the name, never silently dropped.
        assert_eq!(key(false, "a.test:x", "/", None).host, "a.test:x");
    }

    #[test]
    fn paths_have_one_encoding() {
        assert_eq!(encode_path("/sample-page/"), "/sample-page/");
        assert_eq!(encode_path("/café/"), "/caf%c3%a9/");
        assert_eq!(encode_path("/a?b#c d"), "/a%3fb%23c%20d");
        assert_eq!(encode_path("/tag/a+b/"), "/tag/a+b/");
        assert_eq!(encode_path("/%"), "/%25");
        // A decoded `?` never becomes a query.
        assert_ne!(
            key(false, "a", "/x?p=1", None),
            key(false, "a", "/x", Some("p=1"))
        );
    }

    #[test]
    fn a_view_finds_the_key_it_stands_for_and_no_other() {
        use equivalent::Equivalent;
        use std::hash::BuildHasher;
        let hasher = foldhash::quality::RandomState::default();
        let site: Arc<str> = "blog".into();
        let cases = [
            (false, "wp.test", "/", None),
            (true, "WP.test.:8443", "/café/", Some("utm_source=x&p=1&b=")),
            (false, "wp.test:80", "/a/", Some("q=1")),
            (true, "[::1]:443", "/x?y/", None),
            (false, "wp.test", "/", Some("fbclid=1")),
        ];
        for (https, host, path, query) in cases {
            let view = KeyView::new(&site, https, host, path, query);
            let key = CacheKey::new(site.clone(), https, host, path, query);
            assert!(view.equivalent(&key), "{key}");
            assert_eq!(view.to_key(), key);
            assert_eq!(hasher.hash_one(&view), hasher.hash_one(&key), "{key}");
            // The memo's hash: one for every spelling of the key.
            let upper = host.to_uppercase();
            let spelt = KeyView::new(&site, https, &upper, path, query);
            assert_eq!(view.memo_hash(), spelt.memo_hash(), "{key}");
            for (h2, host2, path2, query2) in cases {
                let other = CacheKey::new(site.clone(), h2, host2, path2, query2);
                assert_eq!(view.equivalent(&other), key == other, "{key} / {other}");
                assert_eq!(view.names_in_site(&other), key == other, "{key} / {other}");
                let other_view = KeyView::new(&site, h2, host2, path2, query2);
                if key != other {
                    assert_ne!(view.memo_hash(), other_view.memo_hash(), "{key} / {other}");
                }
            }
            let elsewhere = CacheKey::new("shop".into(), https, host, path, query);
            assert!(!view.equivalent(&elsewhere));
        }
        // A decoded `?` in the path is not a query.
        let view = KeyView::new(&site, false, "a", "/x?p=1", None);
        let key = CacheKey::new(site.clone(), false, "a", "/x", Some("p=1"));
        assert!(!view.equivalent(&key));
    }

    #[test]
    fn ports_are_dropped() {
        assert_eq!(host_without_port("a.test:80"), "a.test");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("a.test"), "a.test");
        assert_eq!(host_without_port("a.test:"), "a.test");
        assert_eq!(host_without_port("a:b:80"), "a:b");
        assert_eq!(host_without_port("8080"), "8080");
        assert_eq!(host_without_port("a.test:8x"), "a.test:8x");
        assert_eq!(host_without_port(""), "");
    }

    proptest::proptest! {
        /// The key's one spelling of a normalised path (percent-encoded one
        /// way) decodes back to that path, and is the spelling of what it
        /// decodes to.
        #[test]
        fn the_key_spelling_decodes_to_the_normalised_path(raw in "/[a-z%./\\\\0-9A-F?#é ]{0,40}") {
            use murakumo_path::normalise;
            if let Ok(p) = normalise(&raw) {
                let spelt = encode_path(&p);
                proptest::prop_assert_eq!(normalise(&spelt), Ok(p.clone()));
                let again = normalise(&spelt).unwrap();
                proptest::prop_assert_eq!(encode_path(&again), spelt.clone());
            }
        }
    }
}
