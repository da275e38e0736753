//! The request pipeline: every public request goes through [`handle`],
//! whose steps are listed in order in [`ahead`] and [`to_php`] (those that
//! need no waiting: a cache hit, a file kept in memory and every refusal
//! are answered there, at once) and [`behind`] (those that wait: ACME, a
//! large file's bytes, PHP), one call each. A step is
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
mod host;
mod limits;
mod page_cache;
mod resolve;
mod route;
mod static_files;
mod uncached;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use hyper::body::Incoming;

use self::context::Context;
use self::page_cache::{Cacheable, Disk};
use self::resolve::{Resolved, Script};
use self::static_files::FromDisk;
use crate::conn::ConnInfo;
use crate::response::{Body, Early, Step};
use crate::site::{Site, Sites};
use crate::state::Edge;

/// A request's answer: made at once when no step had to wait (a hit, a
/// refusal), else a future for the steps that wait (ACME, the disk, PHP).
///
/// Answered at once, the request is done with before hyper looks for the
/// next one: its head, which shares hyper's read buffer, is dropped first,
/// so the buffer is reused instead of made anew for every request (two
/// allocations and two frees a hit, measured with `bench/instructions.sh`),
/// and a hit runs no async state machine.
pub enum Answer {
    Now(Option<Response<Body>>),
    Later(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Future for Answer {
    type Output = Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Response<Body>> {
        match self.get_mut() {
            Answer::Now(r) => Poll::Ready(r.take().expect("an answer polled after it was given")),
            Answer::Later(f) => f.as_mut().poll(cx),
        }
    }
}

/// Answers one request; never fails (every error is a response).
///
/// The steps that need no waiting borrow the configuration and sites in
/// force from the worker thread's copy ([`Edge::with_current`]); the
/// request that has to wait takes its own.
pub fn handle(edge: &Arc<Edge>, conn: ConnInfo, req: Request<Incoming>) -> Answer {
    edge.with_current(|current| {
        let (head, body) = req.into_parts();
        let mut ctx = Context::new(&current.config, conn, head);
        match ahead(edge, &current.sites, &mut ctx) {
            Ok(ahead) => wait(edge, ctx.into_owned(), body, ahead),
            Err(Early(r)) => Answer::Now(Some(finish::finish(edge, &ctx, r))),
        }
    })
}

/// The steps that wait, as one future.
fn wait(edge: &Arc<Edge>, mut ctx: Context<'static>, body: Incoming, ahead: Ahead) -> Answer {
    let edge = edge.clone();
    Answer::Later(Box::pin(async move {
        let resp = match behind(&edge, &mut ctx, body, ahead).await {
            Ok(r) | Err(Early(r)) => r,
        };
        finish::finish(&edge, &ctx, resp)
    }))
}

/// The steps, in order, as far as they go without waiting: a fresh page
/// and every refusal answer here (as [`Early`]); what is left is for
/// [`behind`].
fn ahead<'a>(edge: &Edge, sites: &'a Sites, ctx: &mut Context<'a>) -> Step<Ahead> {
    // HTTP/2 names the host in `:authority`; every later step reads `Host`.
    front::host_from_authority(ctx);
    front::client_behind_proxies(ctx);
    // A target two parties could read differently is refused before
    // anything reads it.
    front::unambiguous(ctx)?;
    // ACME answers come before anything a site decides: CAs ask over
    // plain HTTP, for a host whose certificate is still coming.
    if front::is_acme_challenge(ctx) {
        return Ok(Ahead::AcmeChallenge);
    }
    to_php(edge, sites, ctx)
}

/// What [`ahead`] left to steps that wait.
enum Ahead {
    /// An ACME challenge's answer (it may ask the fleet).
    AcmeChallenge,
    /// A static file too large to be kept in memory: its bytes, read from
    /// the disk.
    FromDisk(FromDisk),
    /// PHP, for a request the cache did not answer: a shared page (a stale
    /// answer, a fill or a pass) or the client's own request.
    /// `admin`: the admin pool runs it.
    Php {
        site: Arc<Site>,
        admin: bool,
        cached: Option<Cacheable>,
        script: Script,
    },
}

/// The steps after the ACME challenge, up to PHP.
fn to_php<'a>(edge: &Edge, sites: &'a Sites, ctx: &mut Context<'a>) -> Step<Ahead> {
    let site = route::site(sites, ctx)?;
    // After routing: only a host a site serves is redirected to.
    front::require_https(ctx)?;
    // Decoded and normalised once: the guards, the cache key and the
    // filesystem all read this one path.
    let path = front::path(ctx)?;
    // Guards come before anything touches the disk or PHP; they also say
    // which pool (public or admin) runs the request.
    let admin = guard::admit(ctx, site, &path)?;
    limits::check(edge, ctx, site, &path)?;
    // An asset (`.css`, `.png`, …) is a file: the disk first; then the
    // page cache, consulted once (a fresh page answers here); then the
    // front-controller rule: a file answers as itself, else a script.
    let (cached, resolved) = if asset::is_asset(&path) {
        match resolve::php_script(edge, ctx, site, &path)? {
            // A file too large to be kept in memory is a file too: a page
            // the cache holds for its URL (WordPress's 404 from before
            // the file was there) does not hide it.
            Resolved::FromDisk(d) => return Ok(Ahead::FromDisk(d)),
            to_run => (page_cache::consult(ctx, site, &path, Disk::Asked)?, to_run),
        }
    } else {
        let cached = page_cache::consult(ctx, site, &path, Disk::NotAsked)?;
        let resolved = resolve::php_script(edge, ctx, site, &path)?;
        // A stored 404 answers once the disk has no file at its URL (a
        // small file has answered above, a large one is `FromDisk`).
        match (cached, resolved) {
            (Some(c), Resolved::Script(script)) if c.waits_for_disk() => (
                page_cache::consult(ctx, site, &path, Disk::Asked)?,
                Resolved::Script(script),
            ),
            (cached, resolved) => (cached, resolved),
        }
    };
    Ok(match resolved {
        Resolved::FromDisk(d) => Ahead::FromDisk(d),
        Resolved::Script(script) => Ahead::Php {
            site: site.clone(),
            admin,
            cached,
            script,
        },
    })
}

/// The steps that wait, in order, from where [`ahead`] stopped.
async fn behind(
    edge: &Edge,
    ctx: &mut Context<'_>,
    body: Incoming,
    ahead: Ahead,
) -> Step<Response<Body>> {
    let (site, admin, cached, script) = match ahead {
        Ahead::AcmeChallenge => return Ok(front::acme_challenge(edge, ctx).await),
        Ahead::FromDisk(d) => return Ok(d.send().await),
        Ahead::Php {
            site,
            admin,
            cached,
            script,
        } => (site, admin, cached, script),
    };
    let target = site.php_target(ctx.conn, &script.name, &script.path_info, admin);
    match cached {
        // A shared page: stale, a fill coalesced per key (sent as the
        // key's canonical request), or a pass.
        Some(c) => Ok(page_cache::serve(c, &target, ctx).await),
        // Anything else: the client's own request, its body read first.
        None => uncached::serve(ctx, &target, site.config.max_body, body).await,
    }
}
