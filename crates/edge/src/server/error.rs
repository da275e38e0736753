//! Why the edge could not serve: an address it cannot listen on, signal
//! handlers it cannot install, certificates it cannot load.

use std::net::SocketAddr;

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
