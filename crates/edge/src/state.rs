//! The state shared by every connection: the current sites (swapped whole on
//! reload), the draining flag, metrics, the static file cache and the purge
//! token. Outside the crate an [`Edge`] is made ([`Edge::new`]) and handed
//! to `serve` or `run`; everything in it is the crate's own.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use murakumo_config::Config;

use crate::admission::Admission;
use crate::certificates::{CertError, Certificates};
use crate::file_cache::FileCache;
use crate::metrics::Metrics;
use crate::site::{SiteError, Sites};

pub struct Edge {
    sites: RwLock<Arc<Sites>>,
    config: RwLock<Arc<Config>>,
    purge_token: RwLock<Option<String>>,
    pub(crate) config_path: PathBuf,
    pub(crate) draining: AtomicBool,
    pub(crate) metrics: Metrics,
    pub(crate) files: FileCache,
    pub(crate) certs: Certificates,
    /// Connection caps; `max_connections` is fixed at start.
    pub(crate) admission: Arc<Admission>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("{path}: cannot read the purge token")]
    Token {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: the purge token file is empty")]
    EmptyToken { path: String },
}

fn read_token(path: Option<&Path>) -> Result<Option<String>, StateError> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|source| StateError::Token {
        path: path.display().to_string(),
        source,
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(StateError::EmptyToken {
            path: path.display().to_string(),
        });
    }
    Ok(Some(token))
}

fn lock<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Edge {
    pub fn new(config: Config, config_path: PathBuf) -> Result<Edge, StateError> {
        let sites = Sites::build(&config, None)?;
        let token = read_token(config.server.purge_token_file.as_deref())?;
        let certs = Certificates::new(&config)?;
        Ok(Edge {
            certs,
            admission: Admission::new(config.server.limits.max_connections),
            sites: RwLock::new(Arc::new(sites)),
            config: RwLock::new(Arc::new(config)),
            purge_token: RwLock::new(token),
            config_path,
            draining: AtomicBool::new(false),
            metrics: Metrics::default(),
            files: FileCache::new(64 << 20),
        })
    }

    pub(crate) fn sites(&self) -> Arc<Sites> {
        lock(&self.sites)
    }

    pub(crate) fn config(&self) -> Arc<Config> {
        lock(&self.config)
    }

    pub(crate) fn purge_token(&self) -> Option<String> {
        lock(&self.purge_token)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Swaps in a new configuration. Listener addresses cannot change
    /// without a restart; the caller warns about that. Certificates are
    /// re-read; ACME tasks are started or updated (so this must run within
    /// the tokio runtime).
    pub(crate) fn apply(&self, config: Config) -> Result<(), StateError> {
        let sites = Sites::build(&config, Some(&self.sites()))?;
        let token = read_token(config.server.purge_token_file.as_deref())?;
        self.certs.apply(&config)?;
        *self.sites.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sites);
        *self.purge_token.write().unwrap_or_else(|e| e.into_inner()) = token;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }
}
