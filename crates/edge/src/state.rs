//! The state shared by every connection: the current sites (swapped whole on
//! reload), the draining flag, metrics, the static file cache, the shared
//! page cache's link and the purge token. Outside the crate an [`Edge`] is
//! made ([`Edge::new`]) and handed
//! to `serve` or `run`; everything in it is the crate's own.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use murakumo_cache::Reach;
use murakumo_config::Config;
use murakumo_shared_cache::{PurgeSink, SharedCache, SharedError};

use crate::admission::Admission;
use crate::certificates::{CertError, Certificates};
use crate::file_cache::FileCache;
use crate::metrics::Metrics;
use crate::site::{SiteError, Sites};

pub struct Edge {
    sites: Arc<RwLock<Arc<Sites>>>,
    /// `[server.shared_cache]` and its link, when configured; the sites'
    /// caches hold the same handle.
    shared: RwLock<Option<(murakumo_config::SharedCache, SharedCache)>>,
    config: RwLock<Arc<Config>>,
    purge_token: RwLock<Option<String>>,
    pub(crate) config_path: PathBuf,
    pub(crate) draining: AtomicBool,
    pub(crate) metrics: Metrics,
    pub(crate) files: FileCache,
    pub(crate) certs: Certificates,
    /// Connection caps; `max_connections` is fixed at start.
    pub(crate) admission: Arc<Admission>,
    /// Tells this edge from others in the process ([`Edge::with_current`]).
    id: u64,
    /// Bumped by every reload, once the new sites and configuration are in.
    generation: Generation,
}

/// Alone on its cache lines: read by every request, written by reloads
/// only, it shares no line with anything written more often.
#[repr(align(128))]
struct Generation(AtomicU64);

/// What a request is served by: the configuration and the sites in force
/// when it came.
pub(crate) struct Current {
    pub config: Arc<Config>,
    pub sites: Arc<Sites>,
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
    #[error(transparent)]
    Shared(#[from] SharedError),
}

/// Where purges announced by other edges go: this edge's current sites.
/// Weak: the sites hold the shared cache, whose supervisor holds this.
struct SitesSink(Weak<RwLock<Arc<Sites>>>);

impl SitesSink {
    fn current(&self) -> Option<Arc<Sites>> {
        self.0.upgrade().map(|cell| lock(&cell))
    }
}

impl PurgeSink for SitesSink {
    fn purge(&self, site: &str, reach: &Reach) {
        let Some(sites) = self.current() else { return };
        if let Some(cache) = sites
            .list
            .iter()
            .find(|s| &*s.name == site)
            .and_then(|s| s.cache.as_ref())
        {
            let n = cache.store.purge(reach);
            tracing::debug!(site, ?reach, purged = n, "purge from another edge");
        }
    }

    fn sites(&self) -> Vec<String> {
        self.current().map_or_else(Vec::new, |sites| {
            sites.list.iter().map(|s| s.name.to_string()).collect()
        })
    }
}

/// The shared cache `config` names: `current`'s when its settings are the
/// same, else a new one (not connected yet).
fn shared_cache(
    config: &Config,
    current: Option<&(murakumo_config::SharedCache, SharedCache)>,
    sites: &Arc<RwLock<Arc<Sites>>>,
) -> Result<Option<(murakumo_config::SharedCache, SharedCache)>, StateError> {
    let Some(wanted) = &config.server.shared_cache else {
        return Ok(None);
    };
    if let Some((settings, cache)) = current.filter(|(c, _)| c == wanted) {
        if !cache.password_changed(wanted)? {
            return Ok(Some((settings.clone(), cache.clone())));
        }
    }
    let sink = Arc::new(SitesSink(Arc::downgrade(sites)));
    Ok(Some((wanted.clone(), SharedCache::new(wanted, sink)?)))
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
        let cell = Arc::new(RwLock::new(Arc::new(Sites::empty())));
        let shared = shared_cache(&config, None, &cell)?;
        let sites = Sites::build(&config, None, shared.as_ref().map(|(_, c)| c))?;
        *cell.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sites);
        let token = read_token(config.server.purge_token_file.as_deref())?;
        let certs = Certificates::new(&config)?;
        Ok(Edge {
            certs,
            admission: Admission::new(config.server.limits.max_connections),
            sites: cell,
            shared: RwLock::new(shared),
            config: RwLock::new(Arc::new(config)),
            purge_token: RwLock::new(token),
            config_path,
            draining: AtomicBool::new(false),
            metrics: Metrics::default(),
            files: FileCache::new(64 << 20),
            id: {
                static EDGES: AtomicU64 = AtomicU64::new(0);
                EDGES.fetch_add(1, Ordering::Relaxed)
            },
            generation: Generation(AtomicU64::new(0)),
        })
    }

    /// Runs `f` with the configuration and sites in force, as this thread
    /// last read them. Each thread keeps its own copy of the two `Arc`s,
    /// checked against the edge's generation (a load of a word only a
    /// reload writes): per request, no lock is taken and no reference
    /// count shared by the threads is written. Such writes bounce a cache
    /// line between the workers' cores: 16 a request (what taking the two
    /// locks, cloning the two `Arc`s and the site's, and dropping them cost)
    /// took a tenth of the throughput of `bench/ceiling` on this 2-core
    /// machine. A thread that serves no request after a reload keeps the
    /// old sites alive until it serves one (or ends).
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(&Current) -> R) -> R {
        thread_local! {
            static CURRENT: RefCell<Option<(u64, u64, Rc<Current>)>> = const { RefCell::new(None) };
        }
        let generation = self.generation.0.load(Ordering::Acquire);
        let current = CURRENT.with(|cell| {
            // Not borrowed while `f` runs: `f` may call this again.
            let mut cell = cell.borrow_mut();
            match &*cell {
                Some((id, seen, current)) if *id == self.id && *seen == generation => {
                    current.clone()
                }
                _ => {
                    let current = Rc::new(Current {
                        config: self.config(),
                        sites: self.sites(),
                    });
                    *cell = Some((self.id, generation, current.clone()));
                    current
                }
            }
        });
        f(&current)
    }

    pub(crate) fn sites(&self) -> Arc<Sites> {
        lock(&self.sites)
    }

    pub(crate) fn config(&self) -> Arc<Config> {
        lock(&self.config)
    }

    /// The shared page cache, when one is configured.
    pub(crate) fn shared(&self) -> Option<SharedCache> {
        lock(&self.shared).map(|(_, c)| c)
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
        let shared = shared_cache(&config, lock(&self.shared).as_ref(), &self.sites)?;
        let handle = shared.as_ref().map(|(_, c)| c);
        let sites = Sites::build(&config, Some(&self.sites()), handle)?;
        let token = read_token(config.server.purge_token_file.as_deref())?;
        self.certs.apply(&config, handle)?;
        if let Some(cache) = handle {
            cache.connect();
        }
        *self.sites.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sites);
        *self.shared.write().unwrap_or_else(|e| e.into_inner()) = shared;
        *self.purge_token.write().unwrap_or_else(|e| e.into_inner()) = token;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.generation.0.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}
