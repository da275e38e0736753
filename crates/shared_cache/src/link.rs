//! The link to Redis: one multiplexed connection for calls and one
//! subscription for announced purges, kept up by a supervisor task.
//!
//! Calls never wait for a connection: while the link is down they are not
//! made ([`Link::connection`] is `None`) and the edge goes on without Redis.
//! Three failed calls in a row, or the subscription closing, put the link
//! down; the supervisor then reconnects with backoff (100 ms doubling to
//! 5 s). Before the link is up again it looks at each site's last purge
//! stamp and drops from L1 every site purged while it could not hear the
//! channel, then sends the purges this edge kept meanwhile.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use murakumo_cache::Reach;
use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, Value};
use tokio::sync::{watch, Notify};

use crate::message;
use crate::{Inner, PurgeSink, SharedCache, SharedError};

/// Calls that fail in a row before the link is put down.
const FAILURES_DOWN: u32 = 3;
/// Purges kept while Redis does not answer; past this, the sites' every page.
const KEEP_PURGES: usize = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How the link is, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not connected yet since the edge started.
    Connecting,
    Up,
    /// Down since `since`: the edge serves from L1 and PHP.
    Down {
        error: String,
        since: Instant,
    },
}

pub(crate) struct Link {
    conn: RwLock<Option<MultiplexedConnection>>,
    status: Mutex<Status>,
    failures: AtomicU32,
    /// Wakes the supervisor when calls put the link down.
    wake: Arc<Notify>,
    pending: Mutex<VecDeque<(String, Reach)>>,
    /// Dropped with the link: the supervisor ends.
    _alive: watch::Sender<()>,
    alive: watch::Receiver<()>,
    client: Client,
    /// The configured address (never holds a password), for the logs.
    address: String,
}

/// The password in `config`'s file, if it names one.
pub(crate) fn password(
    config: &murakumo_config::SharedCache,
) -> Result<Option<String>, SharedError> {
    let Some(path) = &config.password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| SharedError::Password {
        path: path.display().to_string(),
        source,
    })?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(SharedError::EmptyPassword {
            path: path.display().to_string(),
        });
    }
    Ok(Some(password.to_string()))
}

/// A Redis client for the configured address, with `password`.
pub(crate) fn client(
    config: &murakumo_config::SharedCache,
    password: Option<&str>,
) -> Result<Client, SharedError> {
    let mut info = config
        .redis
        .as_str()
        .into_connection_info()
        .map_err(|e| SharedError::Address(e.to_string()))?;
    if let Some(password) = password {
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    Client::open(info).map_err(|e| SharedError::Address(e.to_string()))
}

/// A random id for this edge (lease owner, purge origin).
pub(crate) fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Link {
    pub(crate) fn new(client: Client, address: &str) -> Link {
        let (tx, rx) = watch::channel(());
        Link {
            conn: RwLock::new(None),
            status: Mutex::new(Status::Connecting),
            failures: AtomicU32::new(0),
            wake: Arc::new(Notify::new()),
            pending: Mutex::new(VecDeque::new()),
            _alive: tx,
            alive: rx,
            client,
            address: address.to_string(),
        }
    }

    /// The connection, while the link is up.
    pub(crate) fn connection(&self) -> Option<MultiplexedConnection> {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A call failed; the third in a row puts the link down.
    pub(crate) fn failed(&self, error: &str) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= FAILURES_DOWN {
            self.down(error);
            self.wake.notify_one();
        }
    }

    fn down(&self, error: &str) {
        let was_up = self
            .conn
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some();
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if was_up || !matches!(*status, Status::Down { .. }) {
            tracing::warn!(redis = %self.address, error, "the shared cache (Redis) is down: serving from memory and PHP until it is back");
            *status = Status::Down {
                error: error.to_string(),
                since: Instant::now(),
            };
        }
    }

    fn up(&self, conn: MultiplexedConnection) {
        self.failures.store(0, Ordering::Relaxed);
        *self.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn);
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*status, Status::Up) {
            tracing::info!(redis = %self.address, "the shared cache (Redis) is up");
            *status = Status::Up;
        }
    }

    /// Keeps a purge Redis did not take, to send when it is back.
    pub(crate) fn keep(&self, site: &str, reach: &Reach) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= KEEP_PURGES {
            // Too many to keep one by one: each site's every page.
            let mut sites: Vec<String> = pending.drain(..).map(|(s, _)| s).collect();
            sites.push(site.to_string());
            sites.sort();
            sites.dedup();
            pending.extend(sites.into_iter().map(|s| (s, Reach::All)));
            return;
        }
        pending.push_back((site.to_string(), reach.clone()));
    }

    fn take_pending(&self) -> Vec<(String, Reach)> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect()
    }
}

/// Starts the task that keeps the link up; it ends when the last handle on
/// `cache` is dropped.
pub(crate) fn spawn_supervisor(cache: &SharedCache, sink: Arc<dyn PurgeSink>) {
    let weak = Arc::downgrade(&cache.inner);
    let link = &cache.inner.link;
    let (client, wake, alive) = (link.client.clone(), link.wake.clone(), link.alive.clone());
    let channel = cache.inner.keys.channel();
    tokio::spawn(supervise(weak, client, wake, alive, channel, sink));
}

async fn supervise(
    weak: Weak<Inner>,
    client: Client,
    wake: Arc<Notify>,
    mut alive: watch::Receiver<()>,
    channel: String,
    sink: Arc<dyn PurgeSink>,
) {
    let mut backoff = BACKOFF_MIN;
    // The last purge stamp heard of for each site.
    let mut heard: HashMap<String, Option<u64>> = HashMap::new();
    loop {
        let connected = tokio::select! {
            c = connect(&client, &channel) => c,
            _ = alive.changed() => return,
        };
        match connected {
            Ok((conn, pubsub)) => {
                let Some(inner) = weak.upgrade() else { return };
                let cache = SharedCache { inner };
                if let Err(e) = catch_up(&cache, conn.clone(), &sink, &mut heard).await {
                    cache.inner.link.down(&e);
                } else {
                    cache.inner.link.up(conn);
                    for (site, reach) in cache.inner.link.take_pending() {
                        let _sent = cache.purge(&site, &reach).await;
                    }
                    backoff = BACKOFF_MIN;
                    drop(cache);
                    let lost = listen(&weak, pubsub, &wake, &mut alive, &sink, &mut heard).await;
                    match (lost, weak.upgrade()) {
                        (Some(error), Some(inner)) => inner.link.down(&error),
                        _ => return,
                    }
                }
            }
            Err(error) => match weak.upgrade() {
                Some(inner) => inner.link.down(&error),
                None => return,
            },
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = alive.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn connect(
    client: &Client,
    channel: &str,
) -> Result<(MultiplexedConnection, PubSub), String> {
    let config = AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    warn_unless_evicting(&mut conn).await;
    let subscribed = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    })
    .await;
    match subscribed {
        Ok(Ok(pubsub)) => Ok((conn, pubsub)),
        Ok(Err(e)) => Err(format!("subscribing to {channel}: {e}")),
        Err(_) => Err(format!("subscribing to {channel}: no answer")),
    }
}

/// Warns when Redis would refuse writes once full (`noeviction`, its
/// default) instead of evicting: the design expects `allkeys-lru`. Silent
/// when Redis does not let this account read its configuration.
async fn warn_unless_evicting(conn: &mut MultiplexedConnection) {
    let mut command = redis::cmd("CONFIG");
    command.arg("GET").arg("maxmemory-policy");
    let ask = command.query_async::<Vec<String>>(conn);
    if let Ok(Ok(answer)) = tokio::time::timeout(CONNECT_TIMEOUT, ask).await {
        if let [_, policy] = answer.as_slice() {
            if !policy.starts_with("allkeys-") {
                tracing::warn!(
                    policy,
                    "Redis's maxmemory-policy is not allkeys-lru: once full it refuses pages (noeviction) or keeps the wrong keys; set `maxmemory-policy allkeys-lru` and a `maxmemory`"
                );
            }
        }
    }
}

/// Drops from L1 each site purged since this edge last heard of it (every
/// site, the first time: its L1 may hold what it served without Redis).
async fn catch_up(
    cache: &SharedCache,
    mut conn: MultiplexedConnection,
    sink: &Arc<dyn PurgeSink>,
    heard: &mut HashMap<String, Option<u64>>,
) -> Result<(), String> {
    let i = &cache.inner;
    for site in sink.sites() {
        let invocation = i.scripts.purged.key(i.keys.index(&site));
        let call = invocation.invoke_async::<Value>(&mut conn);
        let value = match tokio::time::timeout(CONNECT_TIMEOUT, call).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(format!("reading {site}'s purges: {e}")),
            Err(_) => return Err(format!("reading {site}'s purges: no answer")),
        };
        let last = crate::stamp(&value);
        if heard.get(&site) != Some(&last) || last.is_none() {
            // Purged meanwhile, or no index (new, or evicted: nothing from
            // before is trusted), or never heard of.
            sink.purge(&site, &Reach::All);
        }
        heard.insert(site, last);
    }
    Ok(())
}

/// Applies announced purges until the subscription closes (the error) or
/// calls put the link down; `None` when the cache is gone.
async fn listen(
    weak: &Weak<Inner>,
    pubsub: PubSub,
    wake: &Notify,
    alive: &mut watch::Receiver<()>,
    sink: &Arc<dyn PurgeSink>,
    heard: &mut HashMap<String, Option<u64>>,
) -> Option<String> {
    let mut messages = pubsub.into_on_message();
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else {
                    return Some("the purge channel closed".into());
                };
                let inner = weak.upgrade()?;
                let Some(a) = std::str::from_utf8(msg.get_payload_bytes()).ok().and_then(message::parse) else {
                    tracing::warn!(channel = msg.get_channel_name(), "an announcement this edge cannot read; ignored");
                    continue;
                };
                if a.origin != inner.origin {
                    sink.purge(&a.site, &a.reach);
                    inner.stats.purges_applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let last = heard.entry(a.site).or_insert(None);
                *last = Some(last.map_or(a.stamp, |l| l.max(a.stamp)));
            }
            _ = wake.notified() => {
                let inner = weak.upgrade()?;
                if inner.link.connection().is_none() {
                    return Some("calls failed".into());
                }
            }
            _ = alive.changed() => return None,
        }
    }
}
