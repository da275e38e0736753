//! The process around [`super::serve`]: the configured addresses bound,
//! the open-file limit raised, SIGTERM/SIGINT to drain and stop, SIGHUP to
//! reload (a bad new configuration is refused and the old one keeps
//! serving; certificates are re-read).

use std::sync::Arc;

use murakumo_config::Config;
use tokio::signal::unix::{signal, SignalKind};

use super::error::ServeError;
use super::listen;
use super::serve::{serve, Listeners};
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
