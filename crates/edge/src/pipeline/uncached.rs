//! The PHP step for requests the page cache does not answer: the client's
//! own request, its body read whole first (size and pause limits enforced
//! before any PHP runs), PHP's answer streamed back. [`pass`] is also how
//! the page cache sends a client's own request when it cannot share the
//! page.

use http::header;
use http::{HeaderMap, Response};
use hyper::body::Incoming;
use murakumo_fastcgi::params::Params;

use super::context::{Context, Outcome};
use crate::php::request_body::{self, BodyError};
use crate::php::target::PhpTarget;
use crate::php::{PhpError, SpooledBody};
use crate::response::{plain, Body, Refusal, Step};

/// 413, 408, 400 or 500, with what was wrong.
impl Refusal for BodyError {
    fn response(self) -> Response<Body> {
        plain(self.status(), &self.to_string())
    }
}

/// Sends the client's request, body and all (at most `max_body` bytes),
/// and streams the answer.
pub async fn serve(
    ctx: &mut Context<'_>,
    target: &PhpTarget<'_>,
    max_body: u64,
    incoming: Incoming,
) -> Step<Response<Body>> {
    ctx.outcome.cache = Some("BYPASS");
    let body_timeout = ctx.config.server.limits.body_timeout;
    let (body, length) = read_body(&ctx.req.headers, incoming, max_body, body_timeout)
        .await
        .inspect_err(|e| {
            // A declared size over the limit is refused before any byte is
            // read: not worth a log line; a body cut short or too slow is.
            if !matches!(e, Refused::Declared(_)) {
                tracing::info!(site = %target.site, client = %ctx.conn.remote.ip(), error = %e, "request body refused");
            }
        })
        .map_err(Refused::into_error)?;
    let req = &ctx.req;
    let params = target.params(&req.method, &req.uri, &req.headers, length);
    Ok(pass(target, &params, body, &mut ctx.outcome).await)
}

/// Why a body was refused: its declared size, or what reading it found.
enum Refused {
    Declared(BodyError),
    Read(BodyError),
}

impl Refused {
    fn into_error(self) -> BodyError {
        match self {
            Refused::Declared(e) | Refused::Read(e) => e,
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Declared(e) | Refused::Read(e) => e.fmt(f),
        }
    }
}

/// The request body, read whole (`Content-Length` or chunked), and its
/// length for `CONTENT_LENGTH`.
async fn read_body(
    headers: &HeaderMap,
    incoming: Incoming,
    max: u64,
    pause: std::time::Duration,
) -> Result<(SpooledBody, Option<u64>), Refused> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if declared.is_some_and(|n| n > max) {
        return Err(Refused::Declared(BodyError::TooLarge(max)));
    }
    if !(chunked || declared.is_some_and(|n| n > 0)) {
        return Ok((SpooledBody::Empty, declared));
    }
    let body = request_body::read(incoming, max, pause)
        .await
        .map_err(Refused::Read)?;
    let len = body.len();
    Ok((body, Some(len)))
}

/// Sends `params` (and `body`) and streams PHP's answer back, uncached.
pub async fn pass(
    target: &PhpTarget<'_>,
    params: &Params,
    body: SpooledBody,
    outcome: &mut Outcome<'_>,
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
pub fn failed(site: &str, e: PhpError) -> Response<Body> {
    tracing::error!(site, error = %e, "php request failed");
    e.response()
}
