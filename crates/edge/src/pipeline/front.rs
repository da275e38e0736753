//! The front door: the Host header HTTP/2 carries as `:authority`, the
//! client behind trusted proxies, requests two parties could read
//! differently, ACME HTTP-01 challenges, the redirect of plain HTTP to
//! HTTPS (for a host a site serves), and the path, decoded and normalised
//! once.

use std::borrow::Cow;
use std::ops::Deref;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Response, StatusCode};
use murakumo_path::PathError;

use super::context::Context;
use super::host::read_host;
use crate::response::{plain, Body, Early, Refusal, Step};
use crate::state::Edge;

/// Where ACME CAs look for HTTP-01 answers.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// A request refused at the door (400).
#[derive(Debug)]
pub enum Refused {
    Ambiguous(&'static str),
    BadHost,
}

impl Refusal for Refused {
    fn response(self) -> Response<Body> {
        let text = match self {
            Refused::Ambiguous(why) => why,
            Refused::BadHost => "bad Host header",
        };
        plain(StatusCode::BAD_REQUEST, text)
    }
}

/// A path that cannot be read one way only: 400, saying why.
impl Refusal for PathError {
    fn response(self) -> Response<Body> {
        plain(
            StatusCode::BAD_REQUEST,
            &format!("bad request path: {self}"),
        )
    }
}

/// HTTP/2 names the host in `:authority`; the later steps (router, cache
/// key, CGI) read the Host header. It is read here, once, for them all, in
/// one pass over the request's headers that also sees whether one of them
/// is a proxy's ([`crate::forwarded::spoofable`], for
/// [`client_behind_proxies`]).
pub fn host_from_authority(ctx: &mut Context<'_>) {
    let req = &mut ctx.req;
    let (mut host, mut repeated, mut spoofable) = (None, false, false);
    for (name, value) in &req.headers {
        if name == header::HOST {
            repeated |= host.is_some();
            host = host.or(Some(value));
        } else {
            spoofable = spoofable || crate::forwarded::spoofable(name.as_str());
        }
    }
    ctx.host = host.cloned();
    ctx.hosts_repeated = repeated;
    ctx.spoofable = spoofable;
    if ctx.host.is_some() {
        return;
    }
    if let Some(v) = req
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers.insert(header::HOST, v.clone());
        ctx.host = Some(v);
    }
}

/// The real client behind trusted proxies (`X-Forwarded-For`, PROXY v2);
/// the headers that rebuild a URL are dropped from anyone else.
pub fn client_behind_proxies(ctx: &mut Context<'_>) {
    let proxies = ctx.config.server.trusted_proxies.as_deref().unwrap_or(&[]);
    ctx.conn = crate::forwarded::effective(ctx.conn, &mut ctx.req.headers, proxies, ctx.spoofable);
}

/// The path, percent-decoded and normalised: the one every later step
/// reads.
pub fn path(ctx: &Context<'_>) -> Result<NormalPath, PathError> {
    let uri = &ctx.req.uri;
    Ok(
        match (murakumo_path::normalise(uri.path())?, uri.path_and_query()) {
            (Cow::Borrowed(_), Some(sent)) => NormalPath::AsSent(sent.clone()),
            (normal, _) => NormalPath::Normalised(normal.into_owned()),
        },
    )
}

/// A normalised path: the request's own when it already was one (its
/// bytes shared, not copied), else the normalised copy.
pub enum NormalPath {
    AsSent(PathAndQuery),
    Normalised(String),
}

impl Deref for NormalPath {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            NormalPath::AsSent(sent) => sent.path(),
            NormalPath::Normalised(path) => path,
        }
    }
}

/// Requests whose target two parties could read differently (routing or
/// cache confusion) are refused. Framing is hyper's: differing
/// `Content-Length` headers are refused before the handler runs, and with
/// `Transfer-Encoding` the length is dropped, the body read as chunked and
/// the connection closed after the answer (RFC 9112 6.1), so nothing can be
/// smuggled behind a body (tests/corpus/requests.txt).
///
/// The Host is read here, once, into the name and port the router, the
/// cache key and redirects use ([`super::host`], [`Context::host_name`]).
pub fn unambiguous(ctx: &mut Context<'_>) -> Result<(), Refused> {
    if ctx.hosts_repeated {
        return Err(Refused::Ambiguous("more than one Host header"));
    }
    // A Host is a name (or address) and a port, nothing more: it goes into
    // redirects, cache keys and PHP's `HTTP_HOST`.
    let Some(host) = &ctx.host else {
        return Ok(());
    };
    let name = read_host(host.as_bytes()).ok_or(Refused::BadHost)?;
    // An absolute-form target (or h2's :authority) naming another host than
    // the Host header.
    if let Some(authority) = ctx.req.uri.authority() {
        if !authority
            .as_str()
            .as_bytes()
            .eq_ignore_ascii_case(host.as_bytes())
        {
            return Err(Refused::Ambiguous(
                "the request target and the Host header name different hosts",
            ));
        }
    }
    ctx.host_name = Some(name);
    Ok(())
}

/// The request asks for an HTTP-01 answer: [`acme_challenge`] answers it,
/// before anything a site decides.
pub fn is_acme_challenge(ctx: &Context<'_>) -> bool {
    ctx.req.uri.path().starts_with(ACME_CHALLENGE)
}

/// The key authorization for an HTTP-01 token, if an order of this edge,
/// or of another edge of the fleet, waits on it; else 404.
pub async fn acme_challenge(edge: &Edge, ctx: &Context<'_>) -> Response<Body> {
    let path = ctx.req.uri.path();
    let token = path.strip_prefix(ACME_CHALLENGE).unwrap_or_default();
    let answer = match edge.certs.acme() {
        Some(acme) => acme.answer(token).await,
        None => edge.certs.challenges.answer(token),
    };
    let answer = match answer {
        Some(answer) => {
            let mut r = Response::new(Body::full(Bytes::from(answer)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        None => plain(StatusCode::NOT_FOUND, "no such ACME challenge"),
    };
    answer
}

/// With `redirect_https`, plain HTTP gets a 308 to the same URL over HTTPS
/// (308 keeps the method and body). It runs after routing: the host is
/// one a site serves, and well-formed ([`unambiguous`]).
pub fn require_https(ctx: &Context<'_>) -> Step<()> {
    let server = &ctx.config.server;
    if !server.redirect_https || ctx.conn.https {
        return Ok(());
    }
    // The name as the site knows it: lowercase, no trailing dot.
    let name = ctx.host_name().ok_or(Refused::BadHost)?.0;
    let port = server.tls_listen.first().map_or(443, |a| a.port());
    let authority = if port == 443 {
        name.to_string()
    } else {
        format!("{name}:{port}")
    };
    let target = ctx.req.uri.path_and_query().map_or("/", |p| p.as_str());
    let location = HeaderValue::from_str(&format!("https://{authority}{target}"))
        .map_err(|_| Refused::BadHost)?;
    let mut r = plain(StatusCode::PERMANENT_REDIRECT, "moved to HTTPS");
    r.headers_mut().insert(header::LOCATION, location);
    Err(Early(r))
}
