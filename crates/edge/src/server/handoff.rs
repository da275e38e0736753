//! Connections handed over by the node's port keeper (`server.handoff`,
//! see the `murakumo-handoff` crate): the edge's other source of client
//! connections, beside its own listeners. Connected, it says ready and
//! serves what arrives like an accepted connection (the same admission,
//! the client's own address); when the edge stops accepting it tells the
//! keeper, serves what the keeper sent before its answer, and ends. A
//! keeper that is not there (yet), or goes, is reconnected to. A keeper
//! stopping with no successor may park its listening sockets here: the edge
//! then runs a keeper of its own on them (serving itself through it) until
//! the next keeper takes them over.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use murakumo_handoff::{keeper, Handed, Next, Session};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::admission::Admission;

use super::connection::Protocol;

/// Receives connections from the keeper at `path` until `stop` turns true.
pub async fn receive_loop<F, Fut>(
    path: PathBuf,
    mut stop: watch::Receiver<bool>,
    admission: Arc<Admission>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, SocketAddr, Option<OwnedSemaphorePermit>, Protocol) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut told = false;
    loop {
        let session = tokio::select! {
            s = Session::connect(&path) => s,
            _ = stop.changed() => return,
        };
        let session = match session {
            Ok(s) => {
                tracing::info!(socket = %path.display(), "taking connections from the port keeper");
                told = false;
                s
            }
            Err(e) => {
                if !told {
                    tracing::warn!(socket = %path.display(), error = %e, "no port keeper yet; retrying");
                    told = true;
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        loop {
            let slot = tokio::select! {
                s = admission.slot() => match s {
                    Some(s) => s,
                    None => return,
                },
                _ = stop.changed() => break,
            };
            tokio::select! {
                next = session.next() => match next {
                    Ok(Next::Connection(handed)) => start(handed, Some(slot), &serve),
                    Ok(Next::Parked(listeners)) => hold(listeners, &path, &session, stop.clone()).await,
                    Ok(Next::End) | Err(_) => {
                        tracing::info!("the port keeper went; reconnecting");
                        break;
                    }
                },
                _ = stop.changed() => break,
            }
        }
        if *stop.borrow() {
            // Draining: no more, and serve what is already on the way.
            if session.drain().await.is_ok() {
                let answered = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Ok(Next::Connection(handed)) = session.next().await {
                        start(handed, admission.slot().await, &serve);
                    }
                })
                .await;
                if answered.is_err() {
                    tracing::warn!("the port keeper did not answer the drain in 5 s");
                }
            }
            return;
        }
    }
}

/// Runs a keeper on the listening sockets a stopping keeper parked here,
/// until the edge stops (or, idle, after the next keeper took them over).
async fn hold(
    listeners: Vec<(murakumo_handoff::Kind, std::net::TcpListener)>,
    path: &std::path::Path,
    session: &Session,
    mut stop: watch::Receiver<bool>,
) {
    match keeper::Prepared::parked(listeners, path) {
        Ok(prepared) => {
            tokio::spawn(async move {
                let until_stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = keeper::run(prepared, until_stopped).await {
                    tracing::error!(error = %e, "holding the parked ports failed");
                }
            });
            if session.held().await.is_ok() {
                tracing::info!("holding the ports until the next port keeper");
            }
        }
        // Not confirmed: the stopping keeper tries another edge, or closes.
        Err(e) => tracing::error!(error = %e, "cannot hold the parked ports"),
    }
}

fn start<F, Fut>(handed: Handed, slot: Option<OwnedSemaphorePermit>, serve: &F)
where
    F: Fn(TcpStream, SocketAddr, SocketAddr, Option<OwnedSemaphorePermit>, Protocol) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let protocol = match handed.kind {
        murakumo_handoff::Kind::Http => Protocol::Http,
        murakumo_handoff::Kind::Https => Protocol::Https,
    };
    let addrs = handed
        .stream
        .peer_addr()
        .and_then(|p| Ok((p, handed.stream.local_addr()?)));
    let stream = handed
        .stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(handed.stream));
    match (stream, addrs) {
        (Ok(stream), Ok((peer, local))) => {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream, peer, local, slot, protocol));
        }
        // The client left before the edge saw it: nothing to serve.
        (Err(e), _) | (_, Err(e)) => tracing::debug!(error = %e, "a handed connection is gone"),
    }
}
