//! What may be cached: the WordPress rules that decide whether a request may
//! be answered from the cache and whether a response may be stored.

use std::time::Duration;

use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, COOKIE, SET_COOKIE, VARY};
use http::{HeaderMap, Method, StatusCode};

use crate::key::is_tracking_param;

/// Why a request goes straight to PHP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    Method,
    AdminPath,
    WpScript,
    RestApi,
    Feed,
    Query,
    Cookie,
    Authorization,
}

impl Bypass {
    pub fn as_str(self) -> &'static str {
        match self {
            Bypass::Method => "method",
            Bypass::AdminPath => "admin",
            Bypass::WpScript => "wp-script",
            Bypass::RestApi => "rest-api",
            Bypass::Feed => "feed",
            Bypass::Query => "query",
            Bypass::Cookie => "cookie",
            Bypass::Authorization => "authorization",
        }
    }
}

/// Cookie names that mean "this visitor sees a personal page".
/// `wordpress_test_cookie` is set for everyone who sees the login form and
/// does not personalise anything, so it does not bypass.
fn is_personal_cookie(name: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "wordpress_", // wordpress_logged_in_*, wordpress_sec_*, wordpress_<hash>, wordpress_no_cache
        "wp-postpass_",
        "comment_author_",
        "woocommerce_items_in_cart",
        "woocommerce_cart_hash",
        "wp_woocommerce_session_",
    ];
    name != "wordpress_test_cookie" && PREFIXES.iter().any(|p| name.starts_with(p))
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub ttl: Duration,
    pub ttl_404: Duration,
    pub feeds: bool,
}

impl Policy {
    /// `None` when the request may be served from (and fill) the cache.
    /// `path` is the normalised, decoded path.
    pub fn request_bypass(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Bypass> {
        if method != Method::GET && method != Method::HEAD {
            return Some(Bypass::Method);
        }
        if path.starts_with("/wp-admin/") || path == "/wp-admin" {
            return Some(Bypass::AdminPath);
        }
        let file = path.rsplit('/').next().unwrap_or("");
        if (file.starts_with("wp-") && file.ends_with(".php")) || file == "xmlrpc.php" {
            return Some(Bypass::WpScript);
        }
        if path.starts_with("/wp-json/") || path == "/wp-json" {
            return Some(Bypass::RestApi);
        }
        if let Some(q) = query {
            let params = q
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| kv.split('=').next().unwrap_or(""));
            let mut personal = false;
            for name in params {
                if name == "feed" && !self.feeds {
                    return Some(Bypass::Feed);
                }
                if name == "rest_route" {
                    return Some(Bypass::RestApi);
                }
                personal |= !is_tracking_param(name);
            }
            if personal {
                return Some(Bypass::Query);
            }
        }
        if !self.feeds && is_feed_path(path) {
            return Some(Bypass::Feed);
        }
        if headers.contains_key(AUTHORIZATION) {
            return Some(Bypass::Authorization);
        }
        for value in headers.get_all(COOKIE) {
            let Ok(text) = value.to_str() else {
                return Some(Bypass::Cookie);
            };
            if text
                .split(';')
                .any(|c| is_personal_cookie(c.split('=').next().unwrap_or("").trim()))
            {
                return Some(Bypass::Cookie);
            }
        }
        None
    }

    /// How long a response may be kept, or `None` if it must not be stored.
    pub fn storable(&self, status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
        let ttl = match status.as_u16() {
            200 | 301 => self.ttl,
            404 => self.ttl_404,
            _ => return None,
        };
        if headers.contains_key(SET_COOKIE) || headers.contains_key(CONTENT_ENCODING) {
            return None;
        }
        for v in headers.get_all(CACHE_CONTROL) {
            let text = v.to_str().unwrap_or("private").to_ascii_lowercase();
            if text.split(',').map(str::trim).any(|d| {
                d == "private"
                    || d == "no-store"
                    || d == "no-cache"
                    || d.starts_with("private=")
                    || d.starts_with("no-cache=")
            }) {
                return None;
            }
        }
        for v in headers.get_all(VARY) {
            let text = v.to_str().unwrap_or("*");
            if text
                .split(',')
                .map(str::trim)
                .any(|f| !f.eq_ignore_ascii_case("accept-encoding") && !f.is_empty())
            {
                return None;
            }
        }
        Some(ttl)
    }
}

fn is_feed_path(path: &str) -> bool {
    path.ends_with("/feed")
        || path.ends_with("/feed/")
        || path.contains("/feed/")
        || path.ends_with("/rss2")
        || path.ends_with("/atom")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn policy() -> Policy {
        Policy {
            ttl: Duration::from_secs(600),
            ttl_404: Duration::from_secs(60),
            feeds: false,
        }
    }

    fn cookies(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(v).unwrap());
        h
    }

    fn bypass(method: Method, path: &str, query: Option<&str>, h: &HeaderMap) -> Option<Bypass> {
        policy().request_bypass(&method, path, query, h)
    }

    #[test]
    fn anonymous_get_is_cacheable() {
        let none = HeaderMap::new();
        assert_eq!(bypass(Method::GET, "/", None, &none), None);
        assert_eq!(
            bypass(
                Method::HEAD,
                "/2024/hello/",
                Some("utm_source=x&gclid=1"),
                &none
            ),
            None
        );
        assert_eq!(
            bypass(
                Method::GET,
                "/",
                None,
                &cookies("wordpress_test_cookie=WP+Cookie+check; _ga=1")
            ),
            None
        );
    }

    #[test]
    fn wordpress_bypass_rules() {
        let none = HeaderMap::new();
        assert_eq!(bypass(Method::POST, "/", None, &none), Some(Bypass::Method));
        assert_eq!(
            bypass(Method::GET, "/wp-admin/", None, &none),
            Some(Bypass::AdminPath)
        );
        assert_eq!(
            bypass(Method::GET, "/wp-login.php", None, &none),
            Some(Bypass::WpScript)
        );
        assert_eq!(
            bypass(Method::GET, "/wp-cron.php", None, &none),
            Some(Bypass::WpScript)
        );
        assert_eq!(
            bypass(Method::GET, "/", Some("s=hello"), &none),
            Some(Bypass::Query)
        );
        assert_eq!(
            bypass(Method::GET, "/feed/", None, &none),
            Some(Bypass::Feed)
        );
        assert_eq!(
            bypass(Method::GET, "/2024/hello/feed/", None, &none),
            Some(Bypass::Feed)
        );
        assert_eq!(
            bypass(Method::GET, "/wp-json/wp/v2/posts", None, &none),
            Some(Bypass::RestApi)
        );
        for c in [
            "wordpress_logged_in_abc=x",
            "a=1; wordpress_sec_abc=x",
            "wp-postpass_abc=x",
            "comment_author_abc=x",
            "woocommerce_items_in_cart=1",
            "wordpress_no_cache=1",
        ] {
            assert_eq!(
                bypass(Method::GET, "/", None, &cookies(c)),
                Some(Bypass::Cookie),
                "{c}"
            );
        }
    }

    #[test]
    fn storable_responses() {
        let p = policy();
        let mut h = HeaderMap::new();
        assert_eq!(p.storable(StatusCode::OK, &h), Some(p.ttl));
        assert_eq!(p.storable(StatusCode::NOT_FOUND, &h), Some(p.ttl_404));
        assert_eq!(p.storable(StatusCode::FOUND, &h), None);
        assert_eq!(p.storable(StatusCode::INTERNAL_SERVER_ERROR, &h), None);
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        assert!(p.storable(StatusCode::OK, &h).is_some());
        for (name, value) in [
            (SET_COOKIE, "a=b"),
            (CACHE_CONTROL, "no-cache, must-revalidate, max-age=0"),
            (CACHE_CONTROL, "private"),
            (CACHE_CONTROL, "no-store"),
            (VARY, "Cookie"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), HeaderValue::from_static(value));
            assert_eq!(p.storable(StatusCode::OK, &h), None, "{name}: {value}");
        }
    }
}
