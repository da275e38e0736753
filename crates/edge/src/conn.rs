//! What a request arrived on: the client's address (the real one, once
//! [`crate::forwarded`] has looked behind trusted proxies), the listener's
//! address and whether it speaks TLS. Imports nothing else of the crate.

use std::net::SocketAddr;

/// What the client is connected to.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
}
