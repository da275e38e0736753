//! [`serve`]: the edge on listeners it is given ([`Listeners`]) until a
//! shutdown future resolves, then a drain: readiness fails at once,
//! serving goes on for `drain_delay`, then no new connections and
//! in-flight requests finish within `grace`. While draining, HTTP/1.1
//! answers carry `Connection: close`, so kept-alive clients move to a
//! successor process. The ops listener serves throughout.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use murakumo_config::Config;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::connection::{self, Protocol};
use super::error::ServeError;
use super::handoff;
use super::listen;
use crate::state::Edge;

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
/// How often idle FastCGI connections past their time are closed
/// ([`crate::site::Sites::close_idle_php`]).
const CLOSE_IDLE_PHP_EVERY: Duration = Duration::from_secs(5);

/// Closes idle FastCGI connections past their time, every
/// [`CLOSE_IDLE_PHP_EVERY`], for the sites of the moment (reloads
/// followed), until the edge drains.
fn spawn_idle_php_closer(edge: Arc<Edge>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CLOSE_IDLE_PHP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !edge.is_draining() {
            tick.tick().await;
            let closed = edge.sites().close_idle_php();
            if closed > 0 {
                tracing::debug!(closed, "closed idle php-fpm connections");
            }
        }
    });
}

pub async fn serve(
    edge: Arc<Edge>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let config = edge.config();
    let shared = edge.shared();
    if let Some(shared) = &shared {
        shared.connect();
    }
    // ACME tasks need the runtime, so they start here, not in Edge::new.
    edge.certs
        .apply(&config, shared.as_ref())
        .map_err(ServeError::Certificates)?;
    crate::wp_cron::spawn(edge.clone());
    spawn_idle_php_closer(edge.clone());
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
        let client = Client {
            edge: edge.clone(),
            stop: stop_rx.clone(),
        };
        loops.push(tokio::spawn(listen::accept_loop(
            listener,
            stop_rx.clone(),
            Some(edge.admission.clone()),
            move |stream, remote, local, slot| client.serve(stream, remote, local, slot, protocol),
        )));
    }
    if let Some(path) = config.server.handoff.clone() {
        let client = Client {
            edge: edge.clone(),
            stop: stop_rx.clone(),
        };
        loops.push(tokio::spawn(handoff::receive_loop(
            path,
            stop_rx.clone(),
            edge.admission.clone(),
            move |stream, remote, local, slot, protocol| {
                client.serve(stream, remote, local, slot, protocol)
            },
        )));
    }
    let ops = serve_ops(edge.clone(), listeners.ops);
    shutdown.await;
    drain(&edge, stop_tx, loops).await;
    ops.abort();
    Ok(())
}

/// What serves a client connection, however it arrived (a listener of
/// the edge's, or the port keeper).
#[derive(Clone)]
struct Client {
    edge: Arc<Edge>,
    stop: watch::Receiver<bool>,
}

impl Client {
    fn serve(
        &self,
        stream: tokio::net::TcpStream,
        remote: std::net::SocketAddr,
        local: std::net::SocketAddr,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        protocol: Protocol,
    ) -> impl Future<Output = ()> + Send + 'static {
        connection::client_connection(
            self.edge.clone(),
            stream,
            remote,
            local,
            slot,
            protocol,
            self.stop.clone(),
        )
    }
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
            let conn = connection::http1_timed(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            async move {
                let _ = conn.await;
            }
        })
        .await
    })
}

/// Drains: readiness fails at once, serving goes on for `drain_delay`,
/// then the listeners close (`stop`) and open connections get `grace` to
/// finish.
async fn drain(edge: &Edge, stop: watch::Sender<bool>, loops: Vec<JoinHandle<()>>) {
    let config = edge.config();
    edge.draining.store(true, Ordering::SeqCst);
    tracing::info!(drain_delay = ?config.server.drain_delay, grace = ?config.server.grace, "draining: readiness now fails; still serving");
    tokio::time::sleep(config.server.drain_delay).await;
    if !migrates_queued_connections() {
        tracing::info!("net.ipv4.tcp_migrate_req is 0: a connection that arrives in the instant the listener closes may be reset; set it to 1 for handovers without a single reset");
    }
    let _ = stop.send(true);
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
}

/// Whether the kernel hands connections queued on a closing listener to
/// another listener of the same port (Linux 5.14+, off by default).
fn migrates_queued_connections() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").is_ok_and(|v| v.trim() == "1")
}
