//! The site a request is for, by its Host header ([`crate::router`]).

use std::sync::Arc;

use http::{Response, StatusCode};

use super::context::Context;
use crate::response::{plain, Body, Refusal};
use crate::site::Site;
use crate::state::Edge;

#[derive(Debug)]
pub enum Unrouted {
    /// 400: no Host header (or one that is not text).
    MissingHost,
    /// 404: no site serves this host.
    NoSite,
}

impl Refusal for Unrouted {
    fn response(self) -> Response<Body> {
        match self {
            Unrouted::MissingHost => plain(StatusCode::BAD_REQUEST, "missing Host header"),
            Unrouted::NoSite => plain(StatusCode::NOT_FOUND, "no site is configured for this host"),
        }
    }
}

/// The site for the request's host; its name goes into the outcome.
pub fn site(edge: &Edge, ctx: &mut Context) -> Result<Arc<Site>, Unrouted> {
    let host = ctx.host().ok_or(Unrouted::MissingHost)?;
    let site = edge
        .sites()
        .router
        .route(host)
        .cloned()
        .ok_or(Unrouted::NoSite)?;
    ctx.outcome.site = Some(site.name.clone());
    ctx.outcome.security_headers = site.guard.rules.security_headers;
    Ok(site)
}
