//! Listening sockets: opened with `SO_REUSEPORT`, so a second `murakumo
//! serve` (new binary or configuration) can start on the same addresses
//! while this one runs (docs/reliability.md has the handover procedure);
//! the open-file limit raised to fit `max_connections`; and the accept loop,
//! which empties the accept queue once more before a listener closes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use murakumo_config::Limits;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::error::ServeError;
use crate::admission::Admission;

pub fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
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
pub fn raise_fd_limit(limits: &Limits) {
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
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    admission: Option<Arc<Admission>>,
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
