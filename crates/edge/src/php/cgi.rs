//! The CGI environment sent to php-fpm, as nginx and Caddy give it to
//! WordPress: script and path info from [`crate::pipeline::resolve`], `REQUEST_URI` as
//! the client sent it, `HTTP_HOST` with its port, every header as `HTTP_*`
//! except `Proxy` (httpoxy) and names with `_` (ambiguous with `-`).
//!
//! A page-cache fill is different ([`fill_params`]): PHP is sent the
//! canonical request of the cache key, not the client's: the key's
//! `REQUEST_URI`, `Host` and port, and no client header at all but a fixed
//! `User-Agent`. Whatever PHP does with the request, it can only use what
//! every client sharing that key has in common, so nothing one client sends
//! (a `//` path, a reflected `utm_` parameter, `X-Forwarded-Host`, a cookie,
//! `Accept-Language`) is ever stored for the others. The client's address is
//! still given (`REMOTE_ADDR`), for PHP-side logs and security plugins: a
//! page that shows it must say `Cache-Control: private`.

use std::net::SocketAddr;
use std::path::Path;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method};
use murakumo_cache::CacheKey;
use murakumo_fastcgi::params::Params;

pub struct CgiRequest<'a> {
    pub method: &'a Method,
    /// Path and query, as `REQUEST_URI`.
    pub request_uri: &'a str,
    pub query: &'a str,
    /// The `Host` header (`HTTP_HOST`, and `SERVER_NAME` without its port).
    pub host: &'a str,
    /// The other headers, as `HTTP_*`.
    pub headers: &'a HeaderMap,
    pub root: &'a Path,
    pub script: &'a str,
    pub path_info: &'a str,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// `SERVER_PORT`: the listener's, or for a fill the port of the key.
    pub server_port: u16,
    pub https: bool,
    pub content_length: Option<u64>,
}

/// Where a cache fill runs: the script [`crate::pipeline::resolve`] chose for the
/// key's path, and the connection that asked.
pub struct FillTarget<'a> {
    pub root: &'a Path,
    pub script: &'a str,
    pub path_info: &'a str,
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// The `User-Agent` of every cache fill: a desktop browser's shape (so
/// `wp_is_mobile()` and user-agent checks see an ordinary visitor, the same
/// one every time), naming murakumo.
pub const FILL_USER_AGENT: &str = concat!(
    "Mozilla/5.0 (compatible; murakumo-page-cache/",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// The CGI environment of the canonical GET for `key` (see the module doc).
pub fn fill_params(key: &CacheKey, at: &FillTarget<'_>) -> Params {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(FILL_USER_AGENT),
    );
    params(&CgiRequest {
        method: &Method::GET,
        request_uri: key.request_uri(),
        query: key.query(),
        host: &key.host_header(),
        headers: &headers,
        root: at.root,
        script: at.script,
        path_info: at.path_info,
        remote: at.remote,
        local: at.local,
        server_port: key.server_port(),
        https: key.https,
        content_length: None,
    })
}

const SERVER_SOFTWARE: &str = concat!("murakumo/", env!("CARGO_PKG_VERSION"));

pub fn params(r: &CgiRequest<'_>) -> Params {
    let mut p = Params::new();
    let root = r.root.to_string_lossy();
    let root = root.trim_end_matches('/');
    let server_name = murakumo_cache::key::host_without_port(r.host);
    p.insert("GATEWAY_INTERFACE", "CGI/1.1");
    p.insert("SERVER_SOFTWARE", SERVER_SOFTWARE);
    p.insert("SERVER_PROTOCOL", "HTTP/1.1");
    p.insert("REQUEST_METHOD", r.method.as_str().to_string());
    p.insert("REQUEST_SCHEME", if r.https { "https" } else { "http" });
    if r.https {
        p.insert("HTTPS", "on");
    }
    p.insert("SCRIPT_FILENAME", format!("{root}{}", r.script));
    p.insert("SCRIPT_NAME", r.script.to_string());
    if !r.path_info.is_empty() {
        p.insert("PATH_INFO", r.path_info.to_string());
    }
    p.insert("DOCUMENT_URI", format!("{}{}", r.script, r.path_info));
    p.insert("DOCUMENT_ROOT", root.to_string());
    p.insert("REQUEST_URI", r.request_uri.to_string());
    p.insert("QUERY_STRING", r.query.to_string());
    p.insert("REMOTE_ADDR", r.remote.ip().to_string());
    p.insert("REMOTE_PORT", r.remote.port().to_string());
    p.insert("SERVER_ADDR", r.local.ip().to_string());
    p.insert("SERVER_PORT", r.server_port.to_string());
    p.insert("SERVER_NAME", server_name.to_string());
    p.insert("REDIRECT_STATUS", "200");
    if let Some(ct) = r.headers.get(http::header::CONTENT_TYPE) {
        p.insert("CONTENT_TYPE", bytes::Bytes::copy_from_slice(ct.as_bytes()));
    }
    if let Some(len) = r.content_length {
        p.insert("CONTENT_LENGTH", len.to_string());
    }
    if !r.host.is_empty() {
        p.insert("HTTP_HOST", r.host.to_string());
    }
    for name in r.headers.keys() {
        let n = name.as_str();
        if matches!(n, "host" | "proxy" | "content-type" | "content-length") || n.contains('_') {
            continue;
        }
        let separator: &[u8] = if n == "cookie" { b"; " } else { b", " };
        let mut value = Vec::new();
        for (i, v) in r.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(separator);
            }
            value.extend_from_slice(v.as_bytes());
        }
        let mut cgi = String::with_capacity(5 + n.len());
        cgi.push_str("HTTP_");
        cgi.extend(n.chars().map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
        p.insert(cgi, value);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn get(p: &Params, k: &str) -> Option<String> {
        p.get(k).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn environment_for_wordpress() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("wp.test:8080"));
        h.insert("proxy", HeaderValue::from_static("http://evil"));
        h.insert("x_forwarded_for", HeaderValue::from_static("1.1.1.1"));
        h.insert("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        let req = CgiRequest {
            method: &Method::GET,
            request_uri: "/2024/hello/?utm_source=x",
            query: "utm_source=x",
            host: "wp.test:8080",
            headers: &h,
            root: Path::new("/srv/blog/"),
            script: "/index.php",
            path_info: "",
            remote: "10.0.0.9:5555".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            server_port: 8080,
            https: true,
            content_length: None,
        };
        let p = params(&req);
        let get = |k: &str| get(&p, k);
        assert_eq!(get("SCRIPT_FILENAME").unwrap(), "/srv/blog/index.php");
        assert_eq!(get("SCRIPT_NAME").unwrap(), "/index.php");
        assert_eq!(get("REQUEST_URI").unwrap(), "/2024/hello/?utm_source=x");
        assert_eq!(get("QUERY_STRING").unwrap(), "utm_source=x");
        assert_eq!(get("HTTP_HOST").unwrap(), "wp.test:8080");
        assert_eq!(get("SERVER_NAME").unwrap(), "wp.test");
        assert_eq!(get("SERVER_PORT").unwrap(), "8080");
        assert_eq!(get("HTTPS").unwrap(), "on");
        assert_eq!(get("REMOTE_ADDR").unwrap(), "10.0.0.9");
        assert_eq!(get("HTTP_COOKIE").unwrap(), "a=1; b=2");
        assert_eq!(get("HTTP_X_FORWARDED_FOR").unwrap(), "2.2.2.2");
        assert_eq!(get("HTTP_PROXY"), None);
        assert_eq!(get("PATH_INFO"), None);
        assert_eq!(p.iter().filter(|(n, _)| *n == b"HTTP_HOST").count(), 1);
    }

    /// What the edge does with a cacheable request, from the raw target to
    /// the parameters of its fill: `None` when it bypasses the cache.
    fn fill_for(target: &str, host: &str, cookie: &str) -> Option<(CacheKey, Params)> {
        let uri: http::Uri = target.parse().ok()?;
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).ok()?);
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).ok()?);
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.test"));
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("ja"));
        let path = murakumo_path::normalise(uri.path()).ok()?;
        let policy = murakumo_cache::Policy {
            ttl: std::time::Duration::from_secs(60),
            ttl_404: std::time::Duration::from_secs(60),
            feeds: false,
        };
        if policy
            .request_bypass(&Method::GET, &path, uri.query(), &h)
            .is_some()
        {
            return None;
        }
        let key = CacheKey::new("blog".into(), true, host, &path, uri.query());
        let at = FillTarget {
            root: Path::new("/srv/blog"),
            script: "/index.php",
            path_info: "",
            remote: "192.0.2.7:4000".parse().unwrap(),
            local: "127.0.0.1:18443".parse().unwrap(),
        };
        let params = fill_params(&key, &at);
        Some((key, params))
    }

    fn pairs(p: &Params) -> Vec<(Vec<u8>, Vec<u8>)> {
        p.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn a_fill_is_the_canonical_request_of_its_key() {
        let (key, canonical) = fill_for("/sample-page/", "localhost:18443", "a=1").unwrap();
        assert_eq!(get(&canonical, "REQUEST_URI").unwrap(), "/sample-page/");
        assert_eq!(get(&canonical, "QUERY_STRING").unwrap(), "");
        assert_eq!(get(&canonical, "HTTP_HOST").unwrap(), "localhost:18443");
        assert_eq!(get(&canonical, "SERVER_PORT").unwrap(), "18443");
        assert_eq!(get(&canonical, "HTTP_USER_AGENT").unwrap(), FILL_USER_AGENT);
        for absent in [
            "HTTP_COOKIE",
            "HTTP_X_FORWARDED_HOST",
            "HTTP_ACCEPT_LANGUAGE",
        ] {
            assert_eq!(get(&canonical, absent), None, "{absent}");
        }
        for variant in [
            "/sample-page//",
            "//sample-page/",
            "/%73ample-page/",
            "/./sample-page/",
            "/sample-page/x/..",
            "/sample-page/?utm_source=%3Cscript%3E",
            "/sample-page/?fbclid=1&utm_medium=x",
        ] {
            let (k, p) = fill_for(variant, "LocalHost:18443", "_ga=2").unwrap();
            assert_eq!(k, key, "{variant}");
            assert_eq!(pairs(&p), pairs(&canonical), "{variant}");
        }
        // Another port, no port: another key, never the canonical one.
        for host in ["localhost", "localhost:8443"] {
            let (k, _) = fill_for("/sample-page/", host, "a=1").unwrap();
            assert_ne!(k, key, "{host}");
        }
    }

    proptest! {
        /// Two cacheable requests that share a key are rendered by PHP from
        /// identical CGI parameters, whatever their path, query, host and
        /// cookie variants.
        #[test]
        fn requests_sharing_a_key_send_php_the_same_parameters(
            a in "/[a./%73]{0,8}(\\?(utm_source|fbclid|p)=[a<]{0,2})?",
            b in "/[a./%73]{0,8}(\\?(utm_source|fbclid|p)=[a<]{0,2})?",
            host_a in "(A|a)(:80|:443|:8080)?",
            host_b in "(A|a)(:80|:443|:8080)?",
            cookie_a in "(x|_ga|wordpress_test_cookie)=[0-9]",
            cookie_b in "(x|_ga|wordpress_test_cookie)=[0-9]",
        ) {
            if let (Some((ka, pa)), Some((kb, pb))) =
                (fill_for(&a, &host_a, &cookie_a), fill_for(&b, &host_b, &cookie_b))
            {
                if ka == kb {
                    prop_assert_eq!(pairs(&pa), pairs(&pb));
                }
            }
        }
    }
}
