//! Listeners, connections and the process lifecycle: SIGTERM/SIGINT drain
//! (readiness fails at once, serving goes on for `drain_delay`, then no new
//! connections and in-flight requests finish within `grace`), SIGHUP reload
//! (a bad new configuration is refused and the old one keeps serving;
//! certificates are re-read). HTTPS listeners negotiate h2 or http/1.1 by
//! ALPN and serve both through the same handler.
//!
//! Listeners are opened with `SO_REUSEPORT`, so a second `murakumo serve`
//! (new binary or configuration) can start on the same addresses while this
//! one runs; SIGTERM to the old one then drains it without refusing a
//! request (docs/reliability.md has the procedure). While draining,
//! HTTP/1.1 answers carry `Connection: close`, so kept-alive clients move to
//! the new process; at the end the accept queue is emptied once more before
//! the listener closes.
//!
//! Per connection: the caps of [`crate::admission`], the slow-read cut and
//! idle close of [`crate::watchdog`], hyper's header timeout (slowloris) and
//! the HTTP/2 flood limits.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use murakumo_config::{Config, Limits};
use murakumo_tls::settings::ALPN_H2;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio_rustls::TlsAcceptor;

use crate::handler::{self, ConnInfo};
use crate::state::Edge;
use crate::watchdog::{Activity, Tracked, Watchdog};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Certificates(crate::certificates::CertError),
}

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

fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let err = |source| ServeError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    // A successor process binds the same address during a handover. Only
    // processes of the same user can join (the kernel's rule).
    socket.set_reuseport(true).map_err(err)?;
    socket.set_nodelay(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

/// Raises the open-file limit to its hard maximum: every connection is a
/// descriptor, and the usual soft default (1024) is far below
/// `max_connections`.
fn raise_fd_limit(limits: &Limits) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, l) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    let current = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    // A connection may need two descriptors (client, php-fpm).
    if current < 2 * limits.max_connections as u64 {
        tracing::warn!(open_files = current, max_connections = limits.max_connections, "the open-file limit is below twice max_connections; raise it (LimitNOFILE=, ulimit -n) or lower max_connections");
    }
}

/// Accepts until `stop` turns true, serving each connection with `serve`;
/// with `admission`, waits for a free connection slot before accepting.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    admission: Option<Arc<crate::admission::Admission>>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, SocketAddr, Option<OwnedSemaphorePermit>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "listener has no local address");
            return;
        }
    };
    loop {
        let slot = match &admission {
            Some(a) => tokio::select! {
                s = a.slot() => match s {
                    Some(s) => Some(s),
                    None => return,
                },
                _ = stop.changed() => break,
            },
            None => None,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream, remote, local, slot));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep going.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    // Take what already waits in the accept queue: closing the listener
    // would reset those connections.
    while let Ok(Ok((stream, remote))) =
        tokio::time::timeout(Duration::ZERO, listener.accept()).await
    {
        let slot = match &admission {
            Some(a) => match tokio::time::timeout(Duration::ZERO, a.slot()).await {
                Ok(Some(s)) => Some(s),
                _ => continue,
            },
            None => None,
        };
        tokio::spawn(serve(stream, remote, local, slot));
    }
}

/// What a listener speaks.
#[derive(Clone, Copy)]
enum Protocol {
    Http,
    Https,
}

fn http1(limits: &Limits) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
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

/// Drives one connection to its end, closing it gracefully when it idles
/// past `idle_timeout` or when the edge stops.
async fn drive<C: GracefulConnection>(
    conn: C,
    edge: &Edge,
    activity: &Activity,
    mut stop: watch::Receiver<bool>,
) -> Result<(), C::Error> {
    let idle_timeout = edge.config().server.limits.idle_timeout;
    let mut conn = pin!(conn);
    let mut stopping: Option<Instant> = (*stop.borrow()).then(Instant::now);
    let mut closing = false;
    loop {
        let wait = if stopping.is_some() {
            Duration::from_millis(100)
        } else {
            idle_timeout
                .saturating_sub(activity.idle_for())
                .max(Duration::from_millis(100))
        };
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = stop.changed(), if stopping.is_none() => stopping = Some(Instant::now()),
            _ = tokio::time::sleep(wait), if !closing => {}
        }
        if closing {
            continue;
        }
        let close = match stopping {
            Some(since) => activity.requests() > 0 || since.elapsed() >= FIRST_REQUEST_GRACE,
            None if activity.idle_for() >= idle_timeout => {
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
            let edge = edge.clone();
            async move {
                let resp = handler::handle(edge, info, req).await?;
                Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, in_flight)))
            }
        })
    };
    let io = TokioIo::new(io);
    let result = if h2 {
        drive(http2().serve_connection(io, svc), &edge, &activity, stop).await
    } else {
        let limits = edge.config().server.limits.clone();
        drive(
            http1(&limits).serve_connection(io, svc),
            &edge,
            &activity,
            stop,
        )
        .await
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
    match crate::proxy_protocol::read(stream).await {
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
async fn client_connection(
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
}

/// Whether the kernel hands connections queued on a closing listener to
/// another listener of the same port (Linux 5.14+, off by default).
fn migrates_queued_connections() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").is_ok_and(|v| v.trim() == "1")
}

/// Runs the edge until SIGTERM/SIGINT, then drains and returns.
pub async fn run(edge: Arc<Edge>) -> Result<(), ServeError> {
    let config = edge.config();
    let mut listeners = Vec::new();
    for addr in &config.server.listen {
        listeners.push((bind(*addr)?, Protocol::Http));
    }
    for addr in &config.server.tls_listen {
        listeners.push((bind(*addr)?, Protocol::Https));
    }
    let ops = bind(config.server.ops_listen)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;
    // ACME tasks need the runtime, so they start here, not in Edge::new.
    edge.certs
        .apply(&config)
        .map_err(ServeError::Certificates)?;

    raise_fd_limit(&config.server.limits);
    crate::wp_cron::spawn(edge.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = Vec::new();
    for (listener, protocol) in listeners {
        let scheme = match protocol {
            Protocol::Http => "http",
            Protocol::Https => "https",
        };
        tracing::info!(addr = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), scheme, "listening");
        let (edge, stop) = (edge.clone(), stop_rx.clone());
        loops.push(tokio::spawn(accept_loop(
            listener,
            stop_rx.clone(),
            Some(edge.admission.clone()),
            move |stream, remote, local, slot| {
                client_connection(
                    edge.clone(),
                    stream,
                    remote,
                    local,
                    slot,
                    protocol,
                    stop.clone(),
                )
            },
        )));
    }
    {
        let edge = edge.clone();
        tracing::info!(addr = %config.server.ops_listen, "ops listening (/healthz /readyz /metrics /purge /acme/renew)");
        let (never_tx, never_rx) = watch::channel(false);
        let limits = config.server.limits.clone();
        tokio::spawn(async move {
            let _keep = never_tx;
            accept_loop(ops, never_rx, None, move |stream, remote, _, _| {
                let edge = edge.clone();
                let svc = service_fn(move |req| crate::ops::handle(edge.clone(), remote, req));
                let conn = http1(&limits).serve_connection(TokioIo::new(stream), svc);
                async move {
                    let _ = conn.await;
                }
            })
            .await
        });
    }

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&edge),
        }
    }

    let config = edge.config();
    edge.draining.store(true, Ordering::SeqCst);
    tracing::info!(drain_delay = ?config.server.drain_delay, grace = ?config.server.grace, "draining: readiness now fails; still serving");
    tokio::time::sleep(config.server.drain_delay).await;
    if !migrates_queued_connections() {
        tracing::info!("net.ipv4.tcp_migrate_req is 0: a connection that arrives in the instant the listener closes may be reset; set it to 1 for handovers without a single reset");
    }
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    tracing::info!(
        open = edge.admission.open(),
        "stopped accepting; waiting for in-flight requests"
    );
    let deadline = Instant::now() + config.server.grace;
    while edge.admission.open() > 0 {
        if Instant::now() >= deadline {
            tracing::warn!(grace = ?config.server.grace, open = edge.admission.open(), "grace period over; closing remaining connections");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(acme) = edge.certs.acme() {
        acme.shutdown();
    }
    tracing::info!("drained; exiting");
    Ok(())
}

fn reload(edge: &Edge) {
    let path = &edge.config_path;
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload refused: the new configuration is invalid; still serving the old one");
            return;
        }
    };
    let old = edge.config();
    if old.server.listen != config.server.listen
        || old.server.ops_listen != config.server.ops_listen
    {
        tracing::warn!("listen addresses changed; they take effect on restart only");
    }
    if old.server.limits.max_connections != config.server.limits.max_connections {
        tracing::warn!("server.limits.max_connections changed; it takes effect on restart only");
    }
    match edge.apply(config) {
        Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "reload refused; still serving the old configuration")
        }
    }
}
