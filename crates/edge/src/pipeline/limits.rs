//! The rate-limit step: login attempts past `login_limit`, requests past
//! `rate_limit` ([`crate::rate_limit`] keeps the counts).

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::guard;
use crate::conn::ConnInfo;
use crate::response::{plain, Body, Refusal};
use crate::site::Site;
use crate::state::Edge;

/// 429, with the wait in `Retry-After`.
#[derive(Debug)]
pub struct Limited {
    wait: Duration,
}

impl Refusal for Limited {
    fn response(self) -> Response<Body> {
        let mut r = plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests; try again later",
        );
        let secs = crate::rate_limit::retry_after_secs(self.wait);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        r
    }
}

/// Counts the request against the site's limits: logins (POST to
/// `wp-login.php` or `xmlrpc.php`) against `login_limit`, the rest against
/// `rate_limit`.
pub fn check(
    edge: &Edge,
    site: &Site,
    method: &Method,
    path: &str,
    conn: ConnInfo,
) -> Result<(), Limited> {
    let ip = conn.remote.ip();
    let login = *method == Method::POST
        && (guard::runs_script(path, "/wp-login.php") || guard::runs_script(path, "/xmlrpc.php"));
    let checked = match (&site.login_limiter, &site.rate_limiter) {
        (Some(l), _) if login => ("login", l.check(ip)),
        (_, Some(r)) => ("site", r.check(ip)),
        _ => return Ok(()),
    };
    let (limit, Err(wait)) = checked else {
        return Ok(());
    };
    edge.metrics.rate_limited(&site.name, limit);
    tracing::info!(site = %site.name, client = %ip, limit, "rate limit reached");
    Err(Limited { wait })
}
