//! The ops listener, never the public one: `/healthz` (the process serves),
//! `/readyz` (php answers, the database answers `SELECT 1`, not draining),
//! `/metrics` (Prometheus text), `POST /purge` and `POST /acme/renew?site=`
//! (bearer token, or loopback only when no token is configured).

use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use mysql_async::prelude::Queryable;
use percent_encoding::percent_decode_str;

use crate::body::Body;
use crate::handler::plain;
use crate::site::Site;
use crate::state::Edge;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn handle(
    edge: Arc<Edge>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => plain(StatusCode::OK, "ok"),
        (&Method::GET | &Method::HEAD, "/readyz") => readyz(&edge).await,
        (&Method::GET, "/metrics") => metrics(&edge),
        (&Method::POST, "/purge") => purge(&edge, remote, &req).await,
        (&Method::POST, "/acme/renew") => acme_renew(&edge, remote, &req).await,
        (_, "/healthz" | "/readyz" | "/metrics" | "/purge" | "/acme/renew") => {
            plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found; try /healthz, /readyz, /metrics, POST /purge or POST /acme/renew?site=NAME",
        ),
    };
    Ok(resp)
}

async fn check_php(site: &Site) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, site.public.pool.probe()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("php: {e}")),
        Err(_) => Err(format!("php: no connection within {CHECK_TIMEOUT:?}")),
    }
}

async fn check_db(site: &Site) -> Result<(), String> {
    let Some(pool) = &site.db else { return Ok(()) };
    let q = async {
        let mut conn = pool.get_conn().await?;
        conn.query_drop("SELECT 1").await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, q).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("db: {e}")),
        Err(_) => Err(format!(
            "db: SELECT 1 did not answer within {CHECK_TIMEOUT:?}"
        )),
    }
}

async fn readyz(edge: &Edge) -> Response<Body> {
    if edge.is_draining() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "not ready: draining");
    }
    let sites = edge.sites();
    let mut problems = Vec::new();
    for site in &sites.list {
        let (php, db) = tokio::join!(check_php(site), check_db(site));
        for r in [php, db] {
            if let Err(e) = r {
                problems.push(format!("site {}: {e}", site.name));
            }
        }
    }
    // Certificates are reported, never a reason to be unready: the CA
    // validates through this very edge, and a load balancer that drops
    // unready edges would block the order that fixes the problem.
    let mut notes = Vec::new();
    if let Some(acme) = edge.certs.acme() {
        for (site, status) in acme.statuses() {
            match (&status.last_error, status.not_after) {
                (Some(e), Some(_)) => notes.push(format!(
                    "site {site}: certificate renewal failing ({e}); the current certificate serves until {}",
                    httpdate::fmt_http_date(status.not_after.unwrap_or(SystemTime::UNIX_EPOCH))
                )),
                (Some(e), None) => notes.push(format!("site {site}: no certificate, HTTPS fails: {e}")),
                (None, None) => notes.push(format!("site {site}: no certificate yet (ACME order under way)")),
                (None, Some(_)) => {}
            }
        }
    }
    if problems.is_empty() {
        let mut text = "ready".to_string();
        for n in &notes {
            text.push_str("\nwarning: ");
            text.push_str(n);
        }
        plain(StatusCode::OK, &text)
    } else {
        problems.extend(notes);
        plain(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not ready:\n{}", problems.join("\n")),
        )
    }
}

fn metrics(edge: &Edge) -> Response<Body> {
    let mut out = String::with_capacity(4096);
    edge.metrics.render(&mut out);
    let sites = edge.sites();
    // Each family's samples together, one line a site.
    let caches: Vec<(&str, [u64; 4])> = sites
        .list
        .iter()
        .filter_map(|site| {
            let c = site.cache.as_ref()?;
            let ((entries, bytes), (tags, refs)) = (c.store.usage(), c.store.tag_usage());
            Some((&*site.name, [entries, bytes, tags as u64, refs as u64]))
        })
        .collect();
    let families = [
        ("murakumo_cache_entries", "Entries in the page cache."),
        ("murakumo_cache_bytes", "Bytes the page cache holds."),
        (
            "murakumo_cache_tags",
            "Distinct tags in the page cache's tag index.",
        ),
        (
            "murakumo_cache_tag_refs",
            "(tag, entry) references in the tag index.",
        ),
    ];
    for (i, (name, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (site, values) in &caches {
            let _ = writeln!(out, "{name}{{site=\"{site}\"}} {}", values[i]);
        }
    }
    out.push_str("# HELP murakumo_php_member_up Whether a php-fpm member accepts connections.\n# TYPE murakumo_php_member_up gauge\n");
    out.push_str("# TYPE murakumo_fastcgi_connections_opened_total counter\n# TYPE murakumo_fastcgi_connections_reused_total counter\n");
    out.push_str("# HELP murakumo_php_saturated_total Requests answered 503 because the php pool stayed busy or its queue was full.\n# TYPE murakumo_php_saturated_total counter\n# HELP murakumo_php_queued Requests waiting for a php-fpm connection.\n# TYPE murakumo_php_queued gauge\n");
    for site in &sites.list {
        let mut pools = vec![&site.public];
        if !Arc::ptr_eq(&site.public, &site.admin) {
            pools.push(&site.admin);
        }
        for p in pools {
            let labels = format!("site=\"{}\",pool=\"{}\"", site.name, p.role);
            for m in p.pool.status() {
                let _ = writeln!(
                    out,
                    "murakumo_php_member_up{{{labels},member=\"{}\"}} {}",
                    m.address,
                    u8::from(m.up)
                );
                let _ = writeln!(
                    out,
                    "murakumo_php_member_outstanding{{{labels},member=\"{}\"}} {}",
                    m.address, m.outstanding
                );
                let _ = writeln!(
                    out,
                    "murakumo_php_member_idle_connections{{{labels},member=\"{}\"}} {}",
                    m.address, m.idle
                );
            }
            let s = p.pool.stats();
            let _ = writeln!(
                out,
                "murakumo_fastcgi_connections_opened_total{{{labels}}} {}",
                s.opened.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "murakumo_fastcgi_connections_reused_total{{{labels}}} {}",
                s.reused.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "murakumo_fastcgi_connect_failures_total{{{labels}}} {}",
                s.connect_failures.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "murakumo_php_saturated_total{{{labels}}} {}",
                s.saturated.load(Ordering::Relaxed)
            );
            let _ = writeln!(out, "murakumo_php_queued{{{labels}}} {}", p.pool.queued());
        }
    }
    if let Some(acme) = edge.certs.acme() {
        out.push_str("# HELP murakumo_certificate_expiry_seconds When the site's ACME certificate expires (Unix time).\n# TYPE murakumo_certificate_expiry_seconds gauge\n");
        out.push_str("# TYPE murakumo_acme_renewal_failing gauge\n# TYPE murakumo_acme_failures_total counter\n# TYPE murakumo_acme_certificates_issued_total counter\n");
        for (site, s) in acme.statuses() {
            let unix = |t: Option<SystemTime>| {
                t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs())
            };
            let _ = writeln!(
                out,
                "murakumo_certificate_expiry_seconds{{site=\"{site}\"}} {}",
                unix(s.not_after)
            );
            let _ = writeln!(
                out,
                "murakumo_acme_renewal_failing{{site=\"{site}\"}} {}",
                u8::from(s.last_error.is_some())
            );
            let _ = writeln!(
                out,
                "murakumo_acme_failures_total{{site=\"{site}\"}} {}",
                s.failures
            );
            let _ = writeln!(
                out,
                "murakumo_acme_certificates_issued_total{{site=\"{site}\"}} {}",
                s.issued
            );
        }
    }
    let _ = writeln!(
        out,
        "# TYPE murakumo_draining gauge\nmurakumo_draining {}",
        u8::from(edge.is_draining())
    );
    let _ = writeln!(
        out,
        "# HELP murakumo_connections_open Client connections open now.\n# TYPE murakumo_connections_open gauge\nmurakumo_connections_open {}",
        edge.admission.open()
    );
    let mut r = Response::new(Body::full(out));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorised(edge: &Edge, remote: SocketAddr, req: &Request<Incoming>) -> bool {
    match edge.purge_token() {
        Some(token) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes())),
        None => remote.ip().is_loopback() || remote.ip().to_canonical().is_loopback(),
    }
}

/// `POST /acme/renew?site=NAME`: renews now and answers with the outcome.
async fn acme_renew(edge: &Edge, remote: SocketAddr, req: &Request<Incoming>) -> Response<Body> {
    if !authorised(edge, remote, req) {
        return plain(
            StatusCode::UNAUTHORIZED,
            "renewal needs Authorization: Bearer <token>",
        );
    }
    let Some(acme) = edge.certs.acme() else {
        return plain(StatusCode::NOT_FOUND, "no site uses tls = { acme = true }");
    };
    let site = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("site="))
        .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned());
    let Some(site) = site else {
        return plain(StatusCode::BAD_REQUEST, "say which site: ?site=NAME");
    };
    match acme.renew(&site).await {
        Ok(()) => plain(StatusCode::OK, &format!("site {site}: certificate renewed")),
        Err(e) => plain(
            StatusCode::BAD_GATEWAY,
            &format!("site {site}: renewal failed: {e}; the current certificate keeps serving"),
        ),
    }
}

async fn purge(edge: &Edge, remote: SocketAddr, req: &Request<Incoming>) -> Response<Body> {
    if !authorised(edge, remote, req) {
        return plain(
            StatusCode::UNAUTHORIZED,
            "purge needs Authorization: Bearer <token>",
        );
    }
    crate::purge::handle(edge, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
    }
}
