//! The public request pipeline, one step per module:
//! host → [`crate::router`], path → [`crate::path`], [`crate::guard`],
//! rate limits, the page cache consulted once ([`crate::cached::consult`]:
//! a fresh hit answers here), [`crate::resolve`], then
//! [`crate::static_files`] or PHP (through [`crate::cached::serve`] when the
//! cache may answer). Every request ends in one access-log line and one
//! metrics sample.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::Body;
use crate::cgi::{self, CgiRequest};
use crate::guard::{self, Verdict};
use crate::php;
use crate::request_body::{self, SpooledBody};
use crate::resolve::{self, Target};
use crate::site::Site;
use crate::state::Edge;

/// What the client is connected to.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
}

/// What a request turned into, for the access log and metrics.
#[derive(Default)]
pub struct Outcome {
    pub site: Option<Arc<str>>,
    pub cache: Option<&'static str>,
    pub upstream: Option<Duration>,
}

/// A short plain-text response for errors and refusals.
pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
}

/// Where ACME CAs look for HTTP-01 answers.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

pub async fn handle(
    edge: Arc<Edge>,
    conn: ConnInfo,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let config = edge.config();
    // HTTP/2 carries the host in `:authority`; the rest of the pipeline
    // (router, cache key, CGI) reads the Host header.
    if !req.headers().contains_key(header::HOST) {
        if let Some(v) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    let proxies = config.server.trusted_proxies.as_deref().unwrap_or(&[]);
    let conn = crate::forwarded::effective(conn, req.headers_mut(), proxies);
    let method = req.method().clone();
    let version = req.version();
    // Cheap clones (reference-counted): kept for the access log.
    let uri = req.uri().clone();
    let host_value = req.headers().get(header::HOST).cloned();
    let host = host_value.as_ref().and_then(|h| h.to_str().ok());
    let mut outcome = Outcome::default();
    let mut resp = if let Some(why) = ambiguous(&uri, req.headers()) {
        plain(StatusCode::BAD_REQUEST, why)
    } else if let Some(token) = uri.path().strip_prefix(ACME_CHALLENGE) {
        acme_answer(&edge, token)
    } else if config.server.redirect_https && !conn.https {
        to_https(&config.server, host, &uri)
    } else {
        route(&edge, conn, req, host, &mut outcome).await
    };
    if let Some(label) = outcome.cache {
        resp.headers_mut()
            .insert("x-cache", HeaderValue::from_static(label));
    }
    if conn.https {
        if let Some(age) = config.server.hsts.0 {
            if let Ok(v) = HeaderValue::from_str(&format!("max-age={}", age.as_secs())) {
                resp.headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, v);
            }
        }
    }
    if method == Method::HEAD {
        *resp.body_mut() = Body::empty();
    }
    // Draining: kept-alive HTTP/1 clients reconnect, reaching a successor
    // process or another replica.
    if edge.is_draining() && version <= http::Version::HTTP_11 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status().as_u16();
    let site = outcome.site.clone().unwrap_or_else(|| Arc::from("-"));
    edge.metrics
        .request(&site, status, outcome.cache.unwrap_or("NONE"));
    if let Some(up) = outcome.upstream {
        edge.metrics.upstream_time(&site, up);
    }
    if config.server.access_log {
        tracing::info!(
            target: "murakumo::access",
            client = %conn.remote.ip(),
            site = %site,
            host = host.unwrap_or("-"),
            method = %method,
            target = uri.path_and_query().map_or("/", |p| p.as_str()),
            status,
            cache = outcome.cache.unwrap_or("-"),
            upstream_ms = outcome.upstream.map(|d| d.as_secs_f64() * 1000.0),
            duration_ms = start.elapsed().as_secs_f64() * 1000.0,
        );
    }
    Ok(resp)
}

/// Requests whose target two parties could read differently (routing or
/// cache confusion) are refused. Framing is hyper's: differing
/// `Content-Length` headers are refused before the handler runs, and with
/// `Transfer-Encoding` the length is dropped, the body read as chunked and
/// the connection closed after the answer (RFC 9112 6.1), so nothing can be
/// smuggled behind a body (tests/corpus/requests.txt).
fn ambiguous(uri: &http::Uri, headers: &HeaderMap) -> Option<&'static str> {
    if headers.get_all(header::HOST).iter().count() > 1 {
        return Some("more than one Host header");
    }
    // An absolute-form target (or h2's :authority) naming another host than
    // the Host header.
    if let (Some(authority), Some(host)) = (uri.authority(), headers.get(header::HOST)) {
        if !authority
            .as_str()
            .as_bytes()
            .eq_ignore_ascii_case(host.as_bytes())
        {
            return Some("the request target and the Host header name different hosts");
        }
    }
    None
}

/// The key authorization for an HTTP-01 token, if an order waits on it.
fn acme_answer(edge: &Edge, token: &str) -> Response<Body> {
    match edge.certs.challenges.answer(token) {
        Some(answer) => {
            let mut r = Response::new(Body::full(Bytes::from(answer)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        None => plain(StatusCode::NOT_FOUND, "no such ACME challenge"),
    }
}

/// 308 to the same URL over HTTPS (308 keeps the method and body).
fn to_https(
    server: &murakumo_config::Server,
    host: Option<&str>,
    uri: &http::Uri,
) -> Response<Body> {
    let Some(host) = host else {
        return plain(StatusCode::BAD_REQUEST, "missing Host header");
    };
    let name = murakumo_cache::key::host_without_port(host);
    let port = server.tls_listen.first().map_or(443, |a| a.port());
    let authority = if port == 443 {
        name.to_string()
    } else {
        format!("{name}:{port}")
    };
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    match HeaderValue::from_str(&format!("https://{authority}{target}")) {
        Ok(location) => {
            let mut r = plain(StatusCode::PERMANENT_REDIRECT, "moved to HTTPS");
            r.headers_mut().insert(header::LOCATION, location);
            r
        }
        Err(_) => plain(StatusCode::BAD_REQUEST, "bad Host header"),
    }
}

async fn route(
    edge: &Arc<Edge>,
    conn: ConnInfo,
    req: Request<Incoming>,
    host: Option<&str>,
    outcome: &mut Outcome,
) -> Response<Body> {
    let Some(host) = host else {
        return plain(StatusCode::BAD_REQUEST, "missing Host header");
    };
    let sites = edge.sites();
    let Some(site) = sites.router.route(host).cloned() else {
        return plain(StatusCode::NOT_FOUND, "no site is configured for this host");
    };
    outcome.site = Some(site.name.clone());
    let path = match crate::path::normalise(req.uri().path()) {
        Ok(p) => p,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("bad request path: {e}")),
    };
    let admin = match guard::check(&path, &site.guard, conn.remote.ip()) {
        Verdict::Allow { admin } => admin,
        Verdict::Deny { status, reason } => {
            tracing::debug!(site = %site.name, path, reason, "guard refused");
            return plain(status, status.canonical_reason().unwrap_or("refused"));
        }
    };
    if let Some(resp) = rate_limited(edge, &site, req.method(), &path, conn) {
        return resp;
    }
    // The page cache is consulted here, once (bypass rules, key, lookup).
    // Hot paths that need neither the filesystem nor PHP: a fresh cached
    // page, a static file checked within the last second.
    let cacheable = crate::cached::consult(
        &site,
        conn.https,
        req.method(),
        req.uri(),
        req.headers(),
        &path,
    );
    if let Some(resp) = cacheable
        .as_ref()
        .and_then(|c| c.fresh_hit(req.headers(), outcome))
    {
        return resp;
    }
    let hot_file = edge.files.fresh(&site.config.root.join(&path[1..]));
    let target = match hot_file {
        Some(_) => Target::Static(PathBuf::new()),
        None => resolve::resolve(&site.config.root, &path),
    };
    match target {
        Target::AddSlash => {
            let location = match req.uri().query() {
                Some(q) => format!("{path}/?{q}"),
                None => format!("{path}/"),
            };
            let mut r = plain(StatusCode::MOVED_PERMANENTLY, "moved");
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Target::NotFound => plain(StatusCode::NOT_FOUND, "not found"),
        Target::Static(file) => {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return r;
            }
            match hot_file.or_else(|| edge.files.info(&file)) {
                Some(info) => crate::static_files::serve(&info, req.method(), req.headers()).await,
                None => plain(StatusCode::NOT_FOUND, "not found"),
            }
        }
        Target::Php { script, path_info } => {
            let target = PhpTarget {
                site: &site,
                conn,
                script: &script,
                path_info: &path_info,
                admin,
            };
            let body_timeout = edge.config().server.limits.body_timeout;
            php_request(&target, req, cacheable, body_timeout, outcome).await
        }
    }
}

/// Login attempts past `login_limit`, requests past `rate_limit`: 429 with
/// `Retry-After`.
fn rate_limited(
    edge: &Edge,
    site: &Site,
    method: &Method,
    path: &str,
    conn: ConnInfo,
) -> Option<Response<Body>> {
    let ip = conn.remote.ip();
    let login = *method == Method::POST
        && (guard::runs_script(path, "/wp-login.php") || guard::runs_script(path, "/xmlrpc.php"));
    let (limit, wait) = match (&site.login_limiter, &site.rate_limiter) {
        (Some(l), _) if login => ("login", l.check(ip).err()?),
        (_, Some(r)) => ("site", r.check(ip).err()?),
        _ => return None,
    };
    edge.metrics.rate_limited(&site.name, limit);
    tracing::info!(site = %site.name, client = %ip, limit, "rate limit reached");
    let mut r = plain(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests; try again later",
    );
    let secs = crate::rate_limit::retry_after_secs(wait);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Some(r)
}

/// Everything needed to build the CGI environment of a request.
pub struct PhpTarget<'a> {
    pub site: &'a Arc<Site>,
    pub conn: ConnInfo,
    pub script: &'a str,
    pub path_info: &'a str,
    pub admin: bool,
}

impl PhpTarget<'_> {
    /// Sends a request to the site's pool for this target.
    pub async fn exchange(
        &self,
        params: &murakumo_fastcgi::params::Params,
        body: SpooledBody,
    ) -> Result<php::Upstream, php::PhpError> {
        let site = self.site;
        php::exchange(
            self.pool(),
            params,
            body,
            site.config.php_timeout,
            site.name.clone(),
        )
        .await
    }

    /// Sends a request and streams PHP's answer back, uncached.
    pub async fn pass_through(
        &self,
        params: &murakumo_fastcgi::params::Params,
        body: SpooledBody,
        outcome: &mut Outcome,
    ) -> Response<Body> {
        match self.exchange(params, body).await {
            Ok(up) => {
                outcome.upstream = Some(up.head_time);
                upstream_response(up, Vec::new())
            }
            Err(e) => php_error(self.site, &e),
        }
    }

    pub fn pool(&self) -> &Arc<php::PhpPool> {
        if self.admin {
            &self.site.admin
        } else {
            &self.site.public
        }
    }

    /// The CGI environment of the client's own request (uncached).
    pub fn params(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        content_length: Option<u64>,
    ) -> murakumo_fastcgi::params::Params {
        cgi::params(&CgiRequest {
            method,
            request_uri: uri.path_and_query().map_or("/", |pq| pq.as_str()),
            query: uri.query().unwrap_or(""),
            host: headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            headers,
            root: &self.site.config.root,
            script: self.script,
            path_info: self.path_info,
            remote: self.conn.remote,
            local: self.conn.local,
            server_port: self.conn.local.port(),
            https: self.conn.https,
            content_length,
        })
    }

    /// The CGI environment of a page-cache fill for `key`: its canonical
    /// request, not the client's ([`cgi::fill_params`]).
    pub fn fill_params(&self, key: &murakumo_cache::CacheKey) -> murakumo_fastcgi::params::Params {
        cgi::fill_params(
            key,
            &cgi::FillTarget {
                root: &self.site.config.root,
                script: self.script,
                path_info: self.path_info,
                remote: self.conn.remote,
                local: self.conn.local,
            },
        )
    }
}

async fn php_request(
    target: &PhpTarget<'_>,
    req: Request<Incoming>,
    cacheable: Option<crate::cached::Cacheable<'_>>,
    body_timeout: Duration,
    outcome: &mut Outcome,
) -> Response<Body> {
    let site = target.site;
    if let Some(cacheable) = cacheable {
        let (parts, _) = req.into_parts();
        return crate::cached::serve(cacheable, target, &parts, outcome).await;
    }
    outcome.cache = Some("BYPASS");
    let (parts, incoming) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = parts.headers.contains_key(header::TRANSFER_ENCODING);
    let max = site.config.max_body;
    if declared.is_some_and(|n| n > max) {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body is larger than this site's limit ({max} bytes)"),
        );
    }
    let (body, length) = if chunked || declared.is_some_and(|n| n > 0) {
        match request_body::read(incoming, max, body_timeout).await {
            Ok(b) => {
                let len = b.len();
                (b, Some(len))
            }
            Err(e) => {
                tracing::info!(site = %site.name, client = %target.conn.remote.ip(), error = %e, "request body refused");
                let status = e.status();
                return plain(status, &e.to_string());
            }
        }
    } else {
        (SpooledBody::Empty, declared)
    };
    let params = target.params(&parts.method, &parts.uri, &parts.headers, length);
    target.pass_through(&params, body, outcome).await
}

/// Turns an upstream head into a response streaming the body.
pub fn upstream_response(mut up: php::Upstream, prefix: Vec<Bytes>) -> Response<Body> {
    let mut headers = std::mem::take(&mut up.headers);
    for h in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
    ] {
        headers.remove(h);
    }
    headers.remove("keep-alive");
    // The page's cache tags are for the edge, never for clients.
    headers.remove(murakumo_cache::tags::TAGS_HEADER);
    let status = up.status;
    let mut r = Response::new(up.into_body(prefix));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

pub fn php_error(site: &Site, e: &php::PhpError) -> Response<Body> {
    tracing::error!(site = %site.name, error = %e, "php request failed");
    let status = e.status();
    plain(status, status.canonical_reason().unwrap_or("error"))
}
