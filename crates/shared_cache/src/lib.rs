//! The page cache every edge shares (L2), on Redis, behind each edge's own
//! memory (L1, `murakumo-cache`).
//!
//! On an L1 miss the edge asks here before PHP ([`SharedCache::find`]): a
//! page another edge stored comes back whole (bodies in every form, headers,
//! tags, times). When there is none, one edge of the fleet gets the key's
//! [`Lease`] and renders it; the others wait for its page, and a lease whose
//! holder died runs out by itself. Purges ([`SharedCache::purge`]) are
//! stamped in Redis (see `scripts` for why nothing is deleted) and
//! announced on a channel every edge listens to, so each applies them to its
//! L1 ([`PurgeSink`]).
//!
//! Redis down or slow never holds a visitor up: every call has a short
//! timeout, a failing link is marked down and left alone (the edge goes on
//! with L1 and PHP) while `link` reconnects with backoff, and purges made
//! meanwhile are kept and sent when it is back. An edge that lost the channel
//! for a while drops from its L1 the sites purged in between.
//!
//! The keys and the scripts are this crate's own design (`keys`,
//! `scripts`); the Redis client is `redis`.

mod keys;
mod link;
mod message;
mod scripts;
mod values;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use murakumo_cache::{wire, CacheKey, Entry, Reach};
use redis::Value;

use keys::Keys;
use link::Link;
pub use link::Status;
use scripts::{Scripts, MAX_LIFE_MS};

/// Where announced purges go: the edge's own memory.
pub trait PurgeSink: Send + Sync + 'static {
    /// Applies to this edge's L1 a purge another edge was asked for.
    fn purge(&self, site: &str, reach: &Reach);
    /// The sites this edge serves (to look for purges it may have missed
    /// while it could not hear the channel).
    fn sites(&self) -> Vec<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("server.shared_cache.password_file: cannot read {path}")]
    Password {
        path: String,
        source: std::io::Error,
    },
    #[error("server.shared_cache.password_file: {path} is empty")]
    EmptyPassword { path: String },
    #[error("server.shared_cache.redis: {0}")]
    Address(String),
}

/// Counters exported as metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Pages found (fresh or stale).
    pub hits: AtomicU64,
    /// Lookups that found nothing.
    pub misses: AtomicU64,
    /// Calls that failed or timed out (each answered without Redis).
    pub errors: AtomicU64,
    /// Pages stored; and not stored, because a purge came during the fill.
    pub stores: AtomicU64,
    pub overtaken: AtomicU64,
    /// Purges this edge announced, and announcements it applied.
    pub purges_sent: AtomicU64,
    pub purges_applied: AtomicU64,
    /// Lookups answered, and the time they took in all (µs).
    pub lookups: AtomicU64,
    pub lookup_micros: AtomicU64,
}

/// A handle on the shared tier (cheap to clone).
#[derive(Clone)]
pub struct SharedCache {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    scripts: Scripts,
    timeout: Duration,
    /// This edge, as lease owner and purge origin.
    origin: u64,
    owner: String,
    link: Link,
    stats: Stats,
    /// Until [`SharedCache::connect`] hands it to the supervisor.
    sink: Mutex<Option<Arc<dyn PurgeSink>>>,
    /// What the password file held when this was made.
    password: Option<String>,
}

/// What the shared tier has for a key.
pub enum Found {
    /// A page no purge has reached: fresh or stale, as its times say.
    /// Its ready heads are not built.
    Page(Box<Entry>),
    /// None; this edge renders it.
    Lead(Lease),
    /// None, and no lease: another edge still renders it after the wait,
    /// or Redis did not answer.
    Nothing,
}

/// Whether this edge may refresh a stale page for the fleet.
pub enum Refresh {
    Lead(Lease),
    /// Another edge refreshes it.
    Held,
    /// Redis did not answer: refresh alone.
    Unavailable,
}

/// How long a lease lasts unless its holder renews it (every third of it,
/// while it renders): a holder that died holds the others up this long at
/// most.
const LEASE: Duration = Duration::from_secs(5);

/// This edge renders a key for the fleet. [`Lease::store`] shares the page;
/// dropped unstored, it lets the next edge render (in the background).
pub struct Lease {
    cache: SharedCache,
    key: CacheKey,
    /// Where on the site's clock the fill began.
    since: u64,
    done: bool,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn new(cache: &SharedCache, key: &CacheKey, since: u64) -> Lease {
        let (c, k) = (cache.clone(), key.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if !c.renew(&k).await {
                    return;
                }
            }
        });
        Lease {
            cache: cache.clone(),
            key: key.clone(),
            since,
            done: false,
            renewer,
        }
    }

    /// Stores the page for every edge (in the background), unless a purge
    /// that reaches it came since the fill began.
    pub fn store(mut self, entry: &Arc<Entry>) {
        self.done = true;
        self.renewer.abort();
        let (cache, key, since, entry) = (
            self.cache.clone(),
            self.key.clone(),
            self.since,
            entry.clone(),
        );
        tokio::spawn(async move { cache.store(&key, &entry, since).await });
    }
}

impl Lease {
    /// The fill was overtaken by a purge: not shared (counted), and the
    /// lease ends for the next edge.
    pub fn overtaken(self) {
        self.cache
            .inner
            .stats
            .overtaken
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if !self.done {
            let (cache, key) = (self.cache.clone(), self.key.clone());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { cache.release(&key).await });
            }
        }
    }
}

/// One `READ` answer.
enum Read {
    Page(Bytes),
    Lead(u64),
    Held,
    Nothing,
}

impl SharedCache {
    /// The shared tier `config` names, not connected yet ([`Self::connect`]):
    /// its address is read and its password file too.
    pub fn new(
        config: &murakumo_config::SharedCache,
        sink: Arc<dyn PurgeSink>,
    ) -> Result<SharedCache, SharedError> {
        let password = link::password(config)?;
        let client = link::client(config, password.as_deref())?;
        let origin = link::random_id();
        let inner = Arc::new(Inner {
            keys: Keys::new(&config.prefix),
            scripts: Scripts::new(),
            timeout: config.timeout,
            origin,
            owner: format!("{origin:016x}"),
            link: Link::new(client, &config.redis),
            password,
            stats: Stats::default(),
            sink: Mutex::new(Some(sink)),
        });
        Ok(SharedCache { inner })
    }

    /// Connects, in the background: this returns at once, and the edge
    /// serves from L1 and PHP until Redis answers. Once; must run in a
    /// tokio runtime.
    pub fn connect(&self) {
        let sink = self
            .inner
            .sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(sink) = sink {
            link::spawn_supervisor(self, sink);
        }
    }

    /// Whether `config`'s password file holds another password now (a
    /// rotation: the edge makes a new link on reload).
    pub fn password_changed(
        &self,
        config: &murakumo_config::SharedCache,
    ) -> Result<bool, SharedError> {
        Ok(link::password(config)? != self.inner.password)
    }

    /// Whether `other` is this same handle (not merely the same settings).
    pub fn same(&self, other: &SharedCache) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub fn status(&self) -> Status {
        self.inner.link.status()
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The page for `key`; or the lease to render it (renewed while this
    /// edge renders); or, when another edge holds it, its page once stored,
    /// waiting at most `wait_for` (PHP's timeout) for it. A holder that
    /// died lets its lease run out within [`LEASE`]: the next look takes it.
    pub async fn find(&self, key: &CacheKey, wait_for: Duration) -> Found {
        let deadline = Instant::now() + wait_for;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.read(key, true).await {
                Some(Read::Page(bytes)) => return self.decoded(key, &bytes),
                Some(Read::Lead(since)) => return Found::Lead(Lease::new(self, key, since)),
                Some(Read::Held) if Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Some(Read::Held | Read::Nothing) | None => return Found::Nothing,
            }
        }
    }

    /// The page for `key` if there is one; no lease is taken.
    pub async fn peek(&self, key: &CacheKey) -> Option<Entry> {
        match self.read(key, false).await? {
            Read::Page(bytes) => match self.decoded(key, &bytes) {
                Found::Page(e) => Some(*e),
                _ => None,
            },
            _ => None,
        }
    }

    /// The lease to refresh `key` (a stale page), unless another edge
    /// refreshes it already or Redis does not answer.
    pub async fn lease(&self, key: &CacheKey) -> Refresh {
        let i = &self.inner;
        let Some(mut conn) = i.link.connection() else {
            return Refresh::Unavailable;
        };
        let mut call = i.scripts.lease.key(i.keys.index(&key.site));
        call.key(i.keys.lease(key))
            .arg(&i.owner)
            .arg(LEASE.as_millis() as u64);
        let Some(value) = self.timed(call.invoke_async::<Value>(&mut conn)).await else {
            return Refresh::Unavailable;
        };
        match stamp(&value) {
            Some(since) => Refresh::Lead(Lease::new(self, key, since)),
            None => Refresh::Held,
        }
    }

    /// Stamps a purge in Redis and announces it to the other edges; kept
    /// and sent later if Redis does not answer now (`false`). This edge's
    /// L1 is the caller's to purge.
    pub async fn purge(&self, site: &str, reach: &Reach) -> bool {
        let sent = self.send_purge(site, reach).await;
        if !sent {
            self.inner.link.keep(site, reach);
        }
        sent
    }

    /// Sends one purge; `false` when Redis did not take it.
    async fn send_purge(&self, site: &str, reach: &Reach) -> bool {
        let i = &self.inner;
        let Some(mut conn) = i.link.connection() else {
            return false;
        };
        let (kind, values) = message::parts(reach);
        let mut call = i.scripts.purge.key(i.keys.index(site));
        call.arg(i.keys.channel())
            .arg(message::body(i.origin, site, reach))
            .arg(MAX_LIFE_MS * 1000)
            .arg(kind);
        for v in values {
            call.arg(v);
        }
        // A purge is worth waiting for longer than a lookup.
        let limit = i.timeout.max(Duration::from_secs(1));
        let sent = self.within(
            limit,
            "a purge timed out",
            call.invoke_async::<Value>(&mut conn),
        );
        if sent.await.is_none() {
            return false;
        }
        i.stats.purges_sent.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// One `READ`; `lease`: take the key's lease when there is no page.
    async fn read(&self, key: &CacheKey, lease: bool) -> Option<Read> {
        let i = &self.inner;
        let mut conn = i.link.connection()?;
        let started = Instant::now();
        let mut call = i.scripts.read.key(i.keys.page(key));
        call.key(i.keys.index(&key.site))
            .key(i.keys.lease(key))
            .arg(if lease { i.owner.as_str() } else { "" })
            .arg(LEASE.as_millis() as u64);
        let value: Value = self.timed(call.invoke_async(&mut conn)).await?;
        i.stats.lookups.fetch_add(1, Ordering::Relaxed);
        i.stats
            .lookup_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let Value::Array(parts) = value else {
            self.failed("READ answered with no array");
            return None;
        };
        // The page's bytes are moved, not copied (a page is ~100 KB).
        let mut parts = parts.into_iter();
        let read = match (parts.next(), parts.next()) {
            (Some(Value::Int(1)), Some(Value::BulkString(b))) => Read::Page(Bytes::from(b)),
            (Some(Value::Int(2)), Some(s)) => Read::Lead(stamp(&s)?),
            (Some(Value::Int(3)), None) => Read::Held,
            _ => Read::Nothing,
        };
        let counter = match read {
            Read::Page(_) => &i.stats.hits,
            _ => &i.stats.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(read)
    }

    fn decoded(&self, key: &CacheKey, bytes: &Bytes) -> Found {
        match wire::decode(bytes) {
            Ok(entry) => Found::Page(Box::new(entry)),
            Err(e) => {
                self.inner.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %key, error = %e, "the shared cache holds a page this edge cannot read; rendering it");
                Found::Nothing
            }
        }
    }

    async fn store(&self, key: &CacheKey, entry: &Entry, since: u64) {
        let i = &self.inner;
        let now = Instant::now();
        let ttl = entry.stale_until.saturating_duration_since(now);
        let ttl_ms = (ttl.as_millis() as u64).min(MAX_LIFE_MS);
        if ttl_ms == 0 {
            self.release(key).await;
            return;
        }
        let Some(mut conn) = i.link.connection() else {
            return;
        };
        let bytes = wire::encode(entry);
        let tags = entry
            .tags
            .as_ref()
            .map(|t| t.iter().collect::<Vec<_>>().join(" "));
        let mut call = i.scripts.store.key(i.keys.page(key));
        call.key(i.keys.index(&key.site))
            .key(i.keys.lease(key))
            .arg(since)
            .arg(&key.target)
            .arg(tags.as_deref().unwrap_or(""))
            .arg(if tags.is_some() { "1" } else { "0" })
            .arg(&bytes[..])
            .arg(ttl_ms)
            .arg(&i.owner);
        // Storing a large page takes longer than a lookup; nobody waits on it.
        let limit = i.timeout.max(Duration::from_secs(2));
        let stored = self.within(
            limit,
            "a store timed out",
            call.invoke_async::<i64>(&mut conn),
        );
        if let Some(kept) = stored.await {
            let counter = if kept == 1 {
                &i.stats.stores
            } else {
                &i.stats.overtaken
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Extends this edge's lease on `key`; `false` when it is not ours any
    /// more (or Redis did not answer).
    async fn renew(&self, key: &CacheKey) -> bool {
        let i = &self.inner;
        let Some(mut conn) = i.link.connection() else {
            return false;
        };
        let mut call = i.scripts.renew.key(i.keys.lease(key));
        call.arg(&i.owner).arg(LEASE.as_millis() as u64);
        matches!(
            self.timed(call.invoke_async::<i64>(&mut conn)).await,
            Some(1)
        )
    }

    async fn release(&self, key: &CacheKey) {
        self.release_key(self.inner.keys.lease(key)).await
    }

    /// Ends this edge's lease or lead held in `redis_key`, if it still has it.
    async fn release_key(&self, redis_key: String) {
        let i = &self.inner;
        let Some(mut conn) = i.link.connection() else {
            return;
        };
        let mut call = i.scripts.release.key(redis_key);
        call.arg(&i.owner);
        let _: Option<Value> = self.timed(call.invoke_async(&mut conn)).await;
    }

    /// A call, bounded by the lookup timeout; `None` (and the link told)
    /// when it failed.
    async fn timed<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        let limit = self.inner.timeout;
        self.within(limit, "no answer within server.shared_cache.timeout", call)
            .await
    }

    /// A call bounded by `limit`; `None` when it failed or ran out
    /// (`late` says which in the link's status). Every call counts for the
    /// link: a success ends a run of failures.
    async fn within<T>(
        &self,
        limit: Duration,
        late: &str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(v)) => {
                self.inner.link.succeeded();
                Some(v)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed(late);
                None
            }
        }
    }

    fn failed(&self, error: &str) {
        self.inner.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.inner.link.failed(error);
    }
}

/// A stamp the scripts return as text.
fn stamp(value: &Value) -> Option<u64> {
    match value {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}
