//! Listeners, connections and the process lifecycle: SIGTERM/SIGINT drain
//! (readiness fails at once, serving goes on for `drain_delay`, then no new
//! connections and in-flight requests finish within `grace`), SIGHUP reload
//! (a bad new configuration is refused and the old one keeps serving;
//! certificates are re-read). HTTPS listeners negotiate h2 or http/1.1 by
//! ALPN and serve both through the same handler.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use murakumo_config::Config;
use murakumo_tls::settings::ALPN_H2;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::handler::{self, ConnInfo};
use crate::state::Edge;

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

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// A client that has not finished the TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const H2_MAX_STREAMS: u32 = 128;
/// Like nginx's large_client_header_buffers (4 × 8k): room for WordPress'
/// cookies, not for a flood.
const H2_MAX_HEADER_LIST: u32 = 32 << 10;
const H2_MAX_PENDING_RESETS: usize = 20;
const H2_MAX_LOCAL_RESETS: usize = 256;

fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let err = |source| ServeError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_nodelay(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

/// Accepts until `stop` turns true, serving each connection with `serve`.
async fn accept_loop<F, Fut>(listener: TcpListener, mut stop: watch::Receiver<bool>, serve: F)
where
    F: Fn(tokio::net::TcpStream, SocketAddr, SocketAddr) -> Fut,
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
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream, remote, local));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep going.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

/// What a listener speaks.
#[derive(Clone, Copy)]
enum Protocol {
    Http,
    Https,
}

fn http1() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
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

/// Serves one connection (plain or decrypted) until it ends or the
/// graceful shutdown closes it.
async fn serve_connection<I>(edge: Arc<Edge>, io: I, info: ConnInfo, h2: bool, watcher: Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handler::handle(edge.clone(), info, req));
    let io = TokioIo::new(io);
    let result = if h2 {
        watcher.watch(http2().serve_connection(io, svc)).await
    } else {
        watcher.watch(http1().serve_connection(io, svc)).await
    };
    if let Err(e) = result {
        tracing::debug!(client = %info.remote, error = %e, "connection ended with an error");
    }
}

/// The client's address: from a PROXY v2 header when a trusted proxy
/// sends one, the peer's otherwise; `None` drops a connection whose header
/// is broken.
async fn client_behind_proxy(
    edge: &Edge,
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> Option<SocketAddr> {
    let config = edge.config();
    let trusted = config.server.trusted_proxies.as_deref().unwrap_or(&[]);
    if !crate::forwarded::trusted(peer.ip(), trusted) {
        return Some(peer);
    }
    match crate::proxy_protocol::read(stream).await {
        Ok(client) => Some(client.unwrap_or(peer)),
        Err(e) => {
            tracing::warn!(peer = %peer, error = %e, "dropping a connection from a trusted proxy");
            None
        }
    }
}

async fn serve_tls(edge: Arc<Edge>, stream: TcpStream, info: ConnInfo, watcher: Watcher) {
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
    serve_connection(edge, tls, info, h2, watcher).await
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

    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = Vec::new();
    for (listener, protocol) in listeners {
        let (edge, graceful) = (edge.clone(), graceful.clone());
        let scheme = match protocol {
            Protocol::Http => "http",
            Protocol::Https => "https",
        };
        tracing::info!(addr = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), scheme, "listening");
        loops.push(tokio::spawn(accept_loop(
            listener,
            stop_rx.clone(),
            move |mut stream, remote, local| {
                let (edge, watcher) = (edge.clone(), graceful.watcher());
                async move {
                    let Some(remote) = client_behind_proxy(&edge, &mut stream, remote).await else {
                        return;
                    };
                    match protocol {
                        Protocol::Http => {
                            let info = ConnInfo {
                                remote,
                                local,
                                https: false,
                            };
                            serve_connection(edge, stream, info, false, watcher).await
                        }
                        Protocol::Https => {
                            let info = ConnInfo {
                                remote,
                                local,
                                https: true,
                            };
                            serve_tls(edge, stream, info, watcher).await
                        }
                    }
                }
            },
        )));
    }
    {
        let edge = edge.clone();
        tracing::info!(addr = %config.server.ops_listen, "ops listening (/healthz /readyz /metrics /purge /acme/renew)");
        let (_never_tx, never_rx) = watch::channel(false);
        tokio::spawn(async move {
            let _keep = _never_tx;
            accept_loop(ops, never_rx, move |stream, remote, _| {
                let edge = edge.clone();
                let svc = service_fn(move |req| crate::ops::handle(edge.clone(), remote, req));
                let conn = http1().serve_connection(TokioIo::new(stream), svc);
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
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    tracing::info!("stopped accepting; waiting for in-flight requests");
    match Arc::try_unwrap(graceful) {
        Ok(g) => {
            if tokio::time::timeout(config.server.grace, g.shutdown())
                .await
                .is_err()
            {
                tracing::warn!(grace = ?config.server.grace, "grace period over; closing remaining connections");
            }
        }
        Err(_) => tracing::warn!("connections still referenced; not waiting"),
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
    match edge.apply(config) {
        Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "reload refused; still serving the old configuration")
        }
    }
}
