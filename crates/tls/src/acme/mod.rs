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
//!
//! Several edges of one site share the account, the challenges, the order
//! and the certificate through a [`Fleet`] (see [`fleet`]): one orders,
//! every edge answers the CA and serves what it got.

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

pub mod fleet;
pub use fleet::Fleet;
use fleet::{FLEET_POLL, FOLLOW_POLL, LEAD_HOLD};

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
    /// Certificates another edge of the fleet obtained, served here.
    pub adopted: u64,
}

/// Why a forced renewal did not give a new certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenewError {
    #[error("{0:?} is not a site with tls = {{ acme = true }}")]
    NotAcme(String),
    /// Another edge of the fleet is ordering the certificate now.
    #[error(
        "another edge is ordering this certificate now; every edge serves it once it is issued"
    )]
    Busy,
    #[error("{0}")]
    Failed(String),
}

type Reply = oneshot::Sender<Result<(), RenewError>>;

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
    fleet: Option<Arc<dyn Fleet>>,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long a forced renewal may take before the caller stops waiting.
const RENEW_WAIT: Duration = Duration::from_secs(120);
/// How long the fleet's store may not answer before that is reported.
const FLEET_PATIENCE: Duration = Duration::from_secs(10);

impl Manager {
    /// The ACME client; with a `fleet`, one of several edges that share
    /// the orders and the certificates.
    pub fn new(
        config: murakumo_config::Acme,
        challenges: Challenges,
        fleet: Option<Arc<dyn Fleet>>,
    ) -> Manager {
        Manager {
            shared: Arc::new(Shared {
                config,
                challenges,
                account: tokio::sync::Mutex::new(None),
                fleet,
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

    /// The answer for an HTTP-01 token: this edge's own, else one another
    /// edge of the fleet published.
    pub async fn answer(&self, token: &str) -> Option<String> {
        if let Some(a) = self.shared.challenges.answer(token) {
            return Some(a);
        }
        // Tokens are base64url (RFC 8555 §8.3); anything else is not asked.
        let plausible = !token.is_empty()
            && token.len() <= 128
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let fleet = self.shared.fleet.as_ref().filter(|_| plausible)?;
        match fleet.get(&fleet::challenge_key(token)).await {
            Ok(answer) => answer,
            Err(e) => {
                // Debug: anyone can ask for tokens, and Redis being down
                // is reported by the shared cache already.
                tracing::debug!(error = %e, "ACME: the fleet's challenges could not be read");
                None
            }
        }
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
    pub async fn renew(&self, site: &str) -> Result<(), RenewError> {
        let force = {
            let running = self.sites.lock().unwrap_or_else(|e| e.into_inner());
            match running.get(site) {
                Some(t) => t.force.clone(),
                None => return Err(RenewError::NotAcme(site.to_string())),
            }
        };
        let stopped = || RenewError::Failed("the renewal task has stopped".into());
        let (tx, rx) = oneshot::channel();
        force.send(tx).await.map_err(|_| stopped())?;
        match tokio::time::timeout(RENEW_WAIT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(RenewError::Failed(format!(
                "no outcome within {}s; still trying",
                RENEW_WAIT.as_secs()
            ))),
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
    // Due, but another edge leads: look again soon for its certificate.
    let mut following = false;
    // Since when the fleet's store has not answered.
    let mut waiting_since: Option<std::time::Instant> = None;
    // Since when this edge, having no certificate, has found none in the
    // fleet's store.
    let mut missing_since: Option<std::time::Instant> = None;
    let lead = fleet::lead_key(&name);
    let retry = fleet::retry_key(&name);
    loop {
        let due = retry_at
            .or_else(|| slot.get().map(|l| l.lifetime.renew_at()))
            .unwrap_or_else(SystemTime::now);
        let mut wait = due
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if shared.fleet.is_some() {
            wait = wait.min(if following { FOLLOW_POLL } else { FLEET_POLL });
        }
        let reply = tokio::select! {
            _ = tokio::time::sleep(wait) => None,
            r = force.recv() => match r {
                Some(reply) => Some(reply),
                None => return,
            },
        };
        following = false;
        if let Some(fleet) = &shared.fleet {
            if reply.is_none() {
                match shared.adopt(fleet.as_ref(), &name, &hosts, &slot).await {
                    // A newer certificate another edge obtained serves here
                    // too.
                    FleetCopy::Newer(loaded) => {
                        record_lifetime(&status, &loaded);
                        {
                            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
                            s.adopted += 1;
                            s.last_error = None;
                        }
                        tracing::info!(site = %name, "ACME: serving the certificate another edge obtained");
                        slot.set(loaded);
                        backoff = FIRST_BACKOFF;
                        retry_at = None;
                        missing_since = None;
                        continue;
                    }
                    // The store lost it (Redis restarted or evicted it): the
                    // edges that have one put it back, so that none orders
                    // again; one that has none waits for them a while.
                    FleetCopy::Missing => match slot.get() {
                        Some(_) => shared.share_back(fleet.as_ref(), &name).await,
                        None => {
                            let since = *missing_since.get_or_insert_with(std::time::Instant::now);
                            if since.elapsed() < FLEET_POLL + FOLLOW_POLL {
                                following = true;
                                continue;
                            }
                        }
                    },
                    FleetCopy::NotNewer | FleetCopy::Unreadable => {}
                }
                shared.share_account_back(fleet.as_ref()).await;
                if SystemTime::now() < due {
                    continue;
                }
                // After a failed order the fleet waits for its next attempt
                // (whichever edge makes it), not each edge in turn.
                if let Ok(Some(_)) = fleet.get(&retry).await {
                    following = true;
                    continue;
                }
            }
            let led = fleet.lead(&lead, LEAD_HOLD).await;
            if led.is_ok() {
                waiting_since = None;
            }
            match led {
                Ok(true) => {}
                Ok(false) => {
                    following = true;
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(RenewError::Busy));
                    }
                    continue;
                }
                Err(e) => {
                    // Never order alone (every edge would): wait for the
                    // fleet, looking again soon. Reported once it lasts
                    // (at start the link to Redis is still coming up).
                    let e = format!("waiting for Redis, which the edges share: {e}");
                    let since = *waiting_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= FLEET_PATIENCE || reply.is_some() {
                        let first = {
                            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
                            s.last_error.replace(e.clone()).is_none()
                        };
                        if first {
                            tracing::warn!(site = %name, error = %e, "ACME: renewal due, but the lead among the edges cannot be taken; looking again every {}s", FOLLOW_POLL.as_secs());
                        }
                    }
                    following = true;
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(RenewError::Failed(e)));
                    }
                    continue;
                }
            }
        }
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
                if let Some(fleet) = &shared.fleet {
                    fleet.release(&lead).await;
                }
                missing_since = None;
                Ok(())
            }
            Err(e) => {
                failed(&name, &slot, &status, &e, backoff);
                retry_at = Some(SystemTime::now() + backoff);
                // The fleet's next attempt waits as this edge's does, so the
                // edges do not take turns at the CA; a forced renewal on
                // any edge may still go ahead.
                if let Some(fleet) = &shared.fleet {
                    if let Err(e) = fleet.put(&retry, "1", Some(backoff)).await {
                        tracing::warn!(site = %name, error = %e, "ACME: the other edges could not be told to wait for the retry");
                    }
                    fleet.release(&lead).await;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                Err(RenewError::Failed(e))
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(result.clone());
        }
        // Renewals asked for while this one ran are answered by it: a
        // second order right after would only spend the CA's rate limits.
        while let Ok(queued) = force.try_recv() {
            let _ = queued.send(result.clone());
        }
    }
}

/// Records and logs a failed attempt.
fn failed(name: &str, slot: &Slot, status: &Mutex<Status>, e: &str, retry_in: Duration) {
    {
        let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
        s.last_error = Some(e.to_string());
        s.failures += 1;
    }
    let serving = if slot.get().is_some() {
        "the current certificate keeps serving"
    } else {
        "no certificate yet: HTTPS handshakes for this site fail"
    };
    tracing::error!(site = %name, error = %e, retry_in_s = retry_in.as_secs(), "ACME: renewal failed; {serving}");
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
        if !serves(&loaded, hosts) {
            tracing::info!(site = %name, "ACME: stored certificate expired or does not name every host; ordering a new one");
            return None;
        }
        Some(loaded)
    }

    /// The fleet's certificate for `name`: newer than the one in `slot`,
    /// still fresh (not due for renewal) and naming every host, it is kept
    /// in this edge's storage too, for a restart without the fleet.
    async fn adopt(
        &self,
        fleet: &dyn Fleet,
        name: &str,
        hosts: &[String],
        slot: &Slot,
    ) -> FleetCopy {
        let doc = match fleet.get(&fleet::certificate_key(name)).await {
            Ok(Some(doc)) => doc,
            Ok(None) => return FleetCopy::Missing,
            Err(e) => {
                tracing::debug!(site = %name, error = %e, "ACME: the fleet's certificate could not be read");
                return FleetCopy::Unreadable;
            }
        };
        let Some((chain_pem, key_pem)) = fleet::decode_certificate(&doc) else {
            return FleetCopy::Unreadable;
        };
        let loaded = match keypair::from_pem(
            chain_pem.as_bytes(),
            key_pem.as_bytes(),
            "the fleet's ACME certificate",
        ) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(site = %name, error = %e, "ACME: the fleet's certificate is unusable");
                return FleetCopy::Unreadable;
            }
        };
        let newer = slot
            .get()
            .is_none_or(|current| loaded.lifetime.not_after > current.lifetime.not_after);
        if !newer || !serves(&loaded, hosts) || loaded.lifetime.renew_at() <= SystemTime::now() {
            return FleetCopy::NotNewer;
        }
        if let Err(e) = self.store(name, &chain_pem, &key_pem) {
            tracing::warn!(site = %name, error = %e, "ACME: the fleet's certificate serves but could not be stored here");
        }
        FleetCopy::Newer(loaded)
    }

    /// Puts this edge's certificate for `name` (and its ACME account) back
    /// into the fleet's store, which has lost them.
    async fn share_back(&self, fleet: &dyn Fleet, name: &str) {
        let (chain_file, key_file) = site_files(&self.config.storage, name);
        let (Ok(chain_pem), Ok(key_pem)) = (
            std::fs::read_to_string(&chain_file),
            std::fs::read_to_string(&key_file),
        ) else {
            return;
        };
        if publish(fleet, name, &chain_pem, &key_pem).await.is_err() {
            return;
        }
        tracing::info!(site = %name, "ACME: Redis had lost the certificate the edges share; put this edge's back");
    }

    /// Puts this edge's ACME account back into the fleet's store if the
    /// store has lost it (and this edge has one), so that no edge makes a
    /// new one.
    async fn share_account_back(&self, fleet: &dyn Fleet) {
        let path = self.config.storage.join("account.json");
        let Ok(Some(doc)) = storage::read_optional(&path) else {
            return;
        };
        let Ok(doc) = String::from_utf8(doc) else {
            return;
        };
        if parse_account(doc.as_bytes(), &self.config.directory).is_none() {
            return;
        }
        if let Ok(None) = fleet.get(fleet::ACCOUNT_KEY).await {
            if fleet.put(fleet::ACCOUNT_KEY, &doc, None).await.is_ok() {
                tracing::info!(
                    "ACME: Redis had lost the account the edges share; put this edge's back"
                );
            }
        }
    }

    /// Writes a site's certificate and key to this edge's storage.
    fn store(&self, name: &str, chain_pem: &str, key_pem: &str) -> Result<(), String> {
        let (chain_file, key_file) = site_files(&self.config.storage, name);
        let sites = self.config.storage.join("sites");
        for dir in [self.config.storage.as_path(), sites.as_path()]
            .into_iter()
            .chain(chain_file.parent())
        {
            storage::private_dir(dir).map_err(|e| e.to_string())?;
        }
        storage::write_private(&key_file, key_pem.as_bytes()).map_err(|e| e.to_string())?;
        storage::write_private(&chain_file, chain_pem.as_bytes()).map_err(|e| e.to_string())
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
        let mut stored = storage::read_optional(&path).map_err(|e| e.to_string())?;
        let from_fleet = match (&stored, &self.fleet) {
            (None, Some(fleet)) => fleet
                .get(fleet::ACCOUNT_KEY)
                .await
                .map_err(|e| format!("the fleet's ACME account: {e}"))?
                .filter(|doc| parse_account(doc.as_bytes(), &self.config.directory).is_some()),
            _ => None,
        };
        if let Some(doc) = &from_fleet {
            storage::write_private(&path, doc.as_bytes()).map_err(|e| e.to_string())?;
            stored = Some(doc.as_bytes().to_vec());
        }
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
        if let Some(fleet) = &self.fleet {
            if let Err(e) = fleet.put(fleet::ACCOUNT_KEY, &doc.to_string(), None).await {
                tracing::warn!(error = %e, "ACME: the account could not be shared with the other edges");
            }
        }
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
        self.store(name, &chain_pem, &key_pem)?;
        if let Some(fleet) = &self.fleet {
            if let Err(e) = publish(fleet.as_ref(), name, &chain_pem, &key_pem).await {
                tracing::warn!(site = %name, error = %e, "ACME: the certificate serves here but could not be shared with the other edges");
            }
        }
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
            // The CA may ask any edge: every one must know the answer.
            if let Some(fleet) = &self.fleet {
                fleet
                    .put(
                        &fleet::challenge_key(&challenge.token),
                        answer.as_str(),
                        Some(fleet::CHALLENGE_TTL),
                    )
                    .await
                    .map_err(|e| format!("publishing the challenge to the other edges: {e}"))?;
            }
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

/// Stores a site's certificate in the fleet's store, for every edge.
async fn publish(
    fleet: &dyn Fleet,
    name: &str,
    chain_pem: &str,
    key_pem: &str,
) -> Result<(), String> {
    let doc = fleet::encode_certificate(chain_pem, key_pem);
    fleet.put(&fleet::certificate_key(name), &doc, None).await
}

/// Whether `loaded` names every one of `hosts` and has not expired.
fn serves(loaded: &Loaded, hosts: &[String]) -> bool {
    let names = loaded
        .key
        .end_entity_cert()
        .map(keypair::dns_names)
        .unwrap_or_default();
    hosts
        .iter()
        .all(|h| names.contains(&h.to_ascii_lowercase()))
        && loaded.lifetime.not_after > SystemTime::now()
}

/// What the fleet's store has of a site's certificate, next to this edge's.
enum FleetCopy {
    /// Newer than this edge's, and fresh: serve it.
    Newer(Loaded),
    /// No newer one (the same, or one this edge should not take).
    NotNewer,
    /// None at all.
    Missing,
    /// The store did not answer, or holds something unusable.
    Unreadable,
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
