//! `[acme]`: the ACME account and where certificates are kept, for sites
//! with `tls = { acme = true }`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::Invalid;

/// The ACME account and where certificates are kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// Contact address given to the CA (expiry warnings, policy changes).
    pub email: Option<String>,
    /// The CA's directory URL; Let's Encrypt by default.
    #[serde(default = "default_acme_directory")]
    pub directory: String,
    /// Directory for the account key and certificates (created 0700; keys
    /// are written 0600); relative paths are relative to the configuration.
    pub storage: PathBuf,
    /// A PEM root to trust for the directory's own HTTPS (a private or test
    /// CA such as pebble); the system roots otherwise.
    pub ca_root: Option<PathBuf>,
}

pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

fn default_acme_directory() -> String {
    LETS_ENCRYPT.to_string()
}

impl Acme {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if !(self.directory.starts_with("https://") || self.directory.starts_with("http://")) {
            return Err(Invalid::new(
                "acme.directory",
                format!(
                    "{:?} is not a URL; give the CA's directory, e.g. \"{LETS_ENCRYPT}\"",
                    self.directory
                ),
            ));
        }
        if let Some(email) = &self.email {
            if !email.contains('@') || email.contains(char::is_whitespace) {
                return Err(Invalid::new(
                    "acme.email",
                    format!("{email:?} is not an e-mail address"),
                ));
            }
        }
        Ok(())
    }
}
