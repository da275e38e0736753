//! WordPress's scheduled tasks on a clock (`site.wp_cron = "1m"`).
//!
//! WordPress runs due tasks (scheduled posts, update checks, e-mails) when a
//! page view makes PHP send a loopback request to `wp-cron.php`. Behind a
//! page cache most views never reach PHP, so tasks run late or not at all,
//! and in containers the loopback request may not even reach the site. With
//! `wp_cron` set, the edge asks the site's admin pool for `/wp-cron.php`
//! itself, over FastCGI, at that interval, one run per site at a time;
//! `wp-config.php` then sets `DISABLE_WP_CRON` (the container image does).
//! The request has no `doing_wp_cron` key, as from a system cron job:
//! WordPress then takes its own lock (`doing_cron`), so several edges
//! doing this for one site still run the tasks once at a time. WordPress
//! answers at once (`fastcgi_finish_request`) and runs the tasks after;
//! php-fpm's `request_terminate_timeout` bounds them. Runs stop when the
//! edge starts draining.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderMap, HeaderValue, Method};

use crate::conn::ConnInfo;
use crate::php::SpooledBody;
use crate::site::Site;
use crate::state::Edge;

const SCRIPT: &str = "/wp-cron.php";

/// Starts the scheduler (one task for every site; it follows reloads).
pub fn spawn(edge: Arc<Edge>) {
    tokio::spawn(async move {
        // Per site: when it last started, and whether a run is under way.
        let mut runs: HashMap<Arc<str>, (Instant, Arc<AtomicBool>)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if edge.is_draining() {
                return;
            }
            let sites = edge.sites();
            for site in &sites.list {
                let Some(every) = site.config.wp_cron else {
                    continue;
                };
                let now = Instant::now();
                let (last, busy) = runs
                    .entry(site.name.clone())
                    // The first run comes one interval after start (or after
                    // a reload turned it on), not in the start-up rush.
                    .or_insert_with(|| (now, Arc::new(AtomicBool::new(false))));
                if now.duration_since(*last) < every || busy.swap(true, Ordering::SeqCst) {
                    continue;
                }
                *last = now;
                let (edge, site, busy) = (edge.clone(), site.clone(), busy.clone());
                tokio::spawn(async move {
                    let ok = run_once(&site).await;
                    edge.metrics.wp_cron(&site.name, ok);
                    busy.store(false, Ordering::SeqCst);
                });
            }
        }
    });
}

/// One request to the site's `wp-cron.php` on its admin pool; true when
/// PHP answered 2xx. The body (normally empty) is read and dropped, so the
/// connection goes back to the pool.
pub async fn run_once(site: &Arc<Site>) -> bool {
    let Some(host) = site.config.hosts.iter().find(|h| !h.contains('*')) else {
        return false; // refused by the configuration check
    };
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let conn = ConnInfo {
        remote: loopback,
        local: loopback,
        https: site.config.tls.is_some(),
    };
    let target = site.php_target(conn, SCRIPT, "", true);
    let uri = http::Uri::from_static(SCRIPT);
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(host) {
        Ok(v) => headers.insert(header::HOST, v),
        Err(_) => return false,
    };
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static("murakumo wp-cron"),
    );
    let params = target.params(&Method::GET, &uri, &headers, None);
    match target.exchange(&params, SpooledBody::Empty).await {
        Ok(mut up) => {
            let status = up.status;
            loop {
                match up.next_chunk().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(site = %site.name, error = %e, "wp-cron.php: reading the answer failed");
                        return false;
                    }
                }
            }
            if status.is_success() {
                tracing::debug!(site = %site.name, "wp-cron.php ran");
                true
            } else {
                tracing::warn!(site = %site.name, %status, "wp-cron.php answered an error");
                false
            }
        }
        Err(e) => {
            tracing::warn!(site = %site.name, error = %e, "wp-cron.php could not run");
            false
        }
    }
}
