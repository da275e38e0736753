//! The request pipeline: every public request goes through [`handle`],
//! whose steps are listed in order in [`respond`], one call each. A step is
//! a module of its own; one that can refuse a request has its own error
//! type, which says what the client is answered
//! ([`crate::response::Refusal`]), and `?` ends the request there. Whatever
//! the answer, [`finish`] adds the last headers, one metrics sample and
//! one access-log line.
//!
//! The page cache is consulted at one point, once ([`page_cache::consult`]):
//! a fresh page answers before the filesystem or PHP is touched; for a PHP
//! page the same lookup decides between a stale answer, a coalesced fill
//! and a pass ([`page_cache::serve`]).

// A step's early answer is the response itself, moved once to the client;
// boxing it would cost an allocation on the hot path (cache hits) to save
// a copy.
#![allow(clippy::result_large_err)]

mod context;
mod finish;
mod front;
pub(crate) mod guard;
mod limits;
mod page_cache;
mod php;
pub(crate) mod resolve;
mod route;
pub(crate) mod static_files;

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use self::context::Context;
use self::resolve::Resolved;
use crate::conn::ConnInfo;
use crate::php::PhpTarget;
use crate::response::{Body, Early, Step};
use crate::state::Edge;

/// Answers one request; never fails (every error is a response).
pub async fn handle(
    edge: Arc<Edge>,
    conn: ConnInfo,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let config = edge.config();
    // HTTP/2 names the host in `:authority`; every later step reads `Host`.
    front::host_from_authority(&mut req);
    // The real client behind trusted proxies; the headers that rebuild a
    // URL are dropped from anyone else.
    let proxies = config.server.trusted_proxies.as_deref().unwrap_or(&[]);
    let conn = crate::forwarded::effective(conn, req.headers_mut(), proxies);
    let mut ctx = Context::new(config, conn, &req);
    let resp = match respond(&edge, &mut ctx, req).await {
        Ok(r) | Err(Early(r)) => r,
    };
    Ok(finish::finish(&edge, &ctx, resp))
}

/// The steps, in order.
async fn respond(edge: &Edge, ctx: &mut Context, req: Request<Incoming>) -> Step<Response<Body>> {
    // A target two parties could read differently is refused before
    // anything reads it.
    front::unambiguous(req.uri(), req.headers())?;
    // ACME answers precede the HTTPS redirect: CAs ask over plain HTTP.
    front::acme_challenge(edge, req.uri())?;
    let site = route::site(edge, ctx)?;
    // After routing: only a host a site serves is redirected to.
    front::require_https(ctx)?;
    // Decoded and normalised once: the guards, the cache key and the
    // filesystem all read this one path.
    let path = murakumo_path::normalise(req.uri().path())?;
    // Guards come before anything touches the disk or PHP; they also say
    // which pool (public or admin) runs the request.
    let asked = guard::Asked {
        path: &path,
        query: req.uri().query(),
        headers: req.headers(),
    };
    let admin = guard::admit(&asked, &site.guard, ctx.conn.remote.ip(), &site.name)?;
    ctx.outcome.admin = admin;
    limits::check(edge, &site, req.method(), &path, req.headers(), ctx.conn)?;
    // The page cache, consulted once: a fresh page answers here.
    let cacheable = page_cache::consult(&site, ctx.conn.https, &req, &path);
    if let Some(c) = &cacheable {
        c.fresh_hit(req.headers(), &mut ctx.outcome)?;
    }
    // The front-controller rule: a file as itself, or which PHP script.
    let (script, path_info) =
        match resolve::step(&edge.files, &site.config.root, &path, req.uri().query())? {
            Resolved::File(info) => {
                return Ok(static_files::serve(&info, req.method(), req.headers()).await)
            }
            Resolved::Php { script, path_info } => (script, path_info),
        };
    let target = PhpTarget {
        site: &site,
        conn: ctx.conn,
        script: &script,
        path_info: &path_info,
        admin,
    };
    match cacheable {
        // A shared page: stale, a fill coalesced per key (the key's
        // canonical request), or a pass.
        Some(c) => {
            let (parts, _) = req.into_parts();
            Ok(page_cache::serve(c, &target, &parts, &mut ctx.outcome).await)
        }
        // The client's own request, its body read whole first.
        None => {
            let body_timeout = ctx.config.server.limits.body_timeout;
            php::serve(&target, req, body_timeout, &mut ctx.outcome).await
        }
    }
}

/// A path that cannot be read one way only: 400, saying why.
impl crate::response::Refusal for murakumo_path::PathError {
    fn response(self) -> Response<Body> {
        crate::response::plain(
            http::StatusCode::BAD_REQUEST,
            &format!("bad request path: {self}"),
        )
    }
}
