//! Cached pages in memory, bounded by bytes, each entry holding its body in
//! identity, gzip and brotli form, compressed once when stored.
//!
//! Eviction is `quick_cache`'s (S3-FIFO-like: scan-resistant, bounded by
//! bytes), chosen over `moka` for the hit path: a lookup is a hash, a shard's
//! read lock and a table probe, about 500 instructions where moka's, with its
//! read bookkeeping (a read buffer, an epoch pin, its own clock), cost 1,200:
//! a tenth of a whole hit. Freshness and the end of the stale window are
//! decided here at lookup (an entry past its stale window is removed then,
//! or evicted like any other). A lookup takes a [`KeyView`](crate::KeyView), so a hit
//! allocates nothing for its key. Entries are indexed by their tags
//! ([`crate::tags`]) for exact purges; the index follows the entries (an
//! evicted or replaced entry leaves it in [`Unindex`], a removed one where
//! it is removed), so it is bounded by them.
//!
//! A hit asks [`PageCache::lend_fresh`], which answers from the thread's
//! memo of hot entries when it can ([`crate::hot`]); every change to the
//! entries bumps the store's epoch, which empties the memos of it.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, StatusCode};

use crate::encoding::{self, Encoding};
use crate::head::{map_weight, Decoration, Heads};
use crate::hot::{self, Lent};
use crate::key::{CacheKey, KeyView};
use crate::purge_log::PurgeLog;
pub use crate::purge_log::Reach;
use crate::tags::{TagIndex, Tags};

/// Bodies smaller than this are not worth compressing: the same bound as
/// for files and for answers compressed on the fly (the README's "under
/// 1 KiB").
const MIN_COMPRESS: usize = 1024;
/// Pages are compressed once, when stored: a good level is worth it.
const STORED_LEVEL: encoding::Level = encoding::Level::Stored;

/// One stored response.
#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    /// Response headers as stored: no hop-by-hop headers, no length, no encoding.
    pub headers: HeaderMap,
    pub identity: Bytes,
    pub gzip: Option<Bytes>,
    pub br: Option<Bytes>,
    pub stored_at: Instant,
    pub fresh_until: Instant,
    pub stale_until: Instant,
    /// What the page shows, as PHP labelled it (`X-Murakumo-Tags`); `None`
    /// when it did not (every tag purge of its host removes it then).
    pub tags: Option<Tags>,
    /// Tells this entry from a later one under the same key (tag index).
    pub(crate) id: u64,
    /// The head each form is answered with ([`Entry::decorated`]).
    pub heads: Heads,
}

static NEXT_ENTRY_ID: AtomicU64 = AtomicU64::new(1);

impl Entry {
    /// Builds an entry, compressing a compressible body with gzip and brotli.
    /// This costs a few milliseconds for a WordPress page: call it off the
    /// async runtime (`spawn_blocking`).
    pub fn build(
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
        ttl: Duration,
        stale: Duration,
        tags: Option<Tags>,
    ) -> Entry {
        for name in HOP_BY_HOP
            .iter()
            .chain([&header::CONTENT_LENGTH, &header::CONTENT_ENCODING])
        {
            headers.remove(name);
        }
        let compress = body.len() >= MIN_COMPRESS
            && !encoding::forbids_transform(&headers)
            && encoding::is_compressible(&headers);
        let (gzip, br) = if compress {
            (
                smaller(encoding::gzip(&body, STORED_LEVEL), body.len()),
                smaller(encoding::brotli(&body, STORED_LEVEL), body.len()),
            )
        } else {
            (None, None)
        };
        if gzip.is_some() || br.is_some() {
            headers.insert(
                header::VARY,
                http::HeaderValue::from_static("Accept-Encoding"),
            );
        }
        // A validator for revalidating browsers (WordPress sends none for
        // pages). Weak: the encodings are equivalent, not byte-equal.
        if !headers.contains_key(header::ETAG) {
            let mut hasher = std::hash::DefaultHasher::new();
            hasher.write(&body);
            let tag = format!("W/\"{:016x}\"", hasher.finish());
            if let Ok(v) = http::HeaderValue::from_str(&tag) {
                headers.insert(header::ETAG, v);
            }
        }
        let now = Instant::now();
        Entry {
            status,
            headers,
            identity: body,
            gzip,
            br,
            stored_at: now,
            fresh_until: now + ttl,
            stale_until: now + ttl + stale,
            tags,
            id: NEXT_ENTRY_ID.fetch_add(1, Ordering::Relaxed),
            heads: Heads::default(),
        }
    }

    /// An entry as another edge stored it ([`crate::wire`]): bodies
    /// (identity, gzip, brotli; an empty compressed form is none) and times
    /// (stored, fresh until, stale until) as they were.
    pub fn stored(
        status: StatusCode,
        headers: HeaderMap,
        [identity, gzip, br]: [Bytes; 3],
        [stored_at, fresh_until, stale_until]: [Instant; 3],
        tags: Option<Tags>,
    ) -> Entry {
        Entry {
            status,
            headers,
            identity,
            gzip: Some(gzip).filter(|b| !b.is_empty()),
            br: Some(br).filter(|b| !b.is_empty()),
            stored_at,
            fresh_until,
            stale_until,
            tags,
            id: NEXT_ENTRY_ID.fetch_add(1, Ordering::Relaxed),
            heads: Heads::default(),
        }
    }

    /// The entry with its ready heads ([`crate::head`]), built with what the
    /// server adds to every answer.
    pub fn decorated(mut self, decoration: &Decoration) -> Entry {
        self.heads = Heads::build(
            &self.headers,
            self.identity.len(),
            self.gzip.as_ref().map(Bytes::len),
            self.br.as_ref().map(Bytes::len),
            decoration,
        );
        self
    }

    pub fn body(&self, enc: Encoding) -> &Bytes {
        match enc {
            Encoding::Brotli => self.br.as_ref().unwrap_or(&self.identity),
            Encoding::Gzip => self.gzip.as_ref().unwrap_or(&self.identity),
            Encoding::Identity => &self.identity,
        }
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    /// Bytes this entry holds, for the memory bound.
    pub fn weight(&self) -> u64 {
        let headers = map_weight(&self.headers) + self.heads.weight();
        (self.identity.len()
            + self.gzip.as_ref().map_or(0, Bytes::len)
            + self.br.as_ref().map_or(0, Bytes::len)
            + headers
            + self.tags.as_ref().map_or(0, Tags::weight)
            + 256) as u64
    }
}

const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
];

fn smaller(compressed: Option<Vec<u8>>, original: usize) -> Option<Bytes> {
    compressed.filter(|c| c.len() < original).map(Bytes::from)
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    Fresh(Arc<Entry>),
    /// Expired but inside its stale window.
    Stale(Arc<Entry>),
    Miss,
}

/// Counters exported as metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub inserts: AtomicU64,
    pub purged: AtomicU64,
}

/// How long a key whose page was not to be shared sends its requests to
/// PHP as the clients sent them (Varnish calls this hit-for-miss).
pub const PASS_TTL: Duration = Duration::from_secs(120);

/// How keys are hashed: foldhash's quality hasher, seeded at random per
/// process, several times cheaper than SipHash on a key (a lookup per hit).
/// Keys come from clients, so the seed matters: without it no one can
/// aim requests at one bucket.
type KeyHasher = foldhash::quality::RandomState;

/// An entry weighs its bytes ([`Entry::weight`]).
#[derive(Clone)]
struct EntryWeight;

impl quick_cache::Weighter<CacheKey, Arc<Entry>> for EntryWeight {
    fn weight(&self, _key: &CacheKey, entry: &Arc<Entry>) -> u64 {
        entry.weight()
    }
}

/// Takes an entry the cache evicted, or replaced with a newer one, out of
/// the tag index. The entry itself is dropped once the shard's lock is
/// released (the request state is dropped after it). The index's lock is
/// taken under a shard's, never the other way round: the index never calls
/// into the entries.
#[derive(Clone)]
struct Unindex(Arc<TagIndex>);

impl quick_cache::Lifecycle<CacheKey, Arc<Entry>> for Unindex {
    type RequestState = Vec<Arc<Entry>>;

    fn on_evict(&self, freed: &mut Vec<Arc<Entry>>, key: CacheKey, entry: Arc<Entry>) {
        self.0.remove(&key, entry.id, entry.tags.as_ref());
        freed.push(entry);
    }
}

type Entries = quick_cache::sync::Cache<CacheKey, Arc<Entry>, EntryWeight, KeyHasher, Unindex>;
/// Each pass until when it holds.
type Passes = quick_cache::sync::Cache<CacheKey, Instant, quick_cache::UnitWeighter, KeyHasher>;

/// Pages are some tens of KB: the cache's tables are sized for this many
/// bytes an entry (they grow if entries are smaller).
const BYTES_PER_ENTRY: u64 = 16 * 1024;
/// The most keys held as passes at once.
const MAX_PASSES: usize = 100_000;

/// How many shards a quick_cache of `capacity` bytes gets so that an item
/// of `largest` bytes fits in one: quick_cache splits its capacity evenly
/// over its shards and refuses, without a word, an item heavier than
/// nearly a shard's share. Up to 8 shards (reads take a shard's read lock:
/// more shards, less sharing of one lock's cache line), at least 1.
pub fn shards_for(capacity: u64, largest: u64) -> usize {
    let mut shards = 8;
    // A tenth of each shard left over: its hot and cold queues' split.
    while shards > 1 && capacity / shards * 9 / 10 < largest {
        shards /= 2;
    }
    shards as usize
}

/// An entry weighs at most its body three times (identity, gzip, brotli,
/// each compressed form smaller than the body) and this much more.
const ENTRY_OVERHEAD: u64 = 64 * 1024;

/// One site's page cache.
pub struct PageCache {
    entries: Entries,
    tags: Arc<TagIndex>,
    /// Keys whose canonical render PHP marked private (or otherwise not to
    /// be stored), for [`PASS_TTL`].
    passes: Passes,
    /// Recent purges (see `insert_unless_purged`).
    purges: PurgeLog,
    stats: Stats,
    /// Tells this store's entries from others' in the hot-entry memos.
    id: u64,
    /// Bumped after every change to the entries ([`crate::hot`]).
    epoch: Epoch,
}

/// Alone on its cache lines: read by every hit, written by changes only.
#[repr(align(128))]
#[derive(Default)]
struct Epoch(AtomicU64);

impl PageCache {
    /// A cache of `max_memory` bytes that stores pages of up to
    /// `max_entry_size` bytes (`[site.cache]`).
    pub fn new(max_memory: u64, max_entry_size: u64) -> PageCache {
        let tags = Arc::new(TagIndex::default());
        let largest = max_entry_size
            .saturating_mul(3)
            .saturating_add(ENTRY_OVERHEAD);
        let options = quick_cache::OptionsBuilder::new()
            .shards(shards_for(max_memory, largest))
            .weight_capacity(max_memory)
            .estimated_items_capacity(
                usize::try_from(max_memory / BYTES_PER_ENTRY)
                    .unwrap_or(usize::MAX)
                    .max(32),
            )
            .build();
        let entries = match options {
            Ok(options) => Entries::with_options(
                options,
                EntryWeight,
                KeyHasher::default(),
                Unindex(tags.clone()),
            ),
            // The builder refuses only missing capacities, and both are set.
            Err(e) => unreachable!("page cache options: {e}"),
        };
        let passes = Passes::with(
            MAX_PASSES,
            MAX_PASSES as u64,
            quick_cache::UnitWeighter,
            KeyHasher::default(),
            Default::default(),
        );
        static STORES: AtomicU64 = AtomicU64::new(0);
        PageCache {
            entries,
            tags,
            passes,
            purges: PurgeLog::default(),
            stats: Stats::default(),
            id: STORES.fetch_add(1, Ordering::Relaxed),
            epoch: Epoch::default(),
        }
    }

    /// What the store has for a key: pass a [`KeyView`](crate::KeyView) (a hit allocates
    /// nothing) or a [`CacheKey`].
    /// `now` is when the request came (one clock read a request).
    pub fn lookup<Q>(&self, key: &Q, now: Instant) -> Lookup
    where
        Q: Hash + equivalent::Equivalent<CacheKey> + ?Sized,
    {
        let Some(entry) = self.entries.get(key) else {
            return Lookup::Miss;
        };
        if entry.is_fresh(now) {
            Lookup::Fresh(entry)
        } else if now < entry.stale_until {
            Lookup::Stale(entry)
        } else {
            // Past its stale window: out now, not when evicted.
            self.remove_entry(key, entry.id);
            Lookup::Miss
        }
    }

    /// A fresh entry for `view`, lent to `hit`: from this thread's memo of
    /// hot entries when it holds one ([`crate::hot`]), else from the store
    /// (and then kept in the memo). Otherwise what the store has (stale or
    /// nothing), `hit` not called.
    pub fn lend_fresh<R>(
        &self,
        view: &KeyView<'_>,
        now: Instant,
        hit: impl FnOnce(&Entry) -> R,
    ) -> Result<R, Lookup> {
        // Read before the store is asked: a change after this makes what
        // the memo keeps below of no use.
        let epoch = self.epoch.0.load(Ordering::Acquire);
        let hash = hot::hash(view);
        let hit = match hot::lend(self.id, epoch, hash, view, now, hit) {
            Lent::Hit { answer, touch } => {
                if touch {
                    // The store's eviction counts its hits.
                    drop(self.entries.get(view));
                }
                return Ok(answer);
            }
            Lent::Miss(hit) => hit,
        };
        match self.lookup(view, now) {
            Lookup::Fresh(entry) => {
                let answer = hit(&entry);
                hot::keep(self.id, epoch, hash, view.to_key(), entry);
                Ok(answer)
            }
            other => Err(other),
        }
    }

    /// After every change to the entries: no memo of hot entries uses what
    /// it kept before.
    fn changed(&self) {
        self.epoch.0.fetch_add(1, Ordering::AcqRel);
    }

    /// Removes the entry under `key` if it is still the one `id` names.
    fn remove_entry<Q>(&self, key: &Q, id: u64)
    where
        Q: Hash + equivalent::Equivalent<CacheKey> + ?Sized,
    {
        self.unindex(self.entries.remove_if(key, |e| e.id == id));
        self.changed();
    }

    /// Takes an entry removed from the store out of the tag index (an
    /// evicted or replaced one leaves it in [`Unindex`]); whether there
    /// was one.
    fn unindex(&self, removed: Option<(CacheKey, Arc<Entry>)>) -> bool {
        let Some((key, entry)) = removed else {
            return false;
        };
        self.tags.remove(&key, entry.id, entry.tags.as_ref());
        true
    }

    pub fn insert(&self, key: CacheKey, entry: Arc<Entry>) {
        self.stats.inserts.fetch_add(1, Ordering::Relaxed);
        self.tags.add(&key, entry.id, entry.tags.as_ref());
        self.entries.insert(key, entry);
        self.changed();
    }

    /// Purges so far: a fill notes it before asking PHP and stores with
    /// [`PageCache::insert_unless_purged`].
    pub fn generation(&self) -> u64 {
        self.purges.generation()
    }

    /// Stores an entry rendered from a request sent when [`Self::generation`]
    /// was `since`, unless a purge that reaches this page (its URL, a
    /// prefix, one of its tags, everything) came in between: PHP may have
    /// read the database before the change that purge was for, and nothing
    /// would remove the old page it rendered. `false` when it was not kept.
    pub fn insert_unless_purged(&self, key: CacheKey, entry: Arc<Entry>, since: u64) -> bool {
        let (overtaken, checked) = self
            .purges
            .overtook(since, &key.target, entry.tags.as_ref());
        if overtaken {
            return false;
        }
        let id = entry.id;
        let tags = entry.tags.clone();
        self.insert(key.clone(), entry);
        // A purge recorded after the check above may have looked for the
        // entry before it was in: look again, now that it is.
        if self.purges.overtook(checked, &key.target, tags.as_ref()).0 {
            self.remove_entry(&key, id);
            return false;
        }
        true
    }

    /// Removes the entries (and passes) `pred` names; every purge goes
    /// through here, recorded in the purge log first.
    fn purge_keys(&self, pred: impl Fn(&CacheKey) -> bool, doomed: Vec<CacheKey>) -> usize {
        let passes: Vec<CacheKey> = self
            .passes
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(k, _)| k)
            .collect();
        for k in passes {
            self.passes.remove(&k);
        }
        let mut purged = 0;
        for k in &doomed {
            if self.unindex(self.entries.remove(k)) {
                purged += 1;
            }
        }
        self.changed();
        self.stats
            .purged
            .fetch_add(purged as u64, Ordering::Relaxed);
        purged
    }

    fn purge_where(&self, reach: Reach, pred: impl Fn(&CacheKey) -> bool) -> usize {
        self.purges.record(reach);
        let doomed = self
            .entries
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(k, _)| k)
            .collect();
        self.purge_keys(pred, doomed)
    }

    /// Purges the entries that carry one of `tags`, and those PHP stored
    /// untagged (a page nobody labelled cannot be known not to show what
    /// changed), whatever their host: every host of a site shows the same
    /// posts.
    pub fn purge_tags(&self, tags: &[&str]) -> usize {
        self.purges
            .record(Reach::Tags(tags.iter().map(|t| Arc::from(*t)).collect()));
        // Keys are collected under the index lock and removed after it is
        // released: removal unindexes them, which locks it.
        let doomed = self.tags.keys_for(tags);
        self.purge_keys(|_| true, doomed)
    }

    /// Distinct tags and (tag, entry) references held by the tag index.
    pub fn tag_usage(&self) -> (usize, usize) {
        self.tags.usage()
    }

    /// Sends this key's requests to PHP as their clients sent them, for
    /// [`PASS_TTL`] or until a purge reaches it.
    pub fn mark_pass(&self, key: CacheKey) {
        self.passes.insert(key, Instant::now() + PASS_TTL);
    }

    pub fn is_pass(&self, key: &CacheKey) -> bool {
        match self.passes.get(key) {
            Some(until) if Instant::now() < until => true,
            Some(until) => {
                self.passes.remove_if(key, |u| *u == until);
                false
            }
            None => false,
        }
    }

    /// Removes one entry (not counted as a purge).
    pub fn remove(&self, key: &CacheKey) {
        self.unindex(self.entries.remove(key));
        self.changed();
    }

    /// Purges one path and query (`target` as in [`CacheKey::target`]) on
    /// every host, scheme and port of the site: its aliases show the same
    /// page.
    pub fn purge_url(&self, target: &str) -> usize {
        self.purge_where(Reach::Url(target.to_string()), |k| k.target == target)
    }

    /// Purges every URL of the site whose path and query start with `prefix`.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        self.purge_where(Reach::Prefix(prefix.to_string()), |k| {
            k.target.starts_with(prefix)
        })
    }

    pub fn purge_all(&self) -> usize {
        self.purge_where(Reach::All, |_| true)
    }

    /// The purge `reach` names: what another edge was asked to purge, as
    /// the shared tier passes it on.
    pub fn purge(&self, reach: &Reach) -> usize {
        match reach {
            Reach::All => self.purge_all(),
            Reach::Url(target) => self.purge_url(target),
            Reach::Prefix(prefix) => self.purge_prefix(prefix),
            Reach::Tags(tags) => {
                let tags: Vec<&str> = tags.iter().map(|t| &**t).collect();
                self.purge_tags(&tags)
            }
        }
    }

    /// Entry count and bytes held.
    pub fn usage(&self) -> (u64, u64) {
        (self.entries.len() as u64, self.entries.weight())
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyView;
    use crate::tags::Tags;
    use http::HeaderValue;
    use std::io::Read;

    fn html(body: &str) -> Entry {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=UTF-8"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        Entry::build(
            StatusCode::OK,
            h,
            Bytes::from(body.to_string()),
            Duration::from_secs(60),
            Duration::from_secs(60),
            None,
        )
    }

    fn key(host: &str, target: &str) -> CacheKey {
        CacheKey::new("s".into(), false, host, target, None)
    }

    #[test]
    fn compresses_once_and_bodies_decode_to_the_original() {
        let page = "<p>hello world</p>".repeat(200);
        let e = html(&page);
        assert!(e.headers.get(header::CONTENT_LENGTH).is_none());
        assert!(e.headers.get(header::CONNECTION).is_none());
        assert_eq!(e.headers.get(header::VARY).unwrap(), "Accept-Encoding");
        let etag = e.headers.get(header::ETAG).unwrap().to_str().unwrap();
        assert!(etag.starts_with("W/\""), "{etag}");
        assert_ne!(html("other").headers.get(header::ETAG).unwrap(), etag);
        let gz = e.gzip.as_ref().unwrap();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, page);
        let br = e.br.as_ref().unwrap();
        let mut out = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, page);
        assert!(br.len() < page.len() / 10);
    }

    #[test]
    fn small_or_binary_bodies_are_not_compressed() {
        assert!(html("tiny").gzip.is_none());
        // Under 1 KiB, as the README says; from 1 KiB on, both forms.
        let under = html(&"a".repeat(1023));
        assert!(under.gzip.is_none() && under.br.is_none());
        assert!(under.headers.get(header::VARY).is_none());
        let at = html(&"a".repeat(1024));
        assert!(at.gzip.is_some() && at.br.is_some());
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        let e = Entry::build(
            StatusCode::OK,
            h,
            Bytes::from(vec![0u8; 4096]),
            Duration::ZERO,
            Duration::ZERO,
            None,
        );
        assert!(e.gzip.is_none() && e.br.is_none());
    }

    #[test]
    fn purge_by_url_prefix_and_all() {
        let c = PageCache::new(1 << 20, 1 << 18);
        for t in ["/", "/a/", "/a/b/", "/b/"] {
            c.insert(key("wp.test", t), Arc::new(html("x")));
        }
        // An alias of the site (another host name, a port) shows the same page.
        c.insert(key("alias.test:8443", "/a/"), Arc::new(html("x")));
        assert!(matches!(
            c.lookup(&key("wp.test", "/a/"), Instant::now()),
            Lookup::Fresh(_)
        ));
        assert_eq!(c.purge_url("/a/"), 2);
        assert!(matches!(
            c.lookup(&key("wp.test", "/a/"), Instant::now()),
            Lookup::Miss
        ));
        assert!(matches!(
            c.lookup(&key("alias.test:8443", "/a/"), Instant::now()),
            Lookup::Miss
        ));
        assert_eq!(c.purge_prefix("/a"), 1);
        assert_eq!(c.purge_all(), 2);
        assert_eq!(c.usage().0, 0);
    }

    #[test]
    fn a_fill_that_began_before_a_purge_is_not_kept() {
        let c = PageCache::new(1 << 20, 1 << 18);
        let since = c.generation();
        // The edit's purge arrives while PHP renders the old page.
        assert_eq!(c.purge_url("/a/"), 0);
        assert!(!c.insert_unless_purged(key("a", "/a/"), Arc::new(html("old")), since));
        assert!(matches!(
            c.lookup(&key("a", "/a/"), Instant::now()),
            Lookup::Miss
        ));
        // A fill that began after it is kept.
        let since = c.generation();
        assert!(c.insert_unless_purged(key("a", "/a/"), Arc::new(html("new")), since));
        assert!(matches!(
            c.lookup(&key("a", "/a/"), Instant::now()),
            Lookup::Fresh(_)
        ));
        // Tag purges count too (an untagged page goes with every one)...
        let since = c.generation();
        c.purge_tags(&["p:1"]);
        assert!(!c.insert_unless_purged(key("a", "/b/"), Arc::new(html("old")), since));
        // ...but a purge that does not reach the page leaves its fill alone.
        let since = c.generation();
        c.purge_url("/elsewhere/");
        c.purge_tags(&["p:2"]);
        assert!(c.insert_unless_purged(key("a", "/c/"), Arc::new(tagged("p:1")), since));
    }

    fn tagged(tags: &str) -> Entry {
        let mut h = HeaderMap::new();
        h.insert(
            crate::tags::TAGS_HEADER,
            HeaderValue::from_str(tags).unwrap(),
        );
        let tags = Tags::take(&mut h);
        Entry::build(
            StatusCode::OK,
            h,
            Bytes::from_static(b"x"),
            Duration::from_secs(60),
            Duration::from_secs(60),
            tags,
        )
    }

    #[test]
    fn purge_by_tag_removes_exactly_the_tagged_and_the_untagged() {
        let c = PageCache::new(1 << 20, 1 << 18);
        c.insert(key("wp.test", "/"), Arc::new(tagged("q:post p:1 p:2")));
        c.insert(key("wp.test", "/page/2/"), Arc::new(tagged("q:post p:3")));
        c.insert(key("wp.test", "/one/"), Arc::new(tagged("p:1 p:2")));
        c.insert(key("wp.test", "/three/"), Arc::new(tagged("p:3")));
        c.insert(key("wp.test:8443", "/three/"), Arc::new(tagged("p:3")));
        c.insert(key("alias.test", "/one/"), Arc::new(tagged("p:1")));
        assert_eq!(c.tag_usage(), (4, 10));
        // Every host and port of the site, and nothing twice.
        assert_eq!(c.purge_tags(&["p:1"]), 3);
        assert!(matches!(
            c.lookup(&key("wp.test", "/"), Instant::now()),
            Lookup::Miss
        ));
        assert!(matches!(
            c.lookup(&key("alias.test", "/one/"), Instant::now()),
            Lookup::Miss
        ));
        assert!(matches!(
            c.lookup(&key("wp.test", "/page/2/"), Instant::now()),
            Lookup::Fresh(_)
        ));
        assert_eq!(c.purge_tags(&["p:3", "q:post"]), 3);
        // The index follows the entries out.
        assert_eq!(c.tag_usage(), (0, 0));
        // Untagged entries go with any tag purge.
        c.insert(key("wp.test", "/untagged/"), Arc::new(html("x")));
        c.insert(key("wp.test", "/tagged/"), Arc::new(tagged("p:5")));
        assert_eq!(c.purge_tags(&["p:999"]), 1);
        assert_eq!(c.usage().0, 1);
    }

    #[test]
    fn a_replaced_entry_keeps_the_tags_of_the_new_one() {
        let c = PageCache::new(1 << 20, 1 << 18);
        c.insert(key("a", "/"), Arc::new(tagged("p:1 p:2")));
        c.insert(key("a", "/"), Arc::new(tagged("p:2 p:3")));
        assert_eq!(c.tag_usage(), (2, 2));
        assert_eq!(c.purge_tags(&["p:1"]), 0);
        assert_eq!(c.purge_tags(&["p:3"]), 1);
        assert_eq!(c.tag_usage(), (0, 0));
    }

    #[test]
    fn evicted_entries_leave_the_tag_index() {
        let c = PageCache::new(64 * 1024, 8 * 1024);
        for i in 0..200 {
            let mut e = tagged(&format!("p:{i} q:post"));
            e.identity = Bytes::from("y".repeat(4000));
            c.insert(key("a", &format!("/{i}")), Arc::new(e));
        }
        let (entries, _) = c.usage();
        let (_, refs) = c.tag_usage();
        assert!(entries < 200);
        assert_eq!(
            refs as u64,
            entries * 2,
            "every reference names a live entry"
        );
    }

    #[test]
    fn a_hot_entry_is_lent_from_the_memo_until_the_store_changes() {
        let site: Arc<str> = "s".into();
        let view = KeyView::new(&site, false, "a", "/", None);
        let body = |c: &PageCache| {
            c.lend_fresh(&view, Instant::now(), |e| e.identity.clone())
                .map_err(|l| matches!(l, Lookup::Miss))
        };
        let c = PageCache::new(1 << 20, 1 << 18);
        c.insert(key("a", "/"), Arc::new(html("one")));
        assert_eq!(body(&c), Ok(Bytes::from("one")));
        // Taken out of the store behind the memo's back (no epoch bump):
        // the memo answers, so it is what a hit reads.
        c.entries.remove(&key("a", "/"));
        assert_eq!(body(&c), Ok(Bytes::from("one")));
        // Any change to the store: the memo's slot is of no use again.
        c.changed();
        assert_eq!(body(&c), Err(true));
        // A newer entry under the key replaces the memo's.
        c.insert(key("a", "/"), Arc::new(html("two")));
        assert_eq!(body(&c), Ok(Bytes::from("two")));
        c.insert(key("a", "/"), Arc::new(html("three")));
        assert_eq!(body(&c), Ok(Bytes::from("three")));
        // A purge is seen at once, by this thread and any other.
        assert_eq!(c.purge_url("/"), 1);
        assert_eq!(body(&c), Err(true));
        c.insert(key("a", "/"), Arc::new(html("four")));
        assert_eq!(body(&c), Ok(Bytes::from("four")));
        std::thread::scope(|t| {
            t.spawn(|| assert_eq!(body(&c), Ok(Bytes::from("four"))));
        });
        assert_eq!(c.purge_all(), 1);
        std::thread::scope(|t| {
            t.spawn(|| assert_eq!(body(&c), Err(true)));
        });
        assert_eq!(body(&c), Err(true));
        // Another store's entry under the same key is its own.
        let other = PageCache::new(1 << 20, 1 << 18);
        other.insert(key("a", "/"), Arc::new(html("other")));
        c.insert(key("a", "/"), Arc::new(html("five")));
        assert_eq!(body(&other), Ok(Bytes::from("other")));
        assert_eq!(body(&c), Ok(Bytes::from("five")));
        assert_eq!(body(&other), Ok(Bytes::from("other")));
    }

    #[test]
    fn the_memo_lends_only_fresh_entries() {
        let site: Arc<str> = "s".into();
        let view = KeyView::new(&site, false, "a", "/", None);
        let c = PageCache::new(1 << 20, 1 << 18);
        let now = Instant::now();
        let mut e = html("x");
        e.fresh_until = now + Duration::from_secs(10);
        e.stale_until = now + Duration::from_secs(60);
        c.insert(key("a", "/"), Arc::new(e));
        assert!(c.lend_fresh(&view, now, |_| ()).is_ok());
        // Past its freshness: stale, from the store, though the memo holds it.
        let later = now + Duration::from_secs(11);
        assert!(matches!(
            c.lend_fresh(&view, later, |_| ()),
            Err(Lookup::Stale(_))
        ));
    }

    #[test]
    fn stale_window() {
        let c = PageCache::new(1 << 20, 1 << 18);
        let mut e = html("x");
        let now = Instant::now();
        e.fresh_until = now;
        e.stale_until = now + Duration::from_secs(60);
        c.insert(key("a", "/"), Arc::new(e));
        assert!(matches!(
            c.lookup(&key("a", "/"), Instant::now()),
            Lookup::Stale(_)
        ));
    }

    #[test]
    fn an_entry_past_its_stale_window_is_gone_at_lookup_and_from_the_index() {
        let c = PageCache::new(1 << 20, 1 << 18);
        let mut e = tagged("p:1");
        let now = Instant::now();
        e.fresh_until = now;
        e.stale_until = now;
        c.insert(key("a", "/"), Arc::new(e));
        assert_eq!((c.usage().0, c.tag_usage()), (1, (1, 1)));
        assert!(matches!(
            c.lookup(&key("a", "/"), Instant::now()),
            Lookup::Miss
        ));
        assert_eq!((c.usage().0, c.tag_usage()), (0, (0, 0)));
    }

    #[test]
    fn a_view_of_the_request_finds_the_entry_its_key_stored() {
        let c = PageCache::new(1 << 20, 1 << 18);
        c.insert(key("wp.test", "/a/"), Arc::new(html("x")));
        let site: Arc<str> = "s".into();
        let view = KeyView::new(&site, false, "WP.test:80", "/a/", Some("utm_source=x"));
        assert!(matches!(c.lookup(&view, Instant::now()), Lookup::Fresh(_)));
        let other = KeyView::new(&site, false, "wp.test", "/a/", Some("p=1"));
        assert!(matches!(c.lookup(&other, Instant::now()), Lookup::Miss));
    }

    #[test]
    fn a_page_as_large_as_the_entry_limit_is_stored() {
        // 4 MiB of memory, entries up to 1 MiB: a 300 KB page that does
        // not compress goes in whole (three forms would be 900 KB).
        let c = PageCache::new(4 << 20, 1 << 20);
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let body: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let e = Entry::build(
            StatusCode::OK,
            h,
            Bytes::from(body),
            Duration::from_secs(60),
            Duration::ZERO,
            None,
        );
        c.insert(key("a", "/big"), Arc::new(e));
        assert!(matches!(
            c.lookup(&key("a", "/big"), Instant::now()),
            Lookup::Fresh(_)
        ));
        assert_eq!(shards_for(256 << 20, 3 * (8 << 20) + ENTRY_OVERHEAD), 8);
        assert_eq!(shards_for(4 << 20, 3 << 20), 1);
        assert_eq!(shards_for(0, 1), 1);
    }

    #[test]
    fn memory_bound_evicts() {
        let c = PageCache::new(64 * 1024, 8 * 1024);
        for i in 0..100 {
            c.insert(
                key("a", &format!("/{i}")),
                Arc::new(html(&"y".repeat(4000))),
            );
        }
        let (_, bytes) = c.usage();
        assert!(bytes <= 64 * 1024, "{bytes}");
    }
}
