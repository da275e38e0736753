//! `/readyz`: ready when every site's php-fpm answers and its database
//! answers `SELECT 1`, and the edge is not draining. Certificate trouble and
//! a shared cache that does not answer are reported, never a reason to be
//! unready.

use std::time::{Duration, SystemTime};

use http::{Response, StatusCode};
use mysql_async::prelude::Queryable;

use crate::response::{plain, Body};
use crate::site::Site;
use crate::state::Edge;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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

pub async fn readyz(edge: &Edge) -> Response<Body> {
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
                (None, None) => notes.push(format!("site {site}: no certificate yet (being ordered, or coming from another edge)")),
                (None, Some(_)) => {}
            }
        }
    }
    // Nor is the shared cache: without it the edge serves from memory and PHP.
    if let Some(shared) = edge.shared() {
        match shared.status() {
            murakumo_shared_cache::Status::Up => {}
            murakumo_shared_cache::Status::Connecting => notes.push(
                "shared cache (Redis): not connected yet; serving from memory and PHP".into(),
            ),
            murakumo_shared_cache::Status::Down { error, since } => notes.push(format!(
                "shared cache (Redis): down for {}s ({error}); serving from memory and PHP",
                since.elapsed().as_secs()
            )),
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
