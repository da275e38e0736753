//! What may be cached: the WordPress rules that decide whether a request may
//! be answered from the cache and whether a response may be stored.

use std::borrow::Cow;
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

/// Cookie names that mean "this visitor sees a personal page", matched on
/// the name PHP will give the cookie ([`php_cookie_name`]).
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

/// Whether one `name=value` piece of a `Cookie` header is personal, judged
/// as PHP names it; names are also judged percent-decoded (PHP before
/// 8.0.24 and 8.1.11 decoded them), so any PHP sees what the edge sees.
fn is_personal_cookie_pair(pair: &str) -> bool {
    let raw = pair.split('=').next().unwrap_or("");
    if is_personal_cookie(&php_cookie_name(raw)) {
        return true;
    }
    raw.contains('%')
        && percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .is_ok_and(|decoded| is_personal_cookie(&php_cookie_name(&decoded)))
}

/// Whether a request carries WordPress's login cookie (judged as PHP names
/// it) or HTTP credentials. It is a claim, not a proof: only WordPress can
/// check it, so the edge uses it to spare anonymous requests, never to
/// trust one.
pub fn claims_login(headers: &HeaderMap) -> bool {
    if headers.contains_key(AUTHORIZATION) {
        return true;
    }
    headers.get_all(COOKIE).iter().any(|v| {
        v.to_str().map_or(true, |text| {
            text.split(';').any(|pair| {
                let raw = pair.split('=').next().unwrap_or("");
                php_cookie_name(raw).starts_with("wordpress_logged_in_")
            })
        })
    })
}

/// The key PHP gives a cookie in `$_COOKIE` (`php_register_variable_ex`):
/// leading whitespace dropped, `.` and space turned into `_` up to the
/// first `[`; a `[` with a `]` after it starts an array, named by what came
/// before; a `[` without one becomes `_`, the rest kept as it is. So
/// `wp-postpass.HASH`, `wp-postpass HASH` and `wp-postpass[HASH` are all
/// `wp-postpass_HASH` to WordPress.
pub fn php_cookie_name(raw: &str) -> Cow<'_, str> {
    let name = raw.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if !name.contains([' ', '.', '[']) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.char_indices() {
        match c {
            ' ' | '.' => out.push('_'),
            '[' if name[i..].contains(']') => break,
            '[' => {
                out.push('_');
                out.push_str(&name[i + 1..]);
                break;
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
        let file = path.rfind('/').map_or(path, |i| &path[i + 1..]);
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
        // One pass over the request's few headers, not a lookup by name
        // for each of the two (every hit comes through here).
        for (name, value) in headers {
            if name == AUTHORIZATION {
                return Some(Bypass::Authorization);
            }
            if name == COOKIE {
                let Ok(text) = value.to_str() else {
                    return Some(Bypass::Cookie);
                };
                if text.split(';').any(is_personal_cookie_pair) {
                    return Some(Bypass::Cookie);
                }
            }
        }
        None
    }

    /// How long a response may be kept, or `None` if it must not be stored.
    ///
    /// WordPress sends `Cache-Control: no-cache, must-revalidate, max-age=0`
    /// with every 404 (`nocache_headers()` in `handle_404`), which would
    /// send a flood of random URLs to PHP one render each; for a 404 only
    /// `private` and `no-store` (what WordPress adds for logged-in users)
    /// refuse storing, for `not_found_ttl`. A URL purge removes a stored 404
    /// like any entry, so a post published there shows at once.
    pub fn storable(&self, status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
        let ttl = match status.as_u16() {
            200 | 301 => self.ttl,
            404 => self.ttl_404,
            _ => return None,
        };
        if headers.contains_key(CONTENT_ENCODING) || self.is_private(status, headers) {
            return None;
        }
        Some(ttl)
    }

    /// Whether PHP said that this answer is for its client only:
    /// `Set-Cookie`, `Cache-Control: private`, `no-store` or (but for a 404)
    /// `no-cache`, or a `Vary` on anything but `Accept-Encoding`. Such a
    /// page must reach PHP with each client's own request.
    pub fn is_private(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        let not_found = status == StatusCode::NOT_FOUND;
        if headers.contains_key(SET_COOKIE) {
            return true;
        }
        let cache_control = headers.get_all(CACHE_CONTROL).iter().any(|v| {
            let text = v.to_str().unwrap_or("private").to_ascii_lowercase();
            text.split(',').map(str::trim).any(|d| {
                d == "private"
                    || d == "no-store"
                    || d.starts_with("private=")
                    || (!not_found && (d == "no-cache" || d.starts_with("no-cache=")))
            })
        });
        let vary = headers.get_all(VARY).iter().any(|v| {
            v.to_str()
                .unwrap_or("*")
                .split(',')
                .map(str::trim)
                .any(|f| !f.eq_ignore_ascii_case("accept-encoding") && !f.is_empty())
        });
        cache_control || vary
    }
}

/// WordPress's feed URLs (its rewrite rules): a last segment `feed`,
/// `rdf`, `rss`, `rss2` or `atom` (`/feed/`, `/rss2/`, `/post/atom/`,
/// `/category/x/feed/rss/`), or a `/feed/` segment anywhere.
fn is_feed_path(path: &str) -> bool {
    const FEEDS: [&str; 5] = ["feed", "rdf", "rss", "rss2", "atom"];
    let dir = path.trim_end_matches('/');
    let last = dir.rfind('/').map_or(dir, |i| &dir[i + 1..]);
    FEEDS.contains(&last) || path.as_bytes().windows(6).any(|w| w == b"/feed/")
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
        for feed in [
            "/2024/hello/feed/",
            "/rss2/",
            "/atom/",
            "/rdf/",
            "/rss/",
            "/feed/atom/",
            "/hello-world/rss2/",
            "/category/uncategorized/atom/",
            "/comments/feed/",
            "/feed",
        ] {
            assert_eq!(
                bypass(Method::GET, feed, None, &none),
                Some(Bypass::Feed),
                "{feed}"
            );
        }
        assert_eq!(bypass(Method::GET, "/feeding-time/", None, &none), None);
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
    fn cookies_are_judged_by_the_name_php_gives_them() {
        assert_eq!(php_cookie_name("wp-postpass.abc"), "wp-postpass_abc");
        assert_eq!(
            php_cookie_name("  wordpress logged_in_x"),
            "wordpress_logged_in_x"
        );
        assert_eq!(php_cookie_name("wp-postpass[abc"), "wp-postpass_abc");
        assert_eq!(
            php_cookie_name("a[b.c"),
            "a_b.c",
            "after a lone [ nothing changes"
        );
        assert_eq!(
            php_cookie_name("a.b[c]"),
            "a_b",
            "an array is named by its prefix"
        );
        assert_eq!(php_cookie_name("plain"), "plain");
        // Every bypass cookie, spelt every way PHP folds into its real name.
        for name in [
            "wordpress_logged_in_abc",
            "wordpress_sec_abc",
            "wordpress_abc",
            "wordpress_no_cache",
            "wp-postpass_abc",
            "comment_author_abc",
            "comment_author_email_abc",
            "woocommerce_items_in_cart",
            "woocommerce_cart_hash",
            "wp_woocommerce_session_abc",
        ] {
            let mut spellings = vec![name.to_string(), format!("{name}[x]")];
            for (i, _) in name.match_indices('_') {
                for sub in [".", " ", "["] {
                    spellings.push(format!("{}{sub}{}", &name[..i], &name[i + 1..]));
                }
                spellings.push(format!("{}%5F{}", &name[..i], &name[i + 1..]));
            }
            for spelt in spellings {
                let header = format!("a=1; {spelt}=v");
                assert_eq!(
                    bypass(Method::GET, "/", None, &cookies(&header)),
                    Some(Bypass::Cookie),
                    "{header}"
                );
            }
        }
        // Look-alikes PHP does not fold into a bypass cookie stay cacheable.
        for c in [
            "wordpress.test_cookie=1",
            "xwordpress_logged_in=1",
            "wp-postpass=1",
            "_ga=1",
        ] {
            assert_eq!(bypass(Method::GET, "/", None, &cookies(c)), None, "{c}");
        }
    }

    #[test]
    fn anonymous_404s_are_stored_despite_wordpress_no_cache() {
        let p = policy();
        let mut h = HeaderMap::new();
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("no-cache, must-revalidate, max-age=0"),
        );
        assert_eq!(p.storable(StatusCode::NOT_FOUND, &h), Some(p.ttl_404));
        assert_eq!(p.storable(StatusCode::OK, &h), None);
        for refused in [
            "no-cache, must-revalidate, max-age=0, no-store, private",
            "private",
            "no-store",
        ] {
            h.insert(CACHE_CONTROL, HeaderValue::from_static(refused));
            assert_eq!(p.storable(StatusCode::NOT_FOUND, &h), None, "{refused}");
        }
        let mut h = HeaderMap::new();
        h.insert(SET_COOKIE, HeaderValue::from_static("a=b"));
        assert_eq!(p.storable(StatusCode::NOT_FOUND, &h), None);
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
