//! The rustls server configuration: TLS 1.3 and 1.2 only (rustls has
//! nothing older, and only AEAD suites with forward secrecy), ALPN `h2` then
//! `http/1.1`, resumption by session cache and rotating tickets.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::server::{ResolvesServerCert, ServerSessionMemoryCache};
use rustls::ServerConfig;

/// Resumption sessions kept in memory (about 100 bytes each).
const SESSION_CACHE: usize = 20_000;

pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}
