//! A FastCGI client for php-fpm, written for a reverse proxy.
//!
//! The crates on crates.io speak the protocol but have no connection pool, and
//! php-fpm only performs well when connections are kept alive (`FCGI_KEEP_CONN`)
//! and reused one request at a time, because it does not multiplex
//! (`FCGI_MPXS_CONNS=0`). This crate is layered so each part is testable alone:
//!
//! - [`record`]: the wire format (sans-io encoder and streaming decoder);
//! - [`params`]: name-value pair encoding for `FCGI_PARAMS`;
//! - [`response`]: the CGI response head (`Status:`, headers) PHP writes on stdout;
//! - [`connection`]: one request at a time over a unix or TCP stream;
//! - [`pool`]: keep-alive connections per php-fpm member, least-outstanding
//!   balancing and passive health.

pub mod connection;
pub mod params;
pub mod pool;
pub mod record;
pub mod response;

pub use connection::{Address, Connection, Event};
pub use pool::{Pool, PoolConfig, PoolError, PoolStats, PooledConnection};
pub use response::{parse_response_head, ResponseHead};

/// Errors talking FastCGI over an established connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("fastcgi i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("fastcgi protocol: {0}")]
    Decode(#[from] record::DecodeError),
    #[error("fastcgi params: {0}")]
    Params(#[from] params::ParamsError),
    #[error("php-fpm closed the connection before ending the request")]
    UnexpectedEof,
    #[error("php-fpm ended the request with protocol status {0} (overloaded or unsupported)")]
    Rejected(u8),
}
