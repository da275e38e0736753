//! `[[site]]`: one WordPress (or other front-controller) site: its hosts,
//! document root, php-fpm pools, database, limits, cache and certificate.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::rate::{self, RateLimit};
use crate::units;
use crate::{Acme, Cache, DbUrl, Guard, HostPattern, Invalid, PhpAddress, Server, SiteTls};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub name: String,
    pub hosts: Vec<String>,
    pub root: PathBuf,
    pub php: Vec<String>,
    pub admin_php: Option<Vec<String>>,
    /// CIDR networks (or single addresses) allowed into the admin area.
    #[serde(default, deserialize_with = "units::networks")]
    pub admin_allow: Option<Vec<IpNet>>,
    pub db: Option<DbUrl>,
    /// Read the DB password from this file (first line), instead of the URL.
    pub db_password_file: Option<PathBuf>,
    /// Read the DB password from this environment variable.
    pub db_password_env: Option<String>,
    /// Serve `/xmlrpc.php` (refused by default: a favourite brute-force target).
    #[serde(default)]
    pub xmlrpc: bool,
    /// Connections per php-fpm member; keep at or below `pm.max_children`.
    #[serde(default = "default_php_max_conns")]
    pub php_max_conns: usize,
    /// How long PHP may take to send a response head.
    #[serde(default = "default_php_timeout", with = "units::duration")]
    pub php_timeout: Duration,
    /// How long connecting to a php-fpm member may take.
    #[serde(default = "default_php_connect_timeout", with = "units::duration")]
    pub php_connect_timeout: Duration,
    /// Requests that may wait for a busy php pool; more get 503 at once.
    #[serde(default = "default_php_queue")]
    pub php_queue: usize,
    /// How long a request waits for a busy php pool before a 503.
    #[serde(default = "default_php_queue_timeout", with = "units::duration")]
    pub php_queue_timeout: Duration,
    /// When no php-fpm member accepts a connection, requests wait for one
    /// until this long after PHP last accepted one (a restart or a
    /// container being replaced), then 502; once PHP has been gone that
    /// long, 502 at once. "0s": 502 at once always.
    #[serde(default = "default_php_restart_wait", with = "units::duration")]
    pub php_restart_wait: Duration,
    /// Largest request body (uploads); larger ones get 413. PHP's own
    /// `post_max_size` must be at least this.
    #[serde(default = "default_max_body", with = "units::size")]
    pub max_body: u64,
    /// Login attempts per client address: `POST /wp-login.php` and
    /// `/xmlrpc.php`; beyond it 429 with `Retry-After`. "off" disables it.
    #[serde(default = "rate::default_login_limit")]
    pub login_limit: RateLimit,
    /// Requests per client address to this site (off by default); beyond
    /// it 429 with `Retry-After`.
    #[serde(default = "no_rate_limit")]
    pub rate_limit: RateLimit,
    #[serde(default)]
    pub cache: Cache,
    /// `[site.guard]`: the hardening rules, all on by default.
    #[serde(default)]
    pub guard: Guard,
    /// The site's certificate, for `server.tls_listen`.
    pub tls: Option<SiteTls>,
    /// Run WordPress's scheduled tasks (`wp-cron.php`, on the admin pool)
    /// at this interval, e.g. "1m". Off by default: WordPress then triggers
    /// them from page views, which cached pages never make. Set it when
    /// `wp-config.php` has `DISABLE_WP_CRON` (the container image does).
    #[serde(default, deserialize_with = "units::optional_duration")]
    pub wp_cron: Option<Duration>,
}

fn default_php_max_conns() -> usize {
    16
}
fn default_php_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_php_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_php_queue() -> usize {
    128
}
fn default_php_queue_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_php_restart_wait() -> Duration {
    Duration::from_secs(10)
}
/// Like WordPress' and PHP's "64M" (mebibytes).
fn default_max_body() -> u64 {
    64 << 20
}
fn no_rate_limit() -> RateLimit {
    RateLimit(None)
}

impl Site {
    /// Checks site `i`; `names` and `hosts` collect what earlier sites
    /// claimed (both must be unique across sites).
    pub(crate) fn validate<'a>(
        &'a self,
        i: usize,
        names: &mut HashSet<&'a str>,
        hosts: &mut HashSet<HostPattern>,
        server: &Server,
        acme: Option<&Acme>,
    ) -> Result<(), Invalid> {
        let key = |k: &str| format!("site[{i}].{k}");
        let err = Invalid::new;
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(
                key("name"),
                format!("{:?} must be letters, digits, '-' or '_'", self.name),
            ));
        }
        if !names.insert(self.name.as_str()) {
            return Err(err(
                key("name"),
                format!("{:?} is used by two sites; names must be unique", self.name),
            ));
        }
        if self.hosts.is_empty() {
            return Err(err(
                key("hosts"),
                "is empty; list the host names this site answers, e.g. [\"example.com\"]".into(),
            ));
        }
        for h in &self.hosts {
            let pattern = HostPattern::parse(h).map_err(|m| err(key("hosts"), m))?;
            if !hosts.insert(pattern) {
                return Err(err(key("hosts"), format!("{h:?} is claimed by two sites")));
            }
        }
        if self.wp_cron.is_some_and(|d| d < Duration::from_secs(10)) {
            return Err(err(
                key("wp_cron"),
                "is below 10s; WordPress schedules by the minute: write \"1m\"".into(),
            ));
        }
        if self.wp_cron.is_some() && !self.hosts.iter().any(|h| !h.contains('*')) {
            return Err(err(
                key("wp_cron"),
                "needs a host name without '*' in hosts (wp-cron.php is asked as that host)".into(),
            ));
        }
        if !self.root.is_absolute() {
            return Err(err(
                key("root"),
                format!("{} is relative; give an absolute path", self.root.display()),
            ));
        }
        check_pool(&self.php).map_err(|m| err(key("php"), m))?;
        if let Some(admin) = &self.admin_php {
            check_pool(admin).map_err(|m| err(key("admin_php"), m))?;
        }
        if let Some(db) = &self.db {
            if !db.expose().starts_with("mysql://") {
                return Err(err(
                    key("db"),
                    format!(
                        "{db} must be a mysql:// URL, e.g. \"mysql://user@localhost/wordpress\""
                    ),
                ));
            }
        }
        if self.db_password_file.is_some() && self.db_password_env.is_some() {
            return Err(err(
                key("db_password_file"),
                "and db_password_env are both set; choose one".into(),
            ));
        }
        if self.php_max_conns == 0 {
            return Err(err(key("php_max_conns"), "must be at least 1".into()));
        }
        if self.max_body == 0 {
            return Err(err(
                key("max_body"),
                "is 0, which refuses every form and upload; give a size such as \"64MiB\"".into(),
            ));
        }
        if self.tls.is_none() && server.redirect_https {
            return Err(err(
                    key("tls"),
                    "is missing while server.redirect_https = true: this site's visitors would be sent to HTTPS and get another site's certificate; give it tls = { acme = true } (or cert/key files)".into(),
                ));
        }
        if let Some(tls) = &self.tls {
            tls.validate(&key("tls"), &self.hosts, server, acme)?;
        }
        self.cache.validate(&key("cache"))
    }
}

fn check_pool(members: &[String]) -> Result<(), String> {
    if members.is_empty() {
        return Err("is empty; give at least one php-fpm address: \"unix:/run/php/php8.2-fpm.sock\" or \"127.0.0.1:9000\"".into());
    }
    for m in members {
        PhpAddress::parse(m)?;
    }
    Ok(())
}
