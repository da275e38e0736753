//! The PHP step for requests the page cache does not answer: the client's
//! own request, its body read whole first (size and pause limits enforced
//! before any PHP runs), PHP's answer streamed back. [`pass`] is also how
//! the page cache sends a client's own request when it cannot share the
//! page.

use std::time::Duration;

use http::header;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use murakumo_fastcgi::params::Params;

use super::context::Outcome;
use crate::php::request_body::{self, BodyError};
use crate::php::{PhpError, PhpTarget, SpooledBody};
use crate::response::{plain, Body, Refusal, Step};
use crate::site::Site;

/// 413, 408, 400 or 500, with what was wrong.
impl Refusal for BodyError {
    fn response(self) -> Response<Body> {
        plain(self.status(), &self.to_string())
    }
}

/// Sends the client's request, body and all, and streams the answer.
pub async fn serve(
    target: &PhpTarget<'_>,
    req: Request<Incoming>,
    body_timeout: Duration,
    outcome: &mut Outcome,
) -> Step<Response<Body>> {
    outcome.cache = Some("BYPASS");
    let (parts, incoming) = req.into_parts();
    let (body, length) = read_body(target, &parts.headers, incoming, body_timeout).await?;
    let params = target.params(&parts.method, &parts.uri, &parts.headers, length);
    Ok(pass(target, &params, body, outcome).await)
}

/// The request body, read whole (`Content-Length` or chunked), and its
/// length for `CONTENT_LENGTH`.
async fn read_body(
    target: &PhpTarget<'_>,
    headers: &http::HeaderMap,
    incoming: Incoming,
    body_timeout: Duration,
) -> Step<(SpooledBody, Option<u64>)> {
    let site = target.site;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let max = site.config.max_body;
    if declared.is_some_and(|n| n > max) {
        return Err(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body is larger than this site's limit ({max} bytes)"),
        )
        .into());
    }
    if !(chunked || declared.is_some_and(|n| n > 0)) {
        return Ok((SpooledBody::Empty, declared));
    }
    match request_body::read(incoming, max, body_timeout).await {
        Ok(b) => {
            let len = b.len();
            Ok((b, Some(len)))
        }
        Err(e) => {
            tracing::info!(site = %site.name, client = %target.conn.remote.ip(), error = %e, "request body refused");
            Err(e.into())
        }
    }
}

/// Sends `params` (and `body`) and streams PHP's answer back, uncached.
pub async fn pass(
    target: &PhpTarget<'_>,
    params: &Params,
    body: SpooledBody,
    outcome: &mut Outcome,
) -> Response<Body> {
    match target.exchange(params, body).await {
        Ok(up) => {
            outcome.upstream = Some(up.head_time);
            up.into_response(Vec::new())
        }
        Err(e) => failed(target.site, e),
    }
}

/// A failed exchange: logged with its site, answered without PHP's words.
pub fn failed(site: &Site, e: PhpError) -> Response<Body> {
    tracing::error!(site = %site.name, error = %e, "php request failed");
    e.response()
}
