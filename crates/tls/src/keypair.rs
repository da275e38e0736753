//! A certificate chain and its private key, from PEM, ready for rustls:
//! the key is loaded by the crypto provider and checked against the leaf
//! certificate, so a mismatched pair is refused at load, not at the first
//! handshake. Also reads what the edge needs to know about a leaf: its
//! lifetime (for renewal) and its names.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::TlsError;

/// A loaded certificate with what the edge reports about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub lifetime: Lifetime,
}

/// When a leaf certificate starts and stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Lifetime {
    /// The moment two thirds of the lifetime have passed: when to renew.
    pub fn renew_at(&self) -> SystemTime {
        let total = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_before + total * 2 / 3
    }
}

/// Reads a chain and a key from two PEM files.
pub fn load_files(cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let what = format!("{} with {}", cert.display(), key.display());
    from_pem(&read(cert)?, &read(key)?, &what)
}

/// Builds a certified key from PEM text; `what` names the source in errors.
pub fn from_pem(chain_pem: &[u8], key_pem: &[u8], what: &str) -> Result<Loaded, TlsError> {
    let bad = |message: String| TlsError::Pem {
        what: what.to_string(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("the certificate file is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(bad(
            "no CERTIFICATE block found; give the full chain, leaf first".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| bad(format!("no private key found in the key file: {e}")))?;
    let provider = aws_lc_rs::default_provider();
    let lifetime = lifetime(&chain[0]).map_err(bad)?;
    let key = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| bad(format!("the key does not fit the certificate: {e}")))?;
    Ok(Loaded {
        key: Arc::new(key),
        lifetime,
    })
}

fn to_system_time(t: x509_parser::time::ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    }
}

/// The validity period of a DER certificate.
pub fn lifetime(cert: &CertificateDer<'_>) -> Result<Lifetime, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("the leaf certificate cannot be parsed: {e}"))?;
    let validity = parsed.validity();
    Ok(Lifetime {
        not_before: to_system_time(validity.not_before),
        not_after: to_system_time(validity.not_after),
    })
}

/// The DNS names (subject alternative names) of a DER certificate.
pub fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_load_and_mismatches_are_refused() {
        let a = crate::self_signed::generate_pem(&["a.test".into()]).unwrap();
        let b = crate::self_signed::generate_pem(&["b.test".into()]).unwrap();
        let loaded = from_pem(a.0.as_bytes(), a.1.as_bytes(), "a").unwrap();
        let leaf = loaded.key.end_entity_cert().unwrap();
        assert_eq!(dns_names(leaf), vec!["a.test".to_string()]);
        let life = loaded.lifetime;
        assert!(life.not_before < life.renew_at() && life.renew_at() < life.not_after);

        let e = from_pem(a.0.as_bytes(), b.1.as_bytes(), "a+b").unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
        let e = from_pem(b"junk", a.1.as_bytes(), "junk").unwrap_err();
        assert!(e.to_string().contains("CERTIFICATE"), "{e}");
        let e = from_pem(a.0.as_bytes(), b"", "nokey").unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
    }
}
