//! Listeners, connections and the process lifecycle: SIGTERM/SIGINT drain
//! (readiness fails at once, serving goes on for `drain_delay`, then no new
//! connections and in-flight requests finish within `grace`), SIGHUP reload
//! (a bad new configuration is refused and the old one keeps serving).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use murakumo_config::Config;
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

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
}

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);

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

/// Runs the edge until SIGTERM/SIGINT, then drains and returns.
pub async fn run(edge: Arc<Edge>) -> Result<(), ServeError> {
    let config = edge.config();
    let mut listeners = Vec::new();
    for addr in &config.server.listen {
        listeners.push(bind(*addr)?);
    }
    let ops = bind(config.server.ops_listen)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;

    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = Vec::new();
    for listener in listeners {
        let (edge, graceful) = (edge.clone(), graceful.clone());
        tracing::info!(addr = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "listening");
        loops.push(tokio::spawn(accept_loop(listener, stop_rx.clone(), move |stream, remote, local| {
            let info = ConnInfo { remote, local, https: false };
            let edge = edge.clone();
            let svc = service_fn(move |req| handler::handle(edge.clone(), info, req));
            let conn = http1::Builder::new().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).serve_connection(TokioIo::new(stream), svc);
            let conn = graceful.watch(conn);
            async move {
                if let Err(e) = conn.await {
                    tracing::debug!(client = %remote, error = %e, "connection ended with an error");
                }
            }
        })));
    }
    {
        let edge = edge.clone();
        tracing::info!(addr = %config.server.ops_listen, "ops listening (/healthz /readyz /metrics /purge)");
        let (_never_tx, never_rx) = watch::channel(false);
        tokio::spawn(async move {
            let _keep = _never_tx;
            accept_loop(ops, never_rx, move |stream, remote, _| {
                let edge = edge.clone();
                let svc = service_fn(move |req| crate::ops::handle(edge.clone(), remote, req));
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), svc);
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
