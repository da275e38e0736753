//! Compression of answers that are not compressed yet: PHP's uncached
//! answers (admin screens, REST, search, feeds), files without a
//! precompressed form, anything text-like and large enough. Fast levels,
//! streaming: a PHP answer is compressed as it arrives. Never a `Range`
//! answer (206), a body already encoded, a type that does not compress, a
//! response marked `no-transform`, or a small body. Every answer that could
//! be compressed says `Vary: Accept-Encoding`, whether or not this client
//! asked, so shared caches keep the forms apart.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use murakumo_cache::encoding::{self, weaken_etag};

use crate::response::Body;

/// Below this, compression saves less than it costs (and a gzip header
/// alone is 18 bytes).
const MIN_SIZE: u64 = 1024;

/// `resp` in the best encoding `req` accepts, when it is worth it.
pub fn encode(req: &Parts, mut resp: Response<Body>) -> Response<Body> {
    if !compressible(&resp, req.method == Method::HEAD) {
        return resp;
    }
    add_vary(resp.headers_mut());
    let accept = encoding::accepted(
        req.headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    );
    let chosen = accept.choose(true, true);
    let Some(token) = chosen.token() else {
        return resp;
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
    h.remove(header::CONTENT_LENGTH);
    weaken_etag(h);
    // A HEAD gets the headers a GET would; its body goes anyway.
    if req.method == Method::HEAD {
        return resp;
    }
    resp.map(|body| body.encoded(chosen))
}

/// For a HEAD, whose body is empty, the headers decide (what a GET would
/// get).
fn compressible(resp: &Response<Body>, head: bool) -> bool {
    let status = resp.status();
    if status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return false;
    }
    let h = resp.headers();
    if h.contains_key(header::CONTENT_ENCODING)
        || h.contains_key(header::CONTENT_RANGE)
        || !encoding::is_compressible(h)
    {
        return false;
    }
    if encoding::forbids_transform(h) {
        return false;
    }
    let declared = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if head {
        return declared.is_none_or(|n| n >= MIN_SIZE);
    }
    match resp.body() {
        Body::Full(None) => false,
        Body::Full(Some(b)) => b.len() as u64 >= MIN_SIZE,
        Body::Channel(_) => declared.is_none_or(|n| n >= MIN_SIZE),
    }
}

/// `Vary: Accept-Encoding`, kept with what the response varies on already.
fn add_vary(h: &mut HeaderMap) {
    let varies = h.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|f| f.trim().eq_ignore_ascii_case("accept-encoding") || f.trim() == "*")
        })
    });
    if !varies {
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}
