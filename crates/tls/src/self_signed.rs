//! Self-signed certificates for local use (`tls = { self_signed = true }`,
//! `murakumo up --https`): an ECDSA P-256 key and a certificate naming the
//! site's hosts (wildcards included), valid for 90 days from start.

use std::time::{Duration, SystemTime};

use crate::keypair::{self, Loaded};
use crate::TlsError;

/// A certificate and key as PEM text (chain, key).
pub fn generate_pem(hosts: &[String]) -> Result<(String, String), TlsError> {
    let fail = |e: rcgen::Error| TlsError::SelfSigned {
        hosts: hosts.join(", "),
        message: e.to_string(),
    };
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(fail)?;
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(90 * 86400)).into();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        hosts.first().cloned().unwrap_or_default(),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "murakumo self-signed");
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A self-signed certificate for `hosts`, loaded.
pub fn generate(hosts: &[String]) -> Result<Loaded, TlsError> {
    let (chain, key) = generate_pem(hosts)?;
    keypair::from_pem(chain.as_bytes(), key.as_bytes(), "self-signed")
}
