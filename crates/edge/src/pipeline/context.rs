//! One request's context, passed `&mut` through the pipeline's steps: the
//! request's head (method, target, version, headers; the body goes to the
//! PHP step alone), the connection it came on, the configuration it is
//! served by, and what the steps found out ([`Outcome`]), for the response,
//! the access log and metrics.
//!
//! What the context reads from the edge's shared state (the configuration,
//! the site's name) is [`Shared`]: borrowed from the worker thread's copy
//! while the request is answered at once ([`crate::state::Edge::with_current`]),
//! owned once it has to wait ([`Context::into_owned`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::request::Parts;
use murakumo_config::Config;

use super::host::HostName;
use crate::conn::ConnInfo;

pub struct Context<'a> {
    pub started: Instant,
    /// The configuration this request is served by (a reload mid-request
    /// does not change it).
    pub config: Shared<'a, Config>,
    /// The connection; the real client once the front door has looked
    /// behind trusted proxies.
    pub conn: ConnInfo,
    pub req: Parts,
    /// The `Host` header (or HTTP/2's `:authority`), read once by the front
    /// door ([`super::front::host_from_authority`]).
    pub host: Option<HeaderValue>,
    /// The request named more than one `Host`.
    pub hosts_repeated: bool,
    /// One of its headers is one only a trusted proxy may send
    /// ([`crate::forwarded::spoofable`]), as the front door's one pass over
    /// the headers saw.
    pub spoofable: bool,
    /// The Host's name and port, once the front door has checked it
    /// ([`super::front::unambiguous`]).
    pub host_name: Option<HostName>,
    pub outcome: Outcome<'a>,
}

/// A value of the edge's shared state a request reads: borrowed from the
/// worker thread's copy, or owned.
pub enum Shared<'a, T: ?Sized> {
    Borrowed(&'a Arc<T>),
    Owned(Arc<T>),
}

impl<T: ?Sized> Shared<'_, T> {
    pub fn arc(&self) -> &Arc<T> {
        match self {
            Shared::Borrowed(a) => a,
            Shared::Owned(a) => a,
        }
    }

    fn into_owned(self) -> Shared<'static, T> {
        match self {
            Shared::Borrowed(a) => Shared::Owned(a.clone()),
            Shared::Owned(a) => Shared::Owned(a),
        }
    }
}

impl<T: ?Sized> std::ops::Deref for Shared<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.arc()
    }
}

/// What a request turned into.
#[derive(Default)]
pub struct Outcome<'a> {
    /// The site's name.
    pub site: Option<Shared<'a, str>>,
    /// `X-Cache`: HIT, STALE, MISS or BYPASS; none when the cache had no say.
    pub cache: Option<&'static str>,
    /// Time to PHP's response head.
    pub upstream: Option<Duration>,
    /// The site wants the security headers (`[site.guard]`).
    pub security_headers: bool,
    /// The request is for the login or admin screens.
    pub admin: bool,
    /// The [`murakumo_cache::Decoration`] id of the site's page cache: a
    /// stored page whose heads carry it answers with them.
    pub decoration: u64,
    /// The answer's head is final: its encoding, `X-Cache` and security
    /// headers are in it (a cached page's ready head); `finish` adds only
    /// what depends on the connection.
    pub decorated: bool,
}

impl Outcome<'_> {
    fn into_owned(self) -> Outcome<'static> {
        let Outcome {
            site,
            cache,
            upstream,
            security_headers,
            admin,
            decoration,
            decorated,
        } = self;
        Outcome {
            site: site.map(Shared::into_owned),
            cache,
            upstream,
            security_headers,
            admin,
            decoration,
            decorated,
        }
    }
}

impl<'a> Context<'a> {
    pub fn new(config: &'a Arc<Config>, conn: ConnInfo, req: Parts) -> Context<'a> {
        Context {
            started: Instant::now(),
            config: Shared::Borrowed(config),
            conn,
            req,
            host: None,
            hosts_repeated: false,
            spoofable: false,
            host_name: None,
            outcome: Outcome::default(),
        }
    }

    /// The same context, owning what it borrowed: for the steps that wait.
    pub fn into_owned(self) -> Context<'static> {
        let Context {
            started,
            config,
            conn,
            req,
            host,
            hosts_repeated,
            spoofable,
            host_name,
            outcome,
        } = self;
        Context {
            started,
            config: config.into_owned(),
            conn,
            req,
            host,
            hosts_repeated,
            spoofable,
            host_name,
            outcome: outcome.into_owned(),
        }
    }

    /// The Host header, if it is text.
    pub fn host(&self) -> Option<&str> {
        self.host.as_ref().and_then(|h| h.to_str().ok())
    }

    /// The Host's name (lowercase, no trailing dot) and the port it names,
    /// once the front door has checked it.
    pub fn host_name(&self) -> Option<(&str, Option<u16>)> {
        host_name(&self.host, &self.host_name)
    }
}

/// [`Context::host_name`], from the two fields it reads (for a step that
/// borrows others mutably meanwhile).
pub fn host_name<'c>(
    host: &'c Option<HeaderValue>,
    read: &'c Option<HostName>,
) -> Option<(&'c str, Option<u16>)> {
    let read = read.as_ref()?;
    let host = host.as_ref()?.to_str().ok()?;
    Some((read.name(host), read.port))
}
