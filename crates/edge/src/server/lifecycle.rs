//! The process lifecycle around [`super::serve`]: SIGTERM/SIGINT drain
//! (readiness fails at once, serving goes on for `drain_delay`, then no new
//! connections and in-flight requests finish within `grace`), SIGHUP reload
//! (a bad new configuration is refused and the old one keeps serving;
//! certificates are re-read). While draining, HTTP/1.1 answers carry
//! `Connection: close`, so kept-alive clients move to a successor process.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use murakumo_config::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{listen, serve, Listeners, ServeError};
use crate::state::Edge;

/// Runs the edge on the configured addresses until SIGTERM/SIGINT, then
/// drains and returns; SIGHUP reloads the configuration.
pub async fn run(edge: Arc<Edge>) -> Result<(), ServeError> {
    let config = edge.config();
    let listeners = Listeners::bind(&config)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;
    listen::raise_fd_limit(&config.server.limits);
    let reloads = {
        let edge = edge.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                reload(&edge);
            }
        })
    };
    let stopped = serve(edge, listeners, async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await;
    reloads.abort();
    stopped
}

/// Drains: readiness fails at once, serving goes on for `drain_delay`,
/// then the listeners close (`stop`) and open connections get `grace` to
/// finish.
pub(super) async fn drain(edge: &Edge, stop: watch::Sender<bool>, loops: Vec<JoinHandle<()>>) {
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
