//! The site a request is for, by its Host header ([`crate::router`]).

use std::sync::Arc;

use http::{Response, StatusCode};

use super::context::{Context, Shared};
use crate::response::{plain, Body, Refusal};
use crate::site::{Site, Sites};

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

/// The site for the request's host, among `sites` (those in force); its
/// name goes into the outcome.
pub fn site<'a>(sites: &'a Sites, ctx: &mut Context<'a>) -> Result<&'a Arc<Site>, Unrouted> {
    let (name, _) = ctx.host_name().ok_or(Unrouted::MissingHost)?;
    let site = sites.router.route_name(name).ok_or(Unrouted::NoSite)?;
    ctx.outcome.site = Some(Shared::Borrowed(&site.name));
    ctx.outcome.security_headers = site.guard.rules.security_headers;
    Ok(site)
}
