//! Certificates obtained and renewed automatically over ACME (RFC 8555)
//! with the HTTP-01 challenge, which the edge answers itself on its plain
//! listeners from [`Challenges`].
//!
//! One task per ACME site: at start it serves the stored certificate if it
//! still covers the site's hosts and has not expired, and orders one
//! otherwise; it renews at two thirds of the lifetime; a failure is retried
//! with backoff (1 minute doubling to 1 hour) while the old certificate
//! keeps serving, and is reported in [`Status`] (the edge shows it in
//! `/metrics`, `/readyz` and the log). [`Manager::renew`] forces a renewal
//! now and waits for its outcome.
//!
//! Storage (`[acme] storage`, 0700): `account.json` (the account key, 0600)
//! and `sites/NAME/{fullchain.pem,key.pem}` (key 0600).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tokio::sync::{mpsc, oneshot};

use crate::keypair::{self, Loaded};
use crate::sni::Slot;
use crate::storage;

/// The HTTP-01 answers the edge serves at
/// `/.well-known/acme-challenge/TOKEN`, for any host.
#[derive(Clone, Default, Debug)]
pub struct Challenges(Arc<RwLock<HashMap<String, String>>>);

impl Challenges {
    /// The key authorization for a token, if an order is waiting on it.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }
    fn insert(&self, token: &str, key_authorization: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_string(), key_authorization.to_string());
    }
    fn remove(&self, token: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

/// What the edge reports about one site's certificate.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub not_after: Option<SystemTime>,
    pub renew_at: Option<SystemTime>,
    /// The last attempt's error; cleared by a success.
    pub last_error: Option<String>,
    /// Failed attempts since start.
    pub failures: u64,
    /// Certificates obtained since start.
    pub issued: u64,
}

type Reply = oneshot::Sender<Result<(), String>>;

struct SiteTask {
    hosts: Vec<String>,
    slot: Slot,
    status: Arc<Mutex<Status>>,
    force: mpsc::Sender<Reply>,
    task: tokio::task::JoinHandle<()>,
}

/// The ACME client of one edge process.
pub struct Manager {
    shared: Arc<Shared>,
    sites: Mutex<HashMap<String, SiteTask>>,
}

struct Shared {
    config: murakumo_config::Acme,
    challenges: Challenges,
    account: tokio::sync::Mutex<Option<Account>>,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long a forced renewal may take before the caller stops waiting.
const RENEW_WAIT: Duration = Duration::from_secs(120);

impl Manager {
    pub fn new(config: murakumo_config::Acme, challenges: Challenges) -> Manager {
        Manager {
            shared: Arc::new(Shared {
                config,
                challenges,
                account: tokio::sync::Mutex::new(None),
            }),
            sites: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &murakumo_config::Acme {
        &self.shared.config
    }

    pub fn challenges(&self) -> &Challenges {
        &self.shared.challenges
    }

    /// Makes the running tasks match `sites` (name, hosts): a site whose
    /// hosts are unchanged keeps its task and certificate; new sites start
    /// one; removed sites stop. Returns each site's slot for the SNI table.
    /// Must be called within a tokio runtime.
    pub fn sync(&self, sites: &[(String, Vec<String>)]) -> HashMap<String, Slot> {
        let mut running = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|name, task| {
            let keep = sites.iter().any(|(n, h)| n == name && *h == task.hosts);
            if !keep {
                task.task.abort();
            }
            keep
        });
        for (name, hosts) in sites {
            if running.contains_key(name) {
                continue;
            }
            let stored = self.shared.load_stored(name, hosts);
            let status = Arc::new(Mutex::new(Status::default()));
            if let Some(l) = &stored {
                record_lifetime(&status, l);
            }
            let slot = Slot::new(stored);
            let (force, rx) = mpsc::channel(4);
            let task = tokio::spawn(run_site(
                self.shared.clone(),
                name.clone(),
                hosts.clone(),
                slot.clone(),
                status.clone(),
                rx,
            ));
            running.insert(
                name.clone(),
                SiteTask {
                    hosts: hosts.clone(),
                    slot,
                    status,
                    force,
                    task,
                },
            );
        }
        running
            .iter()
            .map(|(n, t)| (n.clone(), t.slot.clone()))
            .collect()
    }

    /// Each ACME site's status, by name.
    pub fn statuses(&self) -> Vec<(String, Status)> {
        let running = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = running
            .iter()
            .map(|(n, t)| {
                let s = t.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
                (n.clone(), s)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Renews `site`'s certificate now and waits for the outcome.
    pub async fn renew(&self, site: &str) -> Result<(), String> {
        let force = {
            let running = self.sites.lock().unwrap_or_else(|e| e.into_inner());
            match running.get(site) {
                Some(t) => t.force.clone(),
                None => {
                    return Err(format!(
                        "{site:?} is not a site with tls = {{ acme = true }}"
                    ))
                }
            }
        };
        let (tx, rx) = oneshot::channel();
        force
            .send(tx)
            .await
            .map_err(|_| "the renewal task has stopped".to_string())?;
        match tokio::time::timeout(RENEW_WAIT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the renewal task has stopped".into()),
            Err(_) => Err(format!(
                "no outcome within {}s; still trying",
                RENEW_WAIT.as_secs()
            )),
        }
    }

    /// Stops every task.
    pub fn shutdown(&self) {
        let mut running = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        for (_, t) in running.drain() {
            t.task.abort();
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn record_lifetime(status: &Mutex<Status>, loaded: &Loaded) {
    let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
    s.not_after = Some(loaded.lifetime.not_after);
    s.renew_at = Some(loaded.lifetime.renew_at());
}

async fn run_site(
    shared: Arc<Shared>,
    name: String,
    hosts: Vec<String>,
    slot: Slot,
    status: Arc<Mutex<Status>>,
    mut force: mpsc::Receiver<Reply>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<SystemTime> = None;
    loop {
        let due = retry_at
            .or_else(|| slot.get().map(|l| l.lifetime.renew_at()))
            .unwrap_or_else(SystemTime::now);
        let wait = due
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let reply = tokio::select! {
            _ = tokio::time::sleep(wait) => None,
            r = force.recv() => match r {
                Some(reply) => Some(reply),
                None => return,
            },
        };
        tracing::info!(site = %name, hosts = ?hosts, "ACME: ordering a certificate");
        let outcome = shared.obtain(&name, &hosts).await;
        let result = match outcome {
            Ok(loaded) => {
                record_lifetime(&status, &loaded);
                {
                    let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
                    s.last_error = None;
                    s.issued += 1;
                }
                tracing::info!(site = %name, renew_in_days = loaded.lifetime.renew_at().duration_since(SystemTime::now()).map_or(0, |d| d.as_secs() / 86400), "ACME: certificate obtained and serving");
                slot.set(loaded);
                backoff = FIRST_BACKOFF;
                retry_at = None;
                Ok(())
            }
            Err(e) => {
                {
                    let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
                    s.last_error = Some(e.clone());
                    s.failures += 1;
                }
                let serving = if slot.get().is_some() {
                    "the current certificate keeps serving"
                } else {
                    "no certificate yet: HTTPS handshakes for this site fail"
                };
                tracing::error!(site = %name, error = %e, retry_in_s = backoff.as_secs(), "ACME: renewal failed; {serving}");
                retry_at = Some(SystemTime::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                Err(e)
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}

impl Shared {
    /// The stored certificate, if it covers `hosts` and has not expired.
    fn load_stored(&self, name: &str, hosts: &[String]) -> Option<Loaded> {
        let (chain, key) = site_files(&self.config.storage, name);
        if !chain.exists() {
            return None;
        }
        let loaded = match keypair::load_files(&chain, &key) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(site = %name, error = %e, "ACME: stored certificate unusable; ordering a new one");
                return None;
            }
        };
        let names = loaded
            .key
            .end_entity_cert()
            .map(keypair::dns_names)
            .unwrap_or_default();
        let covers = hosts
            .iter()
            .all(|h| names.contains(&h.to_ascii_lowercase()));
        if !covers || loaded.lifetime.not_after <= SystemTime::now() {
            tracing::info!(site = %name, "ACME: stored certificate expired or does not name every host; ordering a new one");
            return None;
        }
        Some(loaded)
    }

    async fn account(&self) -> Result<Account, String> {
        let mut guard = self.account.lock().await;
        if let Some(a) = guard.as_ref() {
            return Ok(a.clone());
        }
        let path = self.config.storage.join("account.json");
        storage::private_dir(&self.config.storage).map_err(|e| e.to_string())?;
        let builder = || match &self.config.ca_root {
            Some(root) => Account::builder_with_root(root)
                .map_err(|e| format!("{}: cannot use as the ACME CA root: {e}", root.display())),
            None => Account::builder().map_err(|e| format!("ACME HTTP client: {e}")),
        };
        let stored = storage::read_optional(&path).map_err(|e| e.to_string())?;
        if let Some(bytes) = stored {
            match parse_account(&bytes, &self.config.directory) {
                Some(creds) => {
                    let account = builder()?
                        .from_credentials(creds)
                        .await
                        .map_err(|e| format!("ACME account from {}: {e}", path.display()))?;
                    *guard = Some(account.clone());
                    return Ok(account);
                }
                None => {
                    tracing::info!(path = %path.display(), "ACME: stored account is for another directory; creating one")
                }
            }
        }
        let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, creds) = builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("ACME account at {}: {e}", self.config.directory))?;
        let doc = serde_json::json!({ "directory": self.config.directory, "credentials": creds });
        storage::write_private(&path, doc.to_string().as_bytes()).map_err(|e| e.to_string())?;
        tracing::info!(directory = %self.config.directory, "ACME: account created");
        *guard = Some(account.clone());
        Ok(account)
    }

    /// Orders, validates, finalizes and stores a certificate for `hosts`.
    async fn obtain(&self, name: &str, hosts: &[String]) -> Result<Loaded, String> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> =
            hosts.iter().map(|h| Identifier::Dns(h.clone())).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let mut tokens = Vec::new();
        let result = self.validate(&mut order, &mut tokens).await;
        for t in &tokens {
            self.challenges.remove(t);
        }
        result?;
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::default())
            .await
            .map_err(|e| format!("certificate download: {e}"))?;
        let loaded =
            keypair::from_pem(chain_pem.as_bytes(), key_pem.as_bytes(), "ACME certificate")
                .map_err(|e| e.to_string())?;
        let (chain_file, key_file) = site_files(&self.config.storage, name);
        if let Some(dir) = chain_file.parent() {
            storage::private_dir(dir).map_err(|e| e.to_string())?;
        }
        storage::write_private(&key_file, key_pem.as_bytes()).map_err(|e| e.to_string())?;
        storage::write_private(&chain_file, chain_pem.as_bytes()).map_err(|e| e.to_string())?;
        Ok(loaded)
    }

    async fn validate(
        &self,
        order: &mut instant_acme::Order,
        tokens: &mut Vec<String>,
    ) -> Result<(), String> {
        let mut authorizations = order.authorizations();
        while let Some(next) = authorizations.next().await {
            let mut authz = next.map_err(|e| format!("authorization: {e}"))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("authorization is {other:?}")),
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or("the CA offers no http-01 challenge")?;
            let answer = challenge.key_authorization();
            self.challenges.insert(&challenge.token, answer.as_str());
            tokens.push(challenge.token.clone());
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge: {e}"))?;
        }
        let status = order
            .poll_ready(&RetryPolicy::default())
            .await
            .map_err(|e| format!("waiting for validation: {e}"))?;
        if status == OrderStatus::Ready {
            return Ok(());
        }
        // Say why: the CA records each failed challenge's problem.
        let mut reasons = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(authz)) = authorizations.next().await {
            for c in &authz.challenges {
                if let Some(p) = &c.error {
                    reasons.push(p.to_string());
                }
            }
        }
        Err(format!(
            "the order is {status:?}: {}",
            if reasons.is_empty() {
                "the CA gave no reason".to_string()
            } else {
                reasons.join("; ")
            }
        ))
    }
}

fn parse_account(bytes: &[u8], directory: &str) -> Option<AccountCredentials> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if doc.get("directory")?.as_str()? != directory {
        return None;
    }
    serde_json::from_value(doc.get("credentials")?.clone()).ok()
}

/// Where a site's files are kept (for tests and operators).
pub fn site_files(storage: &Path, site: &str) -> (PathBuf, PathBuf) {
    let dir = storage.join("sites").join(site);
    (dir.join("fullchain.pem"), dir.join("key.pem"))
}
