//! The ops listener, never the public one: `/healthz` (the process
//! serves), `/readyz` ([`readiness`]), `/metrics` ([`prometheus`]),
//! `POST /purge` ([`purge`], passed on to other edges by
//! [`purge_fanout`]) and `POST /acme/renew?site=` ([`acme`]); the last two
//! need the bearer token, or come from loopback when no token is set.

mod acme;
mod prometheus;
mod purge;
mod purge_fanout;
mod readiness;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::response::{plain, Body};
use crate::state::Edge;

pub async fn handle(
    edge: Arc<Edge>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => plain(StatusCode::OK, "ok"),
        (&Method::GET | &Method::HEAD, "/readyz") => readiness::readyz(&edge).await,
        (&Method::GET, "/metrics") => metrics(&edge),
        (&Method::POST, "/purge" | "/acme/renew") if !authorised(&edge, remote, &req) => plain(
            StatusCode::UNAUTHORIZED,
            "this needs Authorization: Bearer <token> (server.purge_token_file)",
        ),
        (&Method::POST, "/purge") => purge::handle(&edge, &req).await,
        (&Method::POST, "/acme/renew") => acme::renew(&edge, &req).await,
        (_, "/healthz" | "/readyz" | "/metrics" | "/purge" | "/acme/renew") => {
            plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found; try /healthz, /readyz, /metrics, POST /purge or POST /acme/renew?site=NAME",
        ),
    };
    Ok(resp)
}

fn metrics(edge: &Edge) -> Response<Body> {
    let mut r = Response::new(Body::full(prometheus::render(edge)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus::CONTENT_TYPE),
    );
    r
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials of an `Authorization: Bearer …` value; the scheme's
/// name is read in any case, as HTTP reads it (RFC 9110 11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(credentials)
}

fn authorised(edge: &Edge, remote: SocketAddr, req: &Request<Incoming>) -> bool {
    match edge.purge_token() {
        Some(token) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes())),
        None => remote.ip().is_loopback() || remote.ip().to_canonical().is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc"), Some(" abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
        assert_eq!(bearer(""), None);
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
    }
}
