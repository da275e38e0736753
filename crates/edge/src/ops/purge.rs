//! `POST /purge` on the ops listener: what to remove from the page cache,
//! read from the query ([`Order::parse`]), applied to this edge's sites
//! ([`Order::apply`]), then passed on to the other edges: through the
//! shared cache when there is one, and to `purge_fanout`'s addresses.
//!
//! `url=URL` and `prefix=URL` (absolute: the site its host routes to, that
//! path on every host, scheme and port of the site, whose aliases show the
//! same pages), `tag=TAG` (several allowed; in the site `host=HOST` routes
//! to when given, else every site), `site=NAME`, `all=1`; `reason=TEXT`
//! goes into the log line. The answer says how many entries went,
//! `{"purged":N}`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use murakumo_cache::Reach;
use percent_encoding::percent_decode_str;

use super::purge_fanout;
use crate::response::{plain, Body};
use crate::site::{Site, Sites};
use crate::state::Edge;

/// One thing to purge.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Url { url: String, prefix: bool },
    Site(String),
    All,
}

/// A purge request, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Order {
    targets: Vec<Target>,
    tags: Vec<String>,
    /// Scope of `tags`: the site this host routes to.
    host: Option<String>,
    reason: Option<String>,
}

impl Order {
    fn parse(query: &str) -> Result<Order, String> {
        let mut order = Order::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
            match name {
                "url" | "prefix" => order.targets.push(Target::Url {
                    url: value,
                    prefix: name == "prefix",
                }),
                "tag" if !value.is_empty() => order.tags.push(value),
                "host" if !value.is_empty() => order.host = Some(value),
                "site" => order.targets.push(Target::Site(value)),
                "all" if value == "1" || value == "true" => order.targets.push(Target::All),
                "reason" => order.reason = Some(value),
                _ => {}
            }
        }
        if order.targets.is_empty() && order.tags.is_empty() {
            return Err("say what to purge: ?url=ABSOLUTE_URL, ?prefix=ABSOLUTE_URL_PREFIX, ?tag=TAG[&host=HOST], ?site=NAME or ?all=1".into());
        }
        Ok(order)
    }

    /// Purges what the order names from this edge's memory; the count of
    /// entries removed and each site's purge (for the shared cache), or the
    /// status and reason it cannot be done.
    fn apply(&self, edge: &Edge, sites: &Sites) -> Result<Applied, (StatusCode, String)> {
        let mut applied = Applied::default();
        for target in &self.targets {
            match target {
                Target::Url { url, prefix } => purge_url(edge, sites, url, *prefix, &mut applied)?,
                Target::Site(name) => {
                    let site = sites
                        .list
                        .iter()
                        .find(|s| *s.name == **name)
                        .ok_or_else(|| {
                            (StatusCode::NOT_FOUND, format!("no site named {name:?}"))
                        })?;
                    applied.purge(edge, site, "site", Reach::All);
                }
                Target::All => {
                    for site in &sites.list {
                        applied.purge(edge, site, "all", Reach::All);
                    }
                }
            }
        }
        if !self.tags.is_empty() {
            let scoped: Vec<&Arc<Site>> = match &self.host {
                Some(host) => vec![sites
                    .router
                    .route(host)
                    .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no site serves {host}")))?],
                None => sites.list.iter().collect(),
            };
            let tags: Box<[Arc<str>]> = self.tags.iter().map(|t| Arc::from(t.as_str())).collect();
            for site in scoped {
                applied.purge(edge, site, "tag", Reach::Tags(tags.clone()));
            }
        }
        Ok(applied)
    }
}

/// What an order removed here, and what the shared cache is to be told.
#[derive(Default)]
struct Applied {
    purged: usize,
    shared: Vec<(Arc<str>, Reach)>,
}

impl Applied {
    /// Purges `reach` from a site's memory and counts what it removed.
    fn purge(&mut self, edge: &Edge, site: &Site, kind: &'static str, reach: Reach) {
        let Some(cache) = site.cache.as_deref() else {
            return;
        };
        let n = cache.store.purge(&reach);
        edge.metrics.purged(&site.name, kind, n);
        self.purged += n;
        if cache.shared.is_some() {
            self.shared.push((site.name.clone(), reach));
        }
    }
}

fn purge_url(
    edge: &Edge,
    sites: &Sites,
    url: &str,
    prefix: bool,
    applied: &mut Applied,
) -> Result<(), (StatusCode, String)> {
    let name = if prefix { "prefix" } else { "url" };
    let Some((https, host, path, query)) = split_url(url) else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("{name}={url:?} is not an absolute http(s) URL"),
        ));
    };
    let Some(site) = sites.router.route(host) else {
        return Err((StatusCode::NOT_FOUND, format!("no site serves {host}")));
    };
    let Ok(path) = murakumo_path::normalise(path) else {
        return Err((StatusCode::BAD_REQUEST, format!("{name}: bad path")));
    };
    let key = murakumo_cache::CacheKey::new(site.name.clone(), https, host, &path, query);
    let reach = if prefix {
        Reach::Prefix(key.target)
    } else {
        Reach::Url(key.target)
    };
    applied.purge(edge, site, name, reach);
    Ok(())
}

/// `http://host[:port]/path?query` → (https, host, path, query).
fn split_url(url: &str) -> Option<(bool, &str, &str, Option<&str>)> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let (host, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let target = target.split('#').next().unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    (!host.is_empty()).then_some((https, host, path, query))
}

/// Handles an authorised `POST /purge`.
pub async fn handle(edge: &Edge, req: &Request<Incoming>) -> Response<Body> {
    edge.metrics.purges.fetch_add(1, Ordering::Relaxed);
    let query = req.uri().query().unwrap_or("");
    let order = match Order::parse(query) {
        Ok(o) => o,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e),
    };
    let Applied { purged, shared } = match order.apply(edge, &edge.sites()) {
        Ok(a) => a,
        Err((status, e)) => return plain(status, &e),
    };
    // Every edge on the shared cache hears of it from there; kept and sent
    // later when Redis does not answer.
    let mut shared_note = String::new();
    if let Some(cache) = edge.shared().filter(|_| !shared.is_empty()) {
        let mut sent = true;
        for (site, reach) in &shared {
            sent &= cache.purge(site, reach).await;
        }
        shared_note = if sent {
            ",\"shared_cache\":\"sent\"".into()
        } else {
            tracing::warn!("the shared cache (Redis) did not answer: the purge is kept and sent when it is back; other edges keep serving the old page until then");
            ",\"shared_cache\":\"kept until Redis is back\"".into()
        };
    }
    let passed_on = req.headers().contains_key(purge_fanout::FANOUT_HEADER);
    tracing::info!(
        reason = order.reason.as_deref().unwrap_or("-"),
        targets = ?order.targets,
        tags = %order.tags.join(" "),
        host = order.host.as_deref().unwrap_or("-"),
        purged,
        passed_on,
        "purge"
    );
    let peers = &edge.config().server.purge_fanout;
    let (status, body) = if peers.is_empty() || passed_on {
        (
            StatusCode::OK,
            format!("{{\"purged\":{purged}{shared_note}}}\n"),
        )
    } else {
        let token = edge.purge_token();
        let report = purge_fanout::fan_out(peers, query, token.as_deref()).await;
        edge.metrics
            .purge_fanout_failures
            .fetch_add(report.failed.len() as u64, Ordering::Relaxed);
        let failed = serde_json::to_string(&report.failed).unwrap_or_else(|_| "[]".into());
        if !report.failed.is_empty() {
            tracing::warn!(failed = %failed, "purge did not reach every edge");
        }
        // Any edge left unpurged keeps serving the old page: say so.
        let status = if report.failed.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_GATEWAY
        };
        (
            status,
            format!(
                "{{\"purged\":{purged}{shared_note},\"edges_reached\":{},\"edges_failed\":{failed}}}\n",
                report.reached
            ),
        )
    };
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://wp.test:8080/a/?p=1"),
            Some((false, "wp.test:8080", "/a/", Some("p=1")))
        );
        assert_eq!(
            split_url("https://wp.test"),
            Some((true, "wp.test", "/", None))
        );
        assert_eq!(split_url("ftp://x/"), None);
        assert_eq!(split_url("http:///x"), None);
    }

    #[test]
    fn orders() {
        let o = Order::parse("tag=p%3A12&tag=q:post&host=wp.test&reason=post%2012%20updated&url=http%3A%2F%2Fwp.test%2F").unwrap();
        assert_eq!(o.tags, ["p:12", "q:post"]);
        assert_eq!(o.host.as_deref(), Some("wp.test"));
        assert_eq!(o.reason.as_deref(), Some("post 12 updated"));
        assert_eq!(
            o.targets,
            [Target::Url {
                url: "http://wp.test/".into(),
                prefix: false
            }]
        );
        assert_eq!(Order::parse("all=1").unwrap().targets, [Target::All]);
        assert!(Order::parse("").is_err());
        assert!(Order::parse("tag=&reason=x").is_err());
        assert!(Order::parse("all=0").is_err());
    }
}
