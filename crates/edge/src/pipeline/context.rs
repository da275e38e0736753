//! One request's context, passed `&mut` through the pipeline's steps: what
//! the edge read of the request before the steps ran (kept for the access
//! log, since the request itself is consumed on the way) and what the steps
//! found out ([`Outcome`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Method, Request, Uri, Version};
use murakumo_config::Config;

use crate::conn::ConnInfo;

pub struct Context {
    pub started: Instant,
    /// The configuration this request is served by (a reload mid-request
    /// does not change it).
    pub config: Arc<Config>,
    /// The connection, with the real client behind trusted proxies.
    pub conn: ConnInfo,
    pub method: Method,
    pub version: Version,
    /// Cheap clones (reference-counted).
    pub uri: Uri,
    pub host: Option<HeaderValue>,
    pub outcome: Outcome,
}

/// What a request turned into, for the response, the access log and
/// metrics.
#[derive(Default)]
pub struct Outcome {
    pub site: Option<Arc<str>>,
    /// `X-Cache`: HIT, STALE, MISS or BYPASS; none when the cache had no say.
    pub cache: Option<&'static str>,
    /// Time to PHP's response head.
    pub upstream: Option<Duration>,
    /// The site wants the security headers (`[site.guard]`).
    pub security_headers: bool,
    /// The request is for the login or admin screens.
    pub admin: bool,
}

impl Context {
    pub fn new<B>(config: Arc<Config>, conn: ConnInfo, req: &Request<B>) -> Context {
        Context {
            started: Instant::now(),
            config,
            conn,
            method: req.method().clone(),
            version: req.version(),
            uri: req.uri().clone(),
            host: req.headers().get(header::HOST).cloned(),
            outcome: Outcome::default(),
        }
    }

    /// The Host header, if it is text.
    pub fn host(&self) -> Option<&str> {
        self.host.as_ref().and_then(|h| h.to_str().ok())
    }
}
