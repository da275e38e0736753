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
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
        let (name, port) = split_host(host);
        let default_port = if https { 443 } else { 80 };
        let mut target = encode_path(path).into_owned();
        if let Some(q) = query.map(strip_tracking).filter(|q| !q.is_empty()) {
            target.push('?');
            target.push_str(&q);
        }
        CacheKey {
            site,
            https,
            // `example.com.` is `example.com` (the router agrees).
            host: name.trim_end_matches('.').to_ascii_lowercase(),
            port: port.filter(|p| *p != default_port),
            target,
        }
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

/// Bytes a path keeps as they are: RFC 3986's unreserved characters,
/// sub-delimiters, `:`, `@` and `/`. Everything else is `%xx`.
fn is_path_byte(b: u8) -> bool {
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
    if path.bytes().all(is_path_byte) {
        return Cow::Borrowed(path);
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(path.len() + 16);
    for b in path.bytes() {
        if is_path_byte(b) {
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
