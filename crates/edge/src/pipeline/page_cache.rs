//! The page cache in the request path: fresh hits, stale hits with one
//! background refresh, and misses filled by one request per key while the
//! others wait (a stampede of misses costs one PHP request).
//!
//! Every fill, the first and each refresh, sends PHP the key's canonical
//! request ([`crate::php::cgi::fill_params`]), whichever variant of the URL the
//! client that triggered it sent; a redirect back to the key's own URL is
//! never stored (it would loop for every visitor).
//!
//! With a shared cache (`[server.shared_cache]`), a miss asks it before
//! PHP: a page another edge stored answers (and is kept in memory); else
//! one edge of the fleet renders the key and shares it, the others waiting
//! for its page (`murakumo_shared_cache`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode, Uri};
use murakumo_cache::coalesce::Lead;
use murakumo_cache::encoding;
use murakumo_cache::head::{age_value, form_head, set_age};
use murakumo_cache::{CacheKey, Decoration, Entry, KeyView, Lookup, Tags, Turn};
use murakumo_fastcgi::params::Params;
use murakumo_shared_cache::{Found, Lease, Refresh};

use super::context::{self, Context, Outcome};
use super::uncached::{failed, pass};
use crate::php::target::PhpTarget;
use crate::php::{self, PhpPool, SpooledBody, Upstream};
use crate::response::headers::X_CACHE;
use crate::response::{etag_matches, Body, Early, Step};
use crate::site::{Site, SiteCache};

/// What of a request decides how a stored entry is answered, and when
/// (an entry's `Age`).
struct Wants {
    accept: encoding::AcceptSet,
    if_none_match: Option<HeaderValue>,
    now: Instant,
}

/// Read in one pass over the request's headers (the first of each name
/// counts), not a lookup by name for each: every hit comes through here.
fn wants(headers: &HeaderMap, now: Instant) -> Wants {
    let (mut accept, mut if_none_match) = (None, None);
    for (name, value) in headers {
        if name == header::ACCEPT_ENCODING {
            accept = accept.or(Some(value));
        } else if name == header::IF_NONE_MATCH {
            if_none_match = if_none_match.or(Some(value));
        }
    }
    Wants {
        now,
        accept: encoding::accepted(accept.and_then(|v| v.to_str().ok())),
        if_none_match: if_none_match.cloned(),
    }
}

/// What the store had for a request that a fresh entry did not answer.
enum Pending {
    Stale(Arc<Entry>),
    Miss,
    /// A fresh 404, kept for after the disk is asked ([`Disk`]).
    NotFound,
}

/// Whether the disk has been asked for a file at the request's path when
/// the cache is consulted. A stored 404 answers only once it has: a file
/// put at its URL since (an `ads.txt`, a verification page, an upload) is
/// served at once, not hidden for `not_found_ttl`.
#[derive(Clone, Copy, PartialEq)]
pub enum Disk {
    Asked,
    NotAsked,
}

/// A request the page cache may answer, looked up once: its site, its key
/// and what the store had for it when the pipeline asked.
pub struct Cacheable {
    site: Arc<Site>,
    cache: Arc<SiteCache>,
    key: CacheKey,
    pending: Pending,
}

/// The page cache's step, taken once, before the filesystem is touched:
/// the bypass rules, the key, the lookup. A fresh entry answers here
/// (needing neither the disk nor PHP; a 404 only once `disk` has been
/// asked, else [`Cacheable::waits_for_disk`]); `None` when the request
/// bypasses the cache. `path` is the normalised path.
pub fn consult(
    ctx: &mut Context<'_>,
    site: &Arc<Site>,
    path: &str,
    disk: Disk,
) -> Step<Option<Cacheable>> {
    let Some(cache) = site.cache.as_ref() else {
        return Ok(None);
    };
    ctx.outcome.decoration = cache.decoration.id;
    let req = &ctx.req;
    if cache
        .policy
        .request_bypass(&req.method, path, req.uri.query(), &req.headers)
        .is_some()
    {
        return Ok(None);
    }
    let Context {
        req,
        outcome,
        conn,
        started,
        host,
        host_name,
        ..
    } = ctx;
    // Looked up as the request spells it: a hit builds no key.
    let (name, port) = context::host_name(host, host_name).unwrap_or_default();
    let view = KeyView::of_host(
        &site.name,
        conn.https,
        Cow::Borrowed(name),
        port,
        path,
        req.uri.query(),
    );
    // The request's start is the time it is answered for: the clock is
    // read once a request.
    let started = *started;
    let pending = match cache.store.lend_fresh(&view, started, |e| {
        (disk == Disk::Asked || e.status != StatusCode::NOT_FOUND)
            .then(|| hit(e, &wants(&req.headers, started), "HIT", outcome))
    }) {
        Ok(Some(answer)) => return Err(Early(answer)),
        Ok(None) => Pending::NotFound,
        Err(Lookup::Stale(e)) => Pending::Stale(e),
        Err(_) => Pending::Miss,
    };
    Ok(Some(Cacheable {
        site: site.clone(),
        cache: cache.clone(),
        key: view.to_key(),
        pending,
    }))
}

impl Cacheable {
    /// A fresh 404 is stored for the request, to answer once the disk has
    /// no file for it: consult again with [`Disk::Asked`].
    pub fn waits_for_disk(&self) -> bool {
        matches!(self.pending, Pending::NotFound)
    }
}

/// Answers a cacheable request for a PHP page: a stale entry (refreshed in
/// the background), a pass, or a fill coalesced with others for its key.
pub async fn serve(
    cacheable: Cacheable,
    target: &PhpTarget<'_>,
    ctx: &mut Context<'_>,
) -> Response<Body> {
    let Context { req, outcome, .. } = ctx;
    let Cacheable {
        site,
        cache,
        key,
        pending,
    } = cacheable;
    // Ages are counted to now (a page filled while this request waited is
    // 0 s old: it was stored after now).
    let wants = wants(&req.headers, Instant::now());
    // Fills always GET (a HEAD miss fills the entry for later GETs too).
    let params = || target.fill_params(&key);
    // The client's own request, for keys whose pages are not shared.
    let own = || target.params(&req.method, &req.uri, &req.headers, None);

    if let Pending::Stale(e) = pending {
        if let Some(lead) = cache.coalescer.try_lead(&key) {
            spawn_refresh(&site, &cache, target, &key, lead);
        }
        return hit(&e, &wants, "STALE", outcome);
    }
    if cache.store.is_pass(&key) {
        outcome.cache = Some("BYPASS");
        return pass(target, &own(), SpooledBody::Empty, outcome).await;
    }
    match cache.coalescer.turn(&key) {
        Turn::Wait(waiter) => {
            waiter.wait().await;
            match cache.store.lookup(&key, Instant::now()) {
                Lookup::Fresh(e) | Lookup::Stale(e) => hit(&e, &wants, "HIT", outcome),
                // The leader's answer was not shared: ask PHP ourselves.
                Lookup::Miss => {
                    outcome.cache = Some("MISS");
                    pass(target, &own(), SpooledBody::Empty, outcome).await
                }
            }
        }
        Turn::Lead(lead) => {
            let since = cache.store.generation();
            let mut share = None;
            if let Some(shared) = &cache.shared {
                match shared.find(&key, site.config.php_timeout).await {
                    Found::Page(entry) => {
                        let now = Instant::now();
                        if now < entry.stale_until {
                            let entry = Arc::new((*entry).decorated(&cache.decoration));
                            cache
                                .store
                                .insert_unless_purged(key.clone(), entry.clone(), since);
                            if entry.is_fresh(now) {
                                drop(lead);
                                return hit(&entry, &wants, "HIT", outcome);
                            }
                            spawn_refresh(&site, &cache, target, &key, lead);
                            return hit(&entry, &wants, "STALE", outcome);
                        }
                    }
                    Found::Lead(lease) => share = Some(lease),
                    Found::Nothing => {}
                }
            }
            outcome.cache = Some("MISS");
            // The fill runs in a task of its own: a client that goes away
            // does not cancel it (every request waiting for the key would
            // then render it again); its answer then goes nowhere.
            let task = tokio::spawn(render(
                site.clone(),
                cache.clone(),
                target.pool.clone(),
                key.clone(),
                params(),
                share,
                lead,
            ));
            let (filled, head_time) = match task.await {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(site = %site.name, url = %key, error = %e, "a cache fill failed");
                    (Filled::Failed(php::PhpError::Empty), None)
                }
            };
            outcome.upstream = head_time;
            match filled {
                Filled::Stored(entry, _) => respond(&entry, &wants, "MISS", outcome),
                Filled::Pass(up, prefix) => up.into_response(prefix),
                Filled::Private => {
                    // The page is not shared (private, a cookie, `Vary`):
                    // this client and the next ones for a while get PHP's
                    // answer to their own request, not the canonical one's.
                    outcome.cache = Some("BYPASS");
                    pass(target, &own(), SpooledBody::Empty, outcome).await
                }
                Filled::Failed(e) => failed(&site.name, e),
            }
        }
    }
}

/// One fill of `key`: PHP renders the key's canonical request, the page is
/// stored (and shared, with `share`) or the key marked a pass; `lead` is
/// held until it is done. Also PHP's time to the response head.
async fn render(
    site: Arc<Site>,
    cache: Arc<SiteCache>,
    pool: Arc<PhpPool>,
    key: CacheKey,
    params: Params,
    share: Option<Lease>,
    lead: Lead,
) -> (Filled, Option<Duration>) {
    let since = cache.store.generation();
    let up = match php::exchange(
        &pool,
        &params,
        SpooledBody::Empty,
        site.config.php_timeout,
        site.name.clone(),
    )
    .await
    {
        Ok(up) => up,
        Err(e) => return (Filled::Failed(e), None),
    };
    let head_time = up.head_time;
    let filled = fill(&site, &cache, key.clone(), up, since).await;
    match (&filled, share) {
        (Filled::Stored(entry, true), Some(lease)) => lease.store(entry),
        (Filled::Stored(_, false), Some(lease)) => lease.overtaken(),
        _ => {}
    }
    if let Filled::Private = filled {
        cache.store.mark_pass(key);
    }
    drop(lead);
    (filled, Some(head_time))
}

enum Filled {
    /// Stored (`true`), or (a purge came while PHP rendered it) fresh but
    /// not kept (`false`).
    Stored(Arc<Entry>, bool),
    /// The canonical answer, not stored (a status that is not stored such
    /// as 302, 403 or 5xx, too large, a redirect to itself): stream it,
    /// `prefix` first. A status is no reason to pass the key: the answer may
    /// be the client's alone (an IP a security plugin refuses), and would
    /// turn off the cache for everyone.
    Pass(Box<Upstream>, Vec<Bytes>),
    /// PHP said the page is for its client only ([`Policy::is_private`]).
    /// Its answer is dropped unread: the FastCGI connection closes, so PHP
    /// stops at its next write rather than rendering for nobody.
    ///
    /// [`Policy::is_private`]: murakumo_cache::Policy::is_private
    Private,
    Failed(php::PhpError),
}

/// Reads a cacheable response whole, compresses and stores it, unless a
/// purge came after `since` (the generation before PHP was asked).
async fn fill(
    site: &Site,
    cache: &SiteCache,
    key: CacheKey,
    mut up: Upstream,
    since: u64,
) -> Filled {
    let Some(ttl) = cache.policy.storable(up.status, &up.headers) else {
        if cache.policy.is_private(up.status, &up.headers) {
            return Filled::Private;
        }
        return Filled::Pass(Box::new(up), Vec::new());
    };
    if up.status.is_redirection() && !redirects_elsewhere(&key, &up.headers) {
        tracing::warn!(site = %site.name, url = %key, location = ?up.headers.get(header::LOCATION), "a redirect to its own URL is not stored");
        return Filled::Pass(Box::new(up), Vec::new());
    }
    let mut chunks = Vec::new();
    let mut size = 0u64;
    loop {
        match up.next_chunk().await {
            Ok(Some(b)) => {
                size += b.len() as u64;
                chunks.push(b);
                if size > cache.max_entry {
                    return Filled::Pass(Box::new(up), chunks);
                }
            }
            Ok(None) => break,
            Err(e) => return Filled::Failed(e),
        }
    }
    let mut body = BytesMut::with_capacity(size as usize);
    for c in chunks {
        body.extend_from_slice(&c);
    }
    let tags = Tags::take(&mut up.headers);
    // A stale 404 would hide a post published there past `not_found_ttl`.
    let stale = if up.status == StatusCode::NOT_FOUND {
        std::time::Duration::ZERO
    } else {
        cache.stale
    };
    let (status, headers) = (up.status, std::mem::take(&mut up.headers));
    let decoration = cache.decoration.clone();
    let built = tokio::task::spawn_blocking(move || {
        Entry::build(status, headers, body.freeze(), ttl, stale, tags).decorated(&decoration)
    })
    .await;
    match built {
        Ok(entry) => {
            let entry = Arc::new(entry);
            let kept = cache
                .store
                .insert_unless_purged(key.clone(), entry.clone(), since);
            if !kept {
                tracing::info!(site = %site.name, url = %key, "a purge came while PHP rendered this page: served once, not kept");
            }
            Filled::Stored(entry, kept)
        }
        Err(e) => {
            tracing::error!(site = %site.name, error = %e, "compressing a page failed");
            Filled::Failed(php::PhpError::Empty)
        }
    }
}

/// Starts [`refresh`] of `key`'s stale page, `lead` held until it is done.
fn spawn_refresh(
    site: &Arc<Site>,
    cache: &Arc<SiteCache>,
    target: &PhpTarget<'_>,
    key: &CacheKey,
    lead: Lead,
) {
    let (site, cache, pool, key, params) = (
        site.clone(),
        cache.clone(),
        target.pool.clone(),
        key.clone(),
        target.fill_params(key),
    );
    tokio::spawn(async move { refresh(site, cache, pool, key, params, lead).await });
}

/// Refreshes a stale entry in the background. On failure (PHP down, 5xx)
/// the stale entry keeps being served until its stale window ends. With a
/// shared cache, a fresh page another edge stored is taken instead, and an
/// edge that refreshes it already is left to.
async fn refresh(
    site: Arc<Site>,
    cache: Arc<SiteCache>,
    pool: Arc<PhpPool>,
    key: CacheKey,
    params: Params,
    lead: Lead,
) {
    let mut share = None;
    if let Some(shared) = &cache.shared {
        let since = cache.store.generation();
        if let Some(entry) = shared.peek(&key).await {
            if entry.is_fresh(Instant::now()) {
                let entry = Arc::new(entry.decorated(&cache.decoration));
                cache.store.insert_unless_purged(key, entry, since);
                return;
            }
        }
        match shared.lease(&key).await {
            Refresh::Lead(lease) => share = Some(lease),
            Refresh::Held => return,
            Refresh::Unavailable => {}
        }
    }
    let (filled, _) = render(
        site.clone(),
        cache.clone(),
        pool,
        key.clone(),
        params,
        share,
        lead,
    )
    .await;
    match filled {
        Filled::Stored(..) => {}
        // The page is no longer shared (e.g. now private): drop it (the
        // key is a pass now).
        Filled::Private => cache.store.remove(&key),
        Filled::Pass(up, _) if up.status.is_server_error() => {
            tracing::warn!(site = %site.name, url = %key, status = %up.status, "refresh got a server error; serving the stale page")
        }
        // Another status now, too large, or a redirect to itself: not
        // served from here any more.
        Filled::Pass(..) => cache.store.remove(&key),
        Filled::Failed(e) => {
            tracing::warn!(site = %site.name, url = %key, error = %e, "refresh failed; serving the stale page")
        }
    }
}

/// Whether a redirect's `Location` names another URL than `key`'s own. One
/// that names the key itself (`Host: localhost` answered with
/// `Location: https://localhost/`, a tracking-parameter variant) would,
/// once stored, send every visitor round in a loop; one the edge cannot
/// read is not trusted either.
fn redirects_elsewhere(key: &CacheKey, headers: &HeaderMap) -> bool {
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    location_key(key, location).is_some_and(|to| !key.same_resource(&to))
}

/// The key a `Location` (absolute, scheme-relative or absolute-path) leads to.
fn location_key(key: &CacheKey, location: &str) -> Option<CacheKey> {
    let scheme = if key.https { "https" } else { "http" };
    let uri: Uri = match location.strip_prefix("//") {
        Some(rest) => format!("{scheme}://{rest}").parse().ok()?,
        None if location.starts_with('/') || location.contains("://") => location.parse().ok()?,
        None => return None,
    };
    let https = match uri.scheme_str() {
        None => key.https,
        Some(s) => s.eq_ignore_ascii_case("https"),
    };
    let host = match uri.authority() {
        Some(a) => a.as_str().to_string(),
        None => key.host_header(),
    };
    let path = murakumo_path::normalise(uri.path()).ok()?;
    Some(CacheKey::new(
        key.site.clone(),
        https,
        &host,
        &path,
        uri.query(),
    ))
}

fn hit(
    entry: &Entry,
    wants: &Wants,
    label: &'static str,
    outcome: &mut Outcome<'_>,
) -> Response<Body> {
    respond(entry, wants, label, outcome)
}

/// A response from a stored entry: 304 when the client's `If-None-Match`
/// matches the entry's ETag, else the body in the best encoding it accepts,
/// with the ready head of that form when the entry's heads carry the
/// decoration the site uses now (else its stored headers, decorated by
/// `finish`). `label` is its `X-Cache`.
fn respond(
    entry: &Entry,
    wants: &Wants,
    label: &'static str,
    outcome: &mut Outcome<'_>,
) -> Response<Body> {
    outcome.cache = Some(label);
    let age = age_value(
        wants
            .now
            .saturating_duration_since(entry.stored_at)
            .as_secs(),
    );
    let inm = wants.if_none_match.as_ref().and_then(|v| v.to_str().ok());
    let etag = || {
        entry
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
    };
    if let Some((inm, etag)) = inm.and_then(|inm| Some((inm, etag()?))) {
        if entry.status == StatusCode::OK && etag_matches(inm, etag) {
            let mut r = Response::new(Body::empty());
            *r.headers_mut() = entry.headers.clone();
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r.headers_mut().insert(header::AGE, age);
            return r;
        }
    }
    let enc = wants
        .accept
        .choose(entry.br.is_some(), entry.gzip.is_some());
    let mut r = Response::new(Body::full(entry.body(enc).clone()));
    *r.status_mut() = entry.status;
    // 0: no heads were built (an entry made without a decoration).
    if entry.heads.decoration != 0 && entry.heads.decoration == outcome.decoration {
        // The ready head: set in place, it never grows.
        let mut h = entry.heads.get(enc).clone();
        set_age(&mut h, age);
        if label != "HIT" {
            if let Some(v) = h.get_mut(X_CACHE) {
                *v = HeaderValue::from_static(label);
            }
        }
        *r.headers_mut() = h;
        outcome.decorated = true;
        return r;
    }
    // Heads built with another decoration (before a reload): this form's
    // head without one; `finish` decorates it.
    let mut h = form_head(
        &entry.headers,
        enc,
        entry.body(enc).len(),
        &Decoration::default(),
    );
    h.insert(header::AGE, age);
    *r.headers_mut() = h;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(location: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, HeaderValue::from_str(location).unwrap());
        h
    }

    #[test]
    fn a_redirect_to_its_own_url_is_recognised() {
        let key = CacheKey::new("blog".into(), true, "localhost", "/", None);
        for own in [
            "https://localhost/",
            "https://LOCALHOST:443/",
            "/",
            "//localhost/",
            "/?utm_source=x",
            "https://localhost/./",
            "https://localhost//",
        ] {
            assert!(!redirects_elsewhere(&key, &redirect(own)), "{own}");
        }
        for elsewhere in [
            "https://localhost:18443/",
            "http://localhost/",
            "/sample-page/",
            "https://example.com/",
            "/?p=1",
        ] {
            assert!(
                redirects_elsewhere(&key, &redirect(elsewhere)),
                "{elsewhere}"
            );
        }
        // Unreadable or missing: not trusted.
        assert!(!redirects_elsewhere(&key, &redirect("sample-page/")));
        assert!(!redirects_elsewhere(&key, &HeaderMap::new()));
    }
}
