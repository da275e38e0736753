//! The last step, for every response the pipeline made (refusals and early
//! answers too): compression ([`super::compress`]), `X-Cache`, the
//! security headers (all three already in a cached page's ready head),
//! HSTS, no body for HEAD,
//! `Connection: close` while draining, then one metrics sample and one
//! access-log line.

use std::sync::{Arc, LazyLock};

use http::header::{self, HeaderValue};
use http::{Method, Response};

use super::context::Context;
use crate::response::headers::{add_security_headers, hsts, X_CACHE};
use crate::response::Body;
use crate::state::Edge;

pub fn finish(edge: &Edge, ctx: &Context<'_>, mut resp: Response<Body>) -> Response<Body> {
    let server = &ctx.config.server;
    let outcome = &ctx.outcome;
    // A cached page's ready head has its encoding, label and security
    // headers already.
    if !outcome.decorated {
        resp = super::compress::encode(&ctx.req, resp);
        if let Some(label) = outcome.cache {
            resp.headers_mut()
                .insert(X_CACHE, HeaderValue::from_static(label));
        }
        if outcome.security_headers {
            add_security_headers(resp.headers_mut(), outcome.admin);
        }
    }
    if ctx.conn.https {
        if let Some(v) = server.hsts.0.and_then(hsts) {
            resp.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, v);
        }
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
    // A request no site took is counted as site "-".
    static NO_SITE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("-"));
    let site = outcome.site.as_ref().map_or(&*NO_SITE, |s| s.arc());
    edge.metrics
        .request(site, status, outcome.cache.unwrap_or("NONE"));
    if let Some(up) = outcome.upstream {
        edge.metrics.upstream_time(site, up);
    }
    if server.access_log {
        tracing::info!(
            target: "murakumo::access",
            client = %ctx.conn.remote.ip(),
            site = %**site,
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
