//! PHP: one request/response exchange with a php-fpm pool (here), what
//! a request is sent to ([`target`]), its CGI environment ([`cgi`]) and its
//! body, read whole first ([`request_body`]).
//!
//! Retry rule: a request moves to another member when connecting fails (the
//! pool does that, waiting out a restart within `php_restart_wait`). GET
//! and HEAD may go on a kept-alive connection, and are resent on a fresh
//! one when theirs fails while being written (bodies are read whole
//! beforehand, see [`request_body`], so they can be sent again) or before
//! the first byte of the answer: php-fpm may have closed a kept connection
//! while idle, or died under the request (a killed container). They are
//! resent up to [`RESENDS`] times, the later ones after a short pause: a
//! killed container's listening socket can still accept for a few
//! milliseconds while it is torn down, so the first resend may meet the
//! same dying php. Other methods always get a fresh connection (in place
//! of an idle one) and are never resent once php-fpm may have read them:
//! php-fpm may have run the script before dying, and running a POST twice
//! is worse than a 502.
//!
//! Anything else is answered 502/503/504, never retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use murakumo_fastcgi::params::Params;
use murakumo_fastcgi::response::{parse_response_head, HeadError};
use murakumo_fastcgi::{Event, Pool, PoolError, PooledConnection};
use tokio::io::AsyncReadExt;

pub mod cgi;
pub mod request_body;
pub mod target;

use crate::response::{plain, Body, Refusal};
pub use request_body::SpooledBody;

/// Most body bytes gathered into one chunk from records already received.
const COALESCE: usize = 64 * 1024;

/// How many times a GET or HEAD is sent again after its connection failed
/// before the answer began.
pub const RESENDS: u32 = 2;

/// The pause before each resend after the first (times the resends so far).
const RESEND_PAUSE: Duration = Duration::from_millis(100);

/// A php-fpm pool of one role ("public" or "admin") of one site.
pub struct PhpPool {
    pub role: &'static str,
    pub pool: Pool,
}

#[derive(Debug, thiserror::Error)]
pub enum PhpError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("php-fpm did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Protocol(#[from] murakumo_fastcgi::Error),
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error("php-fpm ended the request without a response")]
    Empty,
    #[error("reading the spooled request body: {0}")]
    Spool(std::io::Error),
}

impl PhpError {
    pub fn status(&self) -> StatusCode {
        match self {
            PhpError::Pool(PoolError::Saturated(_) | PoolError::QueueFull(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            PhpError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            PhpError::Spool(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A failed exchange is answered 502, 503 (saturated, with `Retry-After`)
/// or 504, never with PHP's words; the error goes to the log.
impl Refusal for PhpError {
    fn response(self) -> http::Response<Body> {
        let status = self.status();
        plain(status, status.canonical_reason().unwrap_or("error"))
    }
}

/// A response whose head has arrived; the body is still coming.
pub struct Upstream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    first: Option<Bytes>,
    conn: Option<PooledConnection>,
    timeout: Duration,
    site: Arc<str>,
    /// Time from sending the request to the end of the head.
    pub head_time: Duration,
}

fn log_stderr(site: &str, msg: &[u8]) {
    let text = String::from_utf8_lossy(msg);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        tracing::warn!(site, "php: {line}");
    }
}

async fn next_event(conn: &mut PooledConnection, timeout: Duration) -> Result<Event, PhpError> {
    match tokio::time::timeout(timeout, conn.next_event()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(PhpError::Timeout(timeout)),
    }
}

/// Sends a request and waits for the response head.
pub async fn exchange(
    php: &PhpPool,
    params: &Params,
    mut body: SpooledBody,
    timeout: Duration,
    site: Arc<str>,
) -> Result<Upstream, PhpError> {
    let started = Instant::now();
    let idempotent = matches!(params.get("REQUEST_METHOD"), Some(b"GET" | b"HEAD"));
    // A request that must not run twice goes on a new connection: a kept
    // one may be closed by php-fpm (idle, or stopping gracefully) just as
    // the request is sent, and then it could not be resent.
    let mut fresh = !idempotent;
    let mut resends = 0;
    loop {
        if resends > 1 {
            tokio::time::sleep(RESEND_PAUSE * (resends - 1)).await;
        }
        let mut conn = php.pool.checkout(fresh).await?;
        let retryable = idempotent && resends < RESENDS;
        let sent = match conn.begin(params).await {
            Ok(()) => send_body(&mut conn, &mut body).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = sent {
            if retryable && !matches!(e, PhpError::Spool(_)) {
                fresh = true;
                resends += 1;
                body.rewind().await.map_err(PhpError::Spool)?;
                continue;
            }
            return Err(e);
        }
        let mut head_buf = BytesMut::new();
        let mut first_event = true;
        loop {
            let ev = match next_event(&mut conn, timeout).await {
                Ok(ev) => ev,
                Err(PhpError::Protocol(e)) if first_event && retryable => {
                    tracing::debug!(%site, error = %e, resends, "php-fpm closed the connection before answering; resending on a new one");
                    resends += 1;
                    break;
                }
                Err(e) => return Err(e),
            };
            first_event = false;
            match ev {
                Event::Stderr(msg) => log_stderr(&site, &msg),
                Event::Stdout(data) => {
                    head_buf.extend_from_slice(&data);
                    if let Some((head, used)) = parse_response_head(&head_buf)? {
                        let rest = head_buf.split_off(used).freeze();
                        let (status, headers) = convert_head(head, &site);
                        return Ok(Upstream {
                            status,
                            headers,
                            first: (!rest.is_empty()).then_some(rest),
                            conn: Some(conn),
                            timeout,
                            site,
                            head_time: started.elapsed(),
                        });
                    }
                }
                Event::End { .. } => {
                    if head_buf.is_empty() {
                        conn.release();
                        return Err(PhpError::Empty);
                    }
                    // A head without the blank line: treat all of it as head.
                    head_buf.extend_from_slice(b"\r\n\r\n");
                    let (head, _) = parse_response_head(&head_buf)?.ok_or(PhpError::Empty)?;
                    conn.release();
                    let (status, headers) = convert_head(head, &site);
                    return Ok(Upstream {
                        status,
                        headers,
                        first: None,
                        conn: None,
                        timeout,
                        site,
                        head_time: started.elapsed(),
                    });
                }
            }
        }
        fresh = true;
        body.rewind().await.map_err(PhpError::Spool)?;
    }
}

/// Sends the body as FCGI_STDIN and ends it.
async fn send_body(conn: &mut PooledConnection, body: &mut SpooledBody) -> Result<(), PhpError> {
    match body {
        SpooledBody::Empty => {}
        SpooledBody::Memory(b) => conn.write_stdin(b).await?,
        SpooledBody::File { file, .. } => {
            let mut buf = vec![0u8; COALESCE];
            loop {
                let n = file.read(&mut buf).await.map_err(PhpError::Spool)?;
                if n == 0 {
                    break;
                }
                conn.write_stdin(&buf[..n]).await?;
            }
        }
    }
    Ok(conn.end_stdin().await?)
}

fn convert_head(head: murakumo_fastcgi::ResponseHead, site: &str) -> (StatusCode, HeaderMap) {
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for (name, value) in head.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => {
                tracing::warn!(site, header = %name, "php sent an invalid response header; dropped")
            }
        }
    }
    (status, headers)
}

impl Upstream {
    /// The next part of the body, `None` at the end (the connection then goes
    /// back to the pool). Records that arrived together are returned as one
    /// chunk (up to [`COALESCE`]), so the client gets fewer, larger writes.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, PhpError> {
        if let Some(b) = self.first.take() {
            return Ok(Some(b));
        }
        let first = loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(None);
            };
            match next_event(conn, self.timeout).await? {
                Event::Stdout(b) => break b,
                Event::Stderr(msg) => log_stderr(&self.site, &msg),
                Event::End { .. } => {
                    self.finish();
                    return Ok(None);
                }
            }
        };
        let mut gathered: Option<BytesMut> = None;
        while let Some(conn) = self.conn.as_mut() {
            if gathered.as_ref().map_or(first.len(), BytesMut::len) >= COALESCE {
                break;
            }
            match conn.buffered_event()? {
                Some(Event::Stdout(b)) => gathered
                    .get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&b),
                Some(Event::Stderr(msg)) => log_stderr(&self.site, &msg),
                Some(Event::End { .. }) => self.finish(),
                None => break,
            }
        }
        Ok(Some(gathered.map_or(first, BytesMut::freeze)))
    }

    /// The whole body, if its end has already been received (small pages
    /// usually come in one read with their head); `None` leaves the body
    /// to be streamed, nothing lost.
    fn arrived_whole(&mut self) -> Option<Bytes> {
        let mut all = BytesMut::from(&self.first.take().unwrap_or_default()[..]);
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Some(all.freeze());
            };
            match conn.buffered_event() {
                Ok(Some(Event::Stdout(b))) => all.extend_from_slice(&b),
                Ok(Some(Event::Stderr(msg))) => log_stderr(&self.site, &msg),
                Ok(Some(Event::End { .. })) => {
                    self.finish();
                    return Some(all.freeze());
                }
                // Not all here yet (or a broken record, which the stream
                // will report): what was gathered goes first.
                Ok(None) | Err(_) => {
                    self.first = (!all.is_empty()).then(|| all.freeze());
                    return None;
                }
            }
        }
    }

    /// The request ended: the connection goes back to the pool.
    fn finish(&mut self) {
        if let Some(c) = self.conn.take() {
            c.release();
        }
    }

    /// The response to the client: PHP's head without hop-by-hop headers and
    /// the edge's cache tags, its body streamed (`prefix` first).
    pub fn into_response(mut self, prefix: Vec<Bytes>) -> http::Response<Body> {
        let mut headers = std::mem::take(&mut self.headers);
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
        let status = self.status;
        let mut r = http::Response::new(self.into_body(prefix));
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        r
    }

    /// Streams the rest of the body (after `prefix`) to the client through a
    /// task. If the client goes away the task stops and drops the connection,
    /// which aborts the PHP request.
    pub fn into_body(mut self, prefix: Vec<Bytes>) -> Body {
        // A response that has arrived whole goes out as bytes: no task, and
        // the client learns its length.
        if prefix.is_empty() {
            if let Some(whole) = self.arrived_whole() {
                return Body::full(whole);
            }
        }
        let (tx, body) = Body::channel();
        tokio::spawn(async move {
            for b in prefix {
                if tx.send(Ok(b)).await.is_err() {
                    return;
                }
            }
            loop {
                match self.next_chunk().await {
                    Ok(Some(b)) => {
                        if tx.send(Ok(b)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(site = %self.site, error = %e, "php response cut short");
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                }
            }
        });
        body
    }
}
