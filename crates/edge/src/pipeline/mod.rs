//! The request pipeline: every public request goes through [`handle`],
//! whose steps are listed in order in [`respond`], one call each. A step is
//! a module of its own; one that can refuse a request has its own error
//! type, which says what the client is answered
//! ([`crate::response::Refusal`]), and `?` ends the request there. Whatever
//! the answer, [`finish`] adds the last headers, one metrics sample and
//! one access-log line.
//!
//! The one fork is at the end: a page the cache may share goes through it,
//! anything else is the client's own request to PHP.
//!
//! The page cache is consulted at one point, once ([`page_cache::consult`]):
//! a fresh page answers before the filesystem or PHP is touched; for a PHP
//! page the same lookup decides between a stale answer, a coalesced fill
//! and a pass ([`page_cache::serve`]). An asset's path (by its extension,
//! [`asset::is_asset`]) asks the disk first: it is a file or a 404.

// A step's early answer is the response itself, moved once to the client;
// boxing it would cost an allocation on the hot path (cache hits) to save
// a copy.
#![allow(clippy::result_large_err)]

mod asset;
mod compress;
mod context;
mod finish;
mod front;
mod guard;
mod limits;
mod page_cache;
mod resolve;
mod route;
mod static_files;
mod uncached;

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use self::context::Context;
use crate::conn::ConnInfo;
use crate::response::{Body, Early, Step};
use crate::state::Edge;

/// Answers one request; never fails (every error is a response).
pub async fn handle(
    edge: Arc<Edge>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (head, body) = req.into_parts();
    let mut ctx = Context::new(edge.config(), conn, head);
    let resp = match respond(&edge, &mut ctx, body).await {
        Ok(r) | Err(Early(r)) => r,
    };
    Ok(finish::finish(&edge, &ctx, resp))
}

/// The steps, in order.
async fn respond(edge: &Edge, ctx: &mut Context, body: Incoming) -> Step<Response<Body>> {
    // HTTP/2 names the host in `:authority`; every later step reads `Host`.
    front::host_from_authority(ctx);
    front::client_behind_proxies(ctx);
    // A target two parties could read differently is refused before
    // anything reads it.
    front::unambiguous(ctx)?;
    // ACME answers come before anything a site decides: CAs ask over
    // plain HTTP, for a host whose certificate is still coming.
    front::acme_challenge(edge, ctx).await?;
    let site = route::site(edge, ctx)?;
    // After routing: only a host a site serves is redirected to.
    front::require_https(ctx)?;
    // Decoded and normalised once: the guards, the cache key and the
    // filesystem all read this one path.
    let path = front::path(ctx)?;
    // Guards come before anything touches the disk or PHP; they also say
    // which pool (public or admin) runs the request.
    let admin = guard::admit(ctx, &site, &path)?;
    limits::check(edge, ctx, &site, &path)?;
    // An asset (`.css`, `.png`, …) is a file: the disk first.
    let asset_script = match asset::is_asset(&path) {
        true => Some(resolve::php_script(edge, ctx, &site, &path).await?),
        false => None,
    };
    // The page cache, consulted once: a fresh page answers here.
    let cached = page_cache::consult(ctx, &site, &path)?;
    // The front-controller rule: a file answers as itself; else a script.
    let script = match asset_script {
        Some(script) => script,
        None => resolve::php_script(edge, ctx, &site, &path).await?,
    };
    let target = site.php_target(ctx.conn, &script.name, &script.path_info, admin);
    // Both ways to PHP are boxed: their futures are large (a fill, a
    // spooled body), and unboxed they would make every request's future as
    // large, moved (copied) by hyper on every request, hits included.
    match cached {
        // A shared page: stale, a fill coalesced per key (sent as the
        // key's canonical request), or a pass.
        Some(c) => Ok(Box::pin(page_cache::serve(c, &target, ctx)).await),
        // Anything else: the client's own request, its body read first.
        None => Box::pin(uncached::serve(ctx, &target, site.config.max_body, body)).await,
    }
}
