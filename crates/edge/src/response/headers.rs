//! The headers the edge adds to its answers: the page cache's label
//! (`X-Cache`) and the security headers. Named once, for the answers
//! decorated per request (`pipeline::finish`) and for the ready heads of
//! cached pages ([`cache_decoration`]), so both say the same.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use murakumo_cache::Decoration;

pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// `nosniff` and a referrer policy: on every answer unless PHP sent its own.
pub fn security_defaults() -> [(HeaderName, HeaderValue); 2] {
    [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ),
    ]
}

/// The security headers, PHP's own winning: `nosniff` and a referrer
/// policy on every answer; on the login and admin screens (`admin`), no
/// framing by other sites (clickjacking). Front-end pages stay framable:
/// WordPress embeds (`/embed/`) live in other sites' frames.
pub fn add_security_headers(h: &mut HeaderMap, admin: bool) {
    for (name, value) in security_defaults() {
        h.entry(name).or_insert(value);
    }
    let framing_set = h.contains_key(header::X_FRAME_OPTIONS)
        || h.get_all(header::CONTENT_SECURITY_POLICY)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("frame-ancestors")));
    if admin && !framing_set {
        h.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
    }
}

/// What every answer from a site's page cache carries besides the stored
/// page: `X-Cache: HIT` (a stale or fill answer sets its own label) and,
/// with `security_headers`, the security headers of a front-end page (the
/// admin screens are never cached). Its id tells the two apart.
pub fn cache_decoration(security_headers: bool) -> Decoration {
    Decoration {
        id: if security_headers { 2 } else { 1 },
        set: vec![(X_CACHE, HeaderValue::from_static("HIT"))],
        defaults: if security_headers {
            security_defaults().to_vec()
        } else {
            Vec::new()
        },
    }
}

/// `Strict-Transport-Security: max-age=N`, formatted once per thread for
/// the `max_age` in use (a reload may change it).
pub fn hsts(max_age: std::time::Duration) -> Option<HeaderValue> {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
    }
    let secs = max_age.as_secs();
    LAST.with_borrow_mut(|last| match last {
        Some((s, v)) if *s == secs => Some(v.clone()),
        _ => {
            let v = HeaderValue::from_str(&format!("max-age={secs}")).ok()?;
            *last = Some((secs, v.clone()));
            Some(v)
        }
    })
}
