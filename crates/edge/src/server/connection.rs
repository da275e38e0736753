//! One client connection, from the PROXY header to its last response:
//! the caps of [`crate::admission`], the slow-read cut and idle close of
//! [`super::watchdog`], TLS with h2 or http/1.1 by ALPN, hyper's header
//! timeout (slowloris) and the HTTP/2 flood limits. While the edge stops, a
//! connection is closed gracefully after its request in progress; every
//! close lingers until the client has read all ([`close_lingering`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use murakumo_tls::settings::ALPN_H2;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio_rustls::TlsAcceptor;

use super::gate::Gate;
use super::watchdog::{Activity, Seen, Tracked, Watchdog};
use crate::conn::ConnInfo;
use crate::pipeline;
use crate::state::Edge;

/// A client that has not finished the TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const H2_MAX_STREAMS: u32 = 128;
/// Like nginx's large_client_header_buffers (4 × 8k): room for WordPress'
/// cookies, not for a flood.
const H2_MAX_HEADER_LIST: u32 = 32 << 10;
const H2_MAX_PENDING_RESETS: usize = 20;
const H2_MAX_LOCAL_RESETS: usize = 256;
/// When draining, a connection that has not sent its first request yet
/// gets this long to do so (its request may already be on the wire).
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// What a listener speaks.
#[derive(Clone, Copy)]
pub enum Protocol {
    Http,
    Https,
}

/// HTTP/1. Its header timeout is the connection's own ([`drive`]): hyper's
/// would arm and clear a timer for every request.
pub fn http1() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.header_read_timeout(None);
    b
}

/// HTTP/1 with hyper's header timeout, for the ops listener (a few requests
/// a second, no watchdog of its own).
pub fn http1_timed(header_timeout: Duration) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    b
}

/// HTTP/2 with limits against the known floods: concurrent streams, the
/// header list (also bounds CONTINUATION floods), streams reset by the
/// client before they are answered (rapid reset, CVE-2023-44487) and
/// streams the edge has to reset for protocol errors.
fn http2() -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS)
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// What woke a connection's loop.
enum Woke<R> {
    /// The connection ended, with this result.
    Ended(R),
    Stop,
    Timer,
}

/// Drives one connection to its end, closing it gracefully when it idles
/// past `idle_timeout` or when the edge stops, and at once when a request
/// head (or, on a new connection, the first one) takes longer than
/// `header_timeout` to arrive (HTTP/1).
async fn drive<C: GracefulConnection>(
    conn: C,
    edge: &Edge,
    activity: &Activity,
    mut stop: watch::Receiver<bool>,
) -> Result<(), C::Error> {
    let limits = &edge.config().server.limits;
    let (idle_timeout, header_timeout) = (limits.idle_timeout, limits.header_timeout);
    let mut conn = pin!(conn);
    let mut stopping: Option<Instant> = (*stop.borrow()).then(Instant::now);
    let mut closing = false;
    // The timer and the stop signal are polled only on the wakes they
    // cause; the connection on every one ([`Gate`]).
    let gate = Gate::new();
    // The clock is read once a wake of this loop, not per request.
    let mut now = Instant::now();
    let mut seen = Seen::new(activity, now);
    seen.look(activity, now);
    // A look dates what changed since the last one by its own time: looks
    // at most this far apart date a head's start and the last bytes moved
    // at most this late (the connection's end may lie between two looks).
    let look_every = header_timeout.min(idle_timeout) / 4;
    loop {
        // A head may start at any moment, and nothing wakes this loop when
        // it does: it looks again every quarter of `header_timeout` (or of
        // `idle_timeout`, if shorter), so a head is dropped, and an idle
        // connection closed, at most a quarter late.
        let head_left = seen
            .head_for(now)
            .map_or(look_every, |d| header_timeout.saturating_sub(d));
        let wait = if stopping.is_some() {
            Duration::from_millis(100)
        } else {
            idle_timeout
                .saturating_sub(seen.idle_for(activity, now))
                .min(head_left)
                .min(look_every)
                .max(Duration::from_millis(100))
        };
        let watching = stopping.is_none();
        let side = async {
            tokio::select! {
                biased;
                _ = stop.changed(), if watching => Woke::Stop,
                _ = tokio::time::sleep(wait) => Woke::Timer,
            }
        };
        let mut side = pin!(side);
        gate.arm();
        let woke = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                return Poll::Ready(Woke::Ended(r));
            }
            gate.poll(side.as_mut(), cx)
        })
        .await;
        if let Woke::Ended(result) = woke {
            return result;
        }
        now = Instant::now();
        seen.look(activity, now);
        if matches!(woke, Woke::Stop) {
            stopping = Some(now);
        }
        if seen.head_for(now).is_some_and(|d| d >= header_timeout) {
            // Slowloris: the head is not whole in time. Dropped, as hyper
            // would drop it.
            edge.metrics.header_timeouts.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if closing {
            continue;
        }
        let close = match stopping {
            Some(since) => {
                activity.requests() > 0 || now.duration_since(since) >= FIRST_REQUEST_GRACE
            }
            None if seen.idle_for(activity, now) >= idle_timeout => {
                edge.metrics.idle_closed.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        };
        if close {
            conn.as_mut().graceful_shutdown();
            closing = true;
        }
    }
}

/// Serves one connection (plain or decrypted) until it ends, idles out or
/// the edge stops.
async fn serve_connection<I>(
    edge: Arc<Edge>,
    io: I,
    info: ConnInfo,
    h2: bool,
    activity: Arc<Activity>,
    stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let (edge, activity) = (edge.clone(), activity.clone());
        service_fn(move |req| {
            let in_flight = activity.request();
            // A hit is answered here, before hyper reads on.
            let answer = pipeline::handle(&edge, info, req);
            async move {
                let resp = answer.await;
                Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, in_flight)))
            }
        })
    };
    let io = TokioIo::new(io);
    let result = if h2 {
        drive(http2().serve_connection(io, svc), &edge, &activity, stop).await
    } else {
        activity.time_heads();
        drive(http1().serve_connection(io, svc), &edge, &activity, stop).await
    };
    if activity.was_cut() {
        edge.metrics
            .slow_readers_cut
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(client = %info.remote, "cut a client that left its response unread");
    }
    if let Err(e) = result {
        tracing::debug!(client = %info.remote, error = %e, "connection ended with an error");
    }
}

/// The client's address: from a PROXY v2 header when a trusted proxy
/// sends one, the peer's otherwise; `None` drops a connection whose header
/// is broken. The flag says whether the address is a client's to count
/// (a trusted proxy's own connections are not).
async fn client_behind_proxy(
    edge: &Edge,
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> Option<(SocketAddr, bool)> {
    let config = edge.config();
    let trusted = config.server.trusted_proxies.as_deref().unwrap_or(&[]);
    if !crate::forwarded::trusted(peer.ip(), trusted) {
        return Some((peer, true));
    }
    match super::proxy_protocol::read(stream).await {
        Ok(Some(client)) => Some((client, true)),
        Ok(None) => Some((peer, false)),
        Err(e) => {
            tracing::warn!(peer = %peer, error = %e, "dropping a connection from a trusted proxy");
            None
        }
    }
}

async fn serve_tls<IO>(
    edge: Arc<Edge>,
    stream: IO,
    info: ConnInfo,
    activity: Arc<Activity>,
    stop: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let acceptor = TlsAcceptor::from(edge.certs.server_config.clone());
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            edge.metrics
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(client = %info.remote, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            edge.metrics
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(client = %info.remote, "TLS handshake timed out");
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(ALPN_H2);
    serve_connection(edge, tls, info, h2, activity, stop).await
}

/// One accepted client connection, from PROXY header to the last response.
pub async fn client_connection(
    edge: Arc<Edge>,
    mut stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    slot: Option<OwnedSemaphorePermit>,
    protocol: Protocol,
    stop: watch::Receiver<bool>,
) {
    let Some(slot) = slot else { return };
    let Some((remote, counted)) = client_behind_proxy(&edge, &mut stream, peer).await else {
        return;
    };
    let limits = edge.config().server.limits.clone();
    let Some(_ticket) = edge.admission.admit(
        slot,
        counted.then_some(remote.ip()),
        limits.max_connections_per_client,
        &edge.metrics,
    ) else {
        return;
    };
    // The socket once more, for the lingering close below.
    let linger = stream.as_fd().try_clone_to_owned().ok();
    let activity = Activity::new();
    let io = Watchdog::new(stream, activity.clone(), limits.send_timeout);
    let info = ConnInfo {
        remote,
        local,
        https: matches!(protocol, Protocol::Https),
    };
    match protocol {
        Protocol::Http => serve_connection(edge, io, info, false, activity, stop).await,
        Protocol::Https => serve_tls(edge, io, info, activity, stop).await,
    }
    if let Some(socket) = linger {
        close_lingering(socket).await;
    }
}

/// How long a closed connection's socket is read on for the client to
/// close its side ([`close_lingering`]).
const LINGER: Duration = Duration::from_secs(2);

/// Closes a connection hyper is done with, its last bytes still in the
/// socket's send buffer, without losing them: closing a socket with unread
/// bytes in its receive buffer sends a reset, and the kernel drops what it
/// had not sent yet. A client reading an HTTP/2 answer keeps sending
/// frames (window updates, pings) to the end, so a large download was cut
/// when the edge closed it while draining. So: our side is shut down for
/// writing (the client gets everything, then the end), and what the
/// client still sends is read and dropped until it closes, for at most
/// [`LINGER`] (nginx's `lingering_close`). The connection's slot is held
/// meanwhile: a draining edge waits for it too, within `grace`.
async fn close_lingering(socket: std::os::fd::OwnedFd) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let std = std::net::TcpStream::from(socket);
    if std.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(mut stream) = TcpStream::from_std(std) else {
        return;
    };
    // A connection the client reset: nothing to wait for.
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
