//! Certificates for the murakumo edge.
//!
//! One job per module: [`keypair`] turns PEM files into a signing
//! certificate and reads its lifetime; [`self_signed`] makes one for local
//! use; [`sni`] picks a certificate by the client's server name (exact name
//! before wildcard) and is swapped whole on reload; [`acme`] obtains and
//! renews certificates over HTTP-01 with `instant-acme`, answering the CA's
//! challenges through [`acme::Challenges`]; [`settings`] is the rustls server
//! configuration (TLS 1.3 and 1.2 only, ALPN h2 and http/1.1); [`ocsp`]
//! staples the CA's signed status for certificates that name a responder.
//!
//! The crypto provider is aws-lc-rs, rustls' default, throughout.

pub mod acme;
pub mod keypair;
pub mod ocsp;
pub mod self_signed;
pub mod settings;
pub mod sni;
mod storage;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Pem { what: String, message: String },
    #[error("cannot generate a self-signed certificate for {hosts}: {message}")]
    SelfSigned { hosts: String, message: String },
}
