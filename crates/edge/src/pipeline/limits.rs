//! The rate-limit step: login attempts past `login_limit`, requests past
//! `rate_limit` ([`crate::rate_limit`] keeps the counts).

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::context::Context;
use super::guard;
use crate::response::{plain, Body, Refusal};
use crate::site::Site;
use crate::state::Edge;

/// 429, with the wait in `Retry-After`; a page a person can read when a
/// browser asked (the 7th wrong password on the login form).
#[derive(Debug)]
pub struct Limited {
    wait: Duration,
    login: bool,
    html: bool,
}

impl Refusal for Limited {
    fn response(self) -> Response<Body> {
        let secs = crate::rate_limit::retry_after_secs(self.wait);
        let mut r = if self.html {
            let (title, what) = if self.login {
                ("Too many login attempts", "too many login attempts")
            } else {
                ("Too many requests", "too many requests")
            };
            let page = format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <title>{title}</title></head>\n<body style=\"font-family: system-ui, sans-serif; \
                 max-width: 36em; margin: 4em auto; padding: 0 1em; line-height: 1.5\">\n\
                 <h1>{title}</h1>\n<p>This address has made {what} in a short time. \
                 Please wait {secs} seconds, then try again.</p>\n</body></html>\n"
            );
            let mut r = Response::new(Body::full(page));
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        } else {
            plain(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests; try again later",
            )
        };
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

/// Counts the request against the site's limits: logins (POST to
/// `wp-login.php` or `xmlrpc.php`) against `login_limit`, the rest against
/// `rate_limit`.
pub fn check(edge: &Edge, ctx: &Context<'_>, site: &Site, path: &str) -> Result<(), Limited> {
    let ip = ctx.conn.remote.ip();
    let login = ctx.req.method == Method::POST
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
    let html = ctx
        .req
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    Err(Limited {
        wait,
        login: limit == "login",
        html,
    })
}
