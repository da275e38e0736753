//! Responses the edge makes itself, and how a pipeline step ends a request
//! early. Every step that can refuse a request has its own error type; each
//! says what its client is answered ([`Refusal`]), and `?` turns it into an
//! [`Early`] answer. The headers the edge adds to answers are named in
//! [`headers`]. Imports nothing of the crate but its own modules.

pub mod body;
pub mod headers;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

pub use body::Body;

/// A short plain-text response for errors and refusals.
pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
}

/// What a step's error answers its client.
pub trait Refusal {
    fn response(self) -> Response<Body>;
}

/// A response that ends the pipeline before its last step: a refusal (from
/// a step's error, by `?`), or an answer a step made (an ACME challenge, a
/// redirect, a cached page, a file), wrapped by that step.
pub struct Early(pub Response<Body>);

impl<R: Refusal> From<R> for Early {
    fn from(r: R) -> Early {
        Early(r.response())
    }
}

/// The outcome of a step: go on with `T`, or answer now.
pub type Step<T> = Result<T, Early>;

/// `If-None-Match` against an ETag, by weak comparison (RFC 9110 13.1.2).
pub fn etag_matches(header: &str, etag: &str) -> bool {
    let etag = etag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "W/\"b\""));
        assert!(etag_matches("\"b\"", "W/\"b\""));
    }
}
