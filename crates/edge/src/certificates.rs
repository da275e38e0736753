//! The edge's certificates: the SNI table built from each site's `tls`
//! (files loaded and checked, self-signed generated once per host list,
//! ACME slots filled by the ACME manager), rebuilt on reload; the rustls
//! settings of the HTTPS listeners; the ACME manager and its HTTP-01
//! answers; OCSP stapling for certificates that name a responder. With a
//! shared cache, the ACME manager shares its orders with the other edges
//! through it ([`SharedFleet`]).
//!
//! A reload that names an unreadable or mismatched certificate is refused
//! as a whole (the old table keeps serving); connections already open keep
//! their certificate, new handshakes see the new table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use murakumo_config::{Config, TlsSource};
use murakumo_shared_cache::SharedCache;
use murakumo_tls::acme::fleet::Pending;
use murakumo_tls::acme::{Challenges, Fleet, Manager};
use murakumo_tls::sni::{Resolver, Slot, Table, WeakSlot};
use murakumo_tls::{keypair, ocsp, self_signed, settings, TlsError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;

pub struct Certificates {
    resolver: Arc<Resolver>,
    pub server_config: Arc<ServerConfig>,
    pub challenges: Challenges,
    /// The ACME manager, and the shared cache it shares orders through.
    acme: Mutex<Option<(Arc<Manager>, Option<SharedCache>)>>,
    /// Self-signed certificates by site: kept across reloads while the
    /// site's hosts are unchanged, so clients that pinned one keep working.
    self_signed: Mutex<HashMap<String, (Vec<String>, Slot)>>,
    /// Slots with an OCSP task (which ends when its slot is dropped).
    stapling: Mutex<Vec<WeakSlot>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("site {site}")]
    Site { site: String, source: TlsError },
    #[error("TLS settings: {0}")]
    Settings(#[from] rustls::Error),
    #[error(
        "`acme.ca_root`: {path}: {reason}; give the PEM root certificate of the ACME CA's HTTPS"
    )]
    AcmeRoot { path: String, reason: String },
}

/// `acme.ca_root`, when ACME is used, must be a PEM certificate: said at
/// start (and by `murakumo check`), not at the first order.
fn check_acme_root(config: &Config) -> Result<(), CertError> {
    let Some(root) = config
        .acme
        .as_ref()
        .filter(|_| config.wants_acme())
        .and_then(|a| a.ca_root.as_ref())
    else {
        return Ok(());
    };
    let bad = |reason: String| CertError::AcmeRoot {
        path: root.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(root).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| bad(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(())
}

impl Certificates {
    /// Loads every file and generates self-signed certificates; ACME sites
    /// have empty slots until [`Certificates::apply`] starts the ACME
    /// manager (within the runtime).
    pub fn new(config: &Config) -> Result<Certificates, CertError> {
        check_acme_root(config)?;
        let resolver = Arc::new(Resolver::default());
        let certs = Certificates {
            server_config: settings::server_config(resolver.clone())?,
            resolver,
            challenges: Challenges::default(),
            acme: Mutex::new(None),
            self_signed: Mutex::new(HashMap::new()),
            stapling: Mutex::new(Vec::new()),
        };
        certs
            .resolver
            .replace(certs.table(config, &HashMap::new())?.0);
        Ok(certs)
    }

    fn table(
        &self,
        config: &Config,
        acme_slots: &HashMap<String, Slot>,
    ) -> Result<(Table, Vec<(String, Slot)>), CertError> {
        let mut table = Table::default();
        let mut named = Vec::new();
        let mut self_signed = self.self_signed.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = HashMap::new();
        for site in &config.site {
            let Some(source) = site.tls.as_ref().and_then(|t| t.source()) else {
                continue;
            };
            let fail = |source| CertError::Site {
                site: site.name.clone(),
                source,
            };
            let slot = match source {
                TlsSource::Files { cert, key } => {
                    Slot::new(Some(keypair::load_files(&cert, &key).map_err(fail)?))
                }
                TlsSource::SelfSigned => {
                    let slot = match self_signed.get(&site.name) {
                        Some((hosts, slot)) if *hosts == site.hosts => slot.clone(),
                        _ => Slot::new(Some(self_signed::generate(&site.hosts).map_err(fail)?)),
                    };
                    kept.insert(site.name.clone(), (site.hosts.clone(), slot.clone()));
                    slot
                }
                TlsSource::Acme => acme_slots.get(&site.name).cloned().unwrap_or_default(),
            };
            table.add(&site.hosts, &slot);
            named.push((site.name.clone(), slot));
        }
        *self_signed = kept;
        Ok((table, named))
    }

    /// Starts an OCSP stapling task for each slot that has none yet.
    fn staple(&self, slots: &[(String, Slot)]) {
        let mut tasks = self.stapling.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|w| w.upgrade().is_some());
        for (name, slot) in slots {
            if tasks
                .iter()
                .any(|w| w.upgrade().is_some_and(|s| s.same(slot)))
            {
                continue;
            }
            tasks.push(slot.downgrade());
            tokio::spawn(ocsp::keep_stapled(
                slot.downgrade(),
                Arc::from(name.as_str()),
            ));
        }
    }

    /// Starts (or, on reload, updates) the ACME manager for the sites with
    /// `tls = { acme = true }`, and rebuilds the table with their slots.
    /// Must run within the tokio runtime.
    pub fn apply(&self, config: &Config, shared: Option<&SharedCache>) -> Result<(), CertError> {
        check_acme_root(config)?;
        let manager = {
            let mut acme = self.acme.lock().unwrap_or_else(|e| e.into_inner());
            let same = match (acme.as_ref(), &config.acme) {
                (Some((m, fleet)), Some(c)) => {
                    m.config() == c
                        && match (fleet, shared) {
                            (Some(a), Some(b)) => a.same(b),
                            (None, None) => true,
                            _ => false,
                        }
                }
                _ => false,
            };
            if !same {
                if let Some((old, _)) = acme.take() {
                    old.shutdown();
                }
                if let (true, Some(c)) = (config.wants_acme(), &config.acme) {
                    let fleet = shared.map(|s| Arc::new(SharedFleet(s.clone())) as Arc<dyn Fleet>);
                    let m = Manager::new(c.clone(), self.challenges.clone(), fleet);
                    *acme = Some((Arc::new(m), shared.cloned()));
                }
            }
            acme.as_ref().map(|(m, _)| m.clone())
        };
        let acme_sites: Vec<(String, Vec<String>)> = config
            .site
            .iter()
            .filter(|s| s.tls.as_ref().and_then(|t| t.source()) == Some(TlsSource::Acme))
            .map(|s| (s.name.clone(), s.hosts.clone()))
            .collect();
        let slots = match &manager {
            Some(m) => m.sync(&acme_sites),
            None => HashMap::new(),
        };
        let (table, named) = self.table(config, &slots)?;
        self.resolver.replace(table);
        self.staple(&named);
        Ok(())
    }

    pub fn acme(&self) -> Option<Arc<Manager>> {
        self.acme
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(m, _)| m.clone())
    }
}

/// ACME's store of what the edges share, over their shared cache: the
/// account, the challenges, one lead per site and the certificates.
struct SharedFleet(SharedCache);

impl Fleet for SharedFleet {
    fn get<'a>(&'a self, key: &'a str) -> Pending<'a, Result<Option<String>, String>> {
        Box::pin(self.0.value(key))
    }
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Option<Duration>,
    ) -> Pending<'a, Result<(), String>> {
        Box::pin(self.0.set_value(key, value, ttl))
    }
    fn lead<'a>(&'a self, key: &'a str, hold: Duration) -> Pending<'a, Result<bool, String>> {
        Box::pin(self.0.lead(key, hold))
    }
    fn release<'a>(&'a self, key: &'a str) -> Pending<'a, ()> {
        Box::pin(self.0.give_back(key))
    }
}
