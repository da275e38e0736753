//! The server around the pipeline: [`serve`] runs the edge on listeners it
//! is given until a shutdown future resolves, then drains; [`run`] wraps it
//! with binding the configured addresses and the process's signals. Tests
//! call `serve` directly, on listeners of their own.
//!
//! - [`listen`]: sockets (`SO_REUSEPORT` handover), fd limit, accept loop;
//! - [`connection`]: one client connection (PROXY, TLS, h1/h2, caps, cuts);
//! - [`lifecycle`]: signals, drain, reload;
//! - [`admission`], [`watchdog`], [`proxy_protocol`]: what a connection is
//!   checked against.

pub(crate) mod admission;
mod connection;
mod lifecycle;
mod listen;
mod proxy_protocol;
pub(crate) mod watchdog;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use murakumo_config::Config;
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::connection::Protocol;
use crate::state::Edge;

pub use lifecycle::run;

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

/// The sockets the edge serves: public plain HTTP, public HTTPS, and the
/// ops listener.
pub struct Listeners {
    pub http: Vec<TcpListener>,
    pub https: Vec<TcpListener>,
    pub ops: TcpListener,
}

impl Listeners {
    /// Binds the configuration's `listen`, `tls_listen` and `ops_listen`.
    pub fn bind(config: &Config) -> Result<Listeners, ServeError> {
        let server = &config.server;
        Ok(Listeners {
            http: server
                .listen
                .iter()
                .map(|a| listen::bind(*a))
                .collect::<Result<_, _>>()?,
            https: server
                .tls_listen
                .iter()
                .map(|a| listen::bind(*a))
                .collect::<Result<_, _>>()?,
            ops: listen::bind(server.ops_listen)?,
        })
    }
}

/// Serves `listeners` until `shutdown` resolves, then drains and returns.
pub async fn serve(
    edge: Arc<Edge>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let config = edge.config();
    // ACME tasks need the runtime, so they start here, not in Edge::new.
    edge.certs
        .apply(&config)
        .map_err(ServeError::Certificates)?;
    crate::wp_cron::spawn(edge.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let public = listeners
        .http
        .into_iter()
        .map(|l| (l, Protocol::Http))
        .chain(listeners.https.into_iter().map(|l| (l, Protocol::Https)));
    let mut loops = Vec::new();
    for (listener, protocol) in public {
        let scheme = match protocol {
            Protocol::Http => "http",
            Protocol::Https => "https",
        };
        tracing::info!(addr = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), scheme, "listening");
        let (edge, stop) = (edge.clone(), stop_rx.clone());
        loops.push(tokio::spawn(listen::accept_loop(
            listener,
            stop_rx.clone(),
            Some(edge.admission.clone()),
            move |stream, remote, local, slot| {
                connection::client_connection(
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
    let ops = serve_ops(edge.clone(), listeners.ops);
    shutdown.await;
    lifecycle::drain(&edge, stop_tx, loops).await;
    ops.abort();
    Ok(())
}

/// The ops listener serves through the drain (readiness reports it) and
/// stops with [`serve`].
fn serve_ops(edge: Arc<Edge>, listener: TcpListener) -> tokio::task::JoinHandle<()> {
    tracing::info!(addr = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "ops listening (/healthz /readyz /metrics /purge /acme/renew)");
    let limits = edge.config().server.limits.clone();
    let (never_tx, never_rx) = watch::channel(false);
    tokio::spawn(async move {
        let _keep = never_tx;
        listen::accept_loop(listener, never_rx, None, move |stream, remote, _, _| {
            let edge = edge.clone();
            let svc = service_fn(move |req| crate::ops::handle(edge.clone(), remote, req));
            let conn = connection::http1(&limits).serve_connection(TokioIo::new(stream), svc);
            async move {
                let _ = conn.await;
            }
        })
        .await
    })
}
