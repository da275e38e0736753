//! The last step, for every response the pipeline made (refusals and early
//! answers too): compression ([`super::compress`]), `X-Cache`, HSTS, the
//! security headers, no body for HEAD,
//! `Connection: close` while draining, then one metrics sample and one
//! access-log line.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response};

use super::context::Context;
use crate::response::Body;
use crate::state::Edge;

/// `nosniff` and a referrer policy on every answer; on the login and admin
/// screens, no framing by other sites (clickjacking). PHP's own headers win.
/// Front-end pages stay framable: WordPress embeds (`/embed/`) live in
/// other sites' frames.
fn security_headers(h: &mut HeaderMap, admin: bool) {
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
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

pub fn finish(edge: &Edge, ctx: &Context, resp: Response<Body>) -> Response<Body> {
    let mut resp = super::compress::encode(&ctx.req, resp);
    let server = &ctx.config.server;
    let outcome = &ctx.outcome;
    if let Some(label) = outcome.cache {
        resp.headers_mut()
            .insert("x-cache", HeaderValue::from_static(label));
    }
    if ctx.conn.https {
        if let Some(age) = server.hsts.0 {
            if let Ok(v) = HeaderValue::from_str(&format!("max-age={}", age.as_secs())) {
                resp.headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, v);
            }
        }
    }
    if outcome.security_headers {
        security_headers(resp.headers_mut(), outcome.admin);
    }
    // hyper sends no body for HEAD either; dropping ours at once stops a
    // PHP answer being streamed into nothing.
    if ctx.req.method == Method::HEAD {
        *resp.body_mut() = Body::empty();
    }
    // Draining: kept-alive HTTP/1 clients reconnect, reaching a successor
    // process or another replica.
    if edge.is_draining() && ctx.req.version <= http::Version::HTTP_11 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status().as_u16();
    let site = outcome.site.clone().unwrap_or_else(|| Arc::from("-"));
    edge.metrics
        .request(&site, status, outcome.cache.unwrap_or("NONE"));
    if let Some(up) = outcome.upstream {
        edge.metrics.upstream_time(&site, up);
    }
    if server.access_log {
        tracing::info!(
            target: "murakumo::access",
            client = %ctx.conn.remote.ip(),
            site = %site,
            host = ctx.host().unwrap_or("-"),
            method = %ctx.req.method,
            target = ctx.req.uri.path_and_query().map_or("/", |p| p.as_str()),
            status,
            cache = outcome.cache.unwrap_or("-"),
            upstream_ms = outcome.upstream.map(|d| d.as_secs_f64() * 1000.0),
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        );
    }
    resp
}
