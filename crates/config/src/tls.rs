//! A site's `tls`: where its certificate comes from (files, ACME or
//! self-signed), checked against the server's HTTPS listeners and `[acme]`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::{Acme, Invalid, Server};

/// Where a site's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteTls {
    /// PEM certificate chain (leaf first); relative paths are relative to
    /// the configuration file.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Obtain and renew the certificate from the `[acme]` directory.
    #[serde(default)]
    pub acme: bool,
    /// Generate a certificate at start (local use: browsers will warn).
    #[serde(default)]
    pub self_signed: bool,
}

/// What kind of certificate source a site's `tls` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    Files { cert: PathBuf, key: PathBuf },
    Acme,
    SelfSigned,
}

impl SiteTls {
    /// The source this table names (valid after [`crate::Config::validate`]).
    pub fn source(&self) -> Option<TlsSource> {
        match (&self.cert, &self.key, self.acme, self.self_signed) {
            (Some(cert), Some(key), false, false) => Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None, true, false) => Some(TlsSource::Acme),
            (None, None, false, true) => Some(TlsSource::SelfSigned),
            _ => None,
        }
    }
}

impl SiteTls {
    /// `key` is the site's `tls` key (`site[0].tls`), `hosts` its hosts.
    pub(crate) fn validate(
        &self,
        key: &str,
        hosts: &[String],
        server: &Server,
        acme: Option<&Acme>,
    ) -> Result<(), Invalid> {
        let source = self.source().ok_or_else(|| {
            Invalid::new(
                key,
                "must name exactly one source: { cert = \"fullchain.pem\", key = \"key.pem\" }, { acme = true } or { self_signed = true }",
            )
        })?;
        if server.tls_listen.is_empty() {
            return Err(Invalid::new(
                key,
                "is set but server.tls_listen is empty; add an HTTPS listener such as \"0.0.0.0:443\"",
            ));
        }
        if source == TlsSource::Acme {
            if acme.is_none() {
                return Err(Invalid::new(
                    key,
                    "asks for acme but there is no [acme] section; add one with at least storage = \"/var/lib/murakumo/acme\"",
                ));
            }
            if let Some(h) = hosts.iter().find(|h| h.starts_with("*.")) {
                return Err(Invalid::new(
                    key,
                    format!("acme cannot obtain {h:?}: wildcard names need a DNS-01 challenge; give the wildcard a certificate file"),
                ));
            }
        }
        Ok(())
    }
}
