//! One request's context, passed `&mut` through the pipeline's steps: the
//! request's head (method, target, version, headers; the body goes to the
//! PHP step alone), the connection it came on, the configuration it is
//! served by, and what the steps found out ([`Outcome`]), for the response,
//! the access log and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::request::Parts;
use murakumo_config::Config;

use crate::conn::ConnInfo;

pub struct Context {
    pub started: Instant,
    /// The configuration this request is served by (a reload mid-request
    /// does not change it).
    pub config: Arc<Config>,
    /// The connection; the real client once the front door has looked
    /// behind trusted proxies.
    pub conn: ConnInfo,
    pub req: Parts,
    /// The `Host` header (or HTTP/2's `:authority`), read once by the front
    /// door ([`super::front::host_from_authority`]).
    pub host: Option<HeaderValue>,
    /// The request named more than one `Host`.
    pub hosts_repeated: bool,
    pub outcome: Outcome,
}

/// What a request turned into.
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
    /// The [`murakumo_cache::Decoration`] id of the site's page cache: a
    /// stored page whose heads carry it answers with them.
    pub decoration: u64,
    /// The answer's head is final: its encoding, `X-Cache` and security
    /// headers are in it (a cached page's ready head); `finish` adds only
    /// what depends on the connection.
    pub decorated: bool,
}

impl Context {
    pub fn new(config: Arc<Config>, conn: ConnInfo, req: Parts) -> Context {
        Context {
            started: Instant::now(),
            config,
            conn,
            req,
            host: None,
            hosts_repeated: false,
            outcome: Outcome::default(),
        }
    }

    /// The Host header, if it is text.
    pub fn host(&self) -> Option<&str> {
        self.host.as_ref().and_then(|h| h.to_str().ok())
    }
}
