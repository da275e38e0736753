//! `murakumo.toml`: the one configuration that `serve` runs, `up` generates
//! and `render` turns into manifests.
//!
//! Loading is two steps: [`serde`] checks the shape (unknown keys are errors,
//! so a typo never silently falls back to a default), then [`Config::validate`]
//! checks meaning (addresses parse, names are unique, durations agree). Every
//! error names the file, the key, what is wrong and what would be right.

mod deploy;
mod limits;
mod php_address;
mod units;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

pub use deploy::{DbKind, Deploy, DeployDb, IngressMode};
pub use limits::{parse_rate, Limits, Rate, RateLimit};
pub use php_address::PhpAddress;
pub use units::{parse_duration, parse_size};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub site: Vec<Site>,
    /// Automatic certificates, for sites with `tls = { acme = true }`.
    pub acme: Option<Acme>,
    /// How `murakumo render` deploys the site to an orchestrator.
    #[serde(default)]
    pub deploy: Deploy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    #[serde(default = "default_ops_listen")]
    pub ops_listen: SocketAddr,
    #[serde(default = "default_drain_delay", with = "units::duration")]
    pub drain_delay: Duration,
    #[serde(default = "default_grace", with = "units::duration")]
    pub grace: Duration,
    pub purge_token_file: Option<PathBuf>,
    /// Other edges a purge is passed on to, as `host:port` of their ops
    /// listeners; each name is resolved at every purge and every address
    /// gets it (a Kubernetes headless Service, Swarm's `tasks.SERVICE`).
    #[serde(default)]
    pub purge_fanout: Vec<String>,
    /// Format of the access log and other logs: "text" or "json".
    #[serde(default)]
    pub log_format: LogFormat,
    #[serde(default = "yes")]
    pub access_log: bool,
    /// HTTPS listeners (TLS 1.3 and 1.2, ALPN h2 and http/1.1).
    #[serde(default)]
    pub tls_listen: Vec<SocketAddr>,
    /// Answer plain-HTTP requests with a redirect to HTTPS (ACME challenges
    /// excepted).
    #[serde(default)]
    pub redirect_https: bool,
    /// Send `Strict-Transport-Security` on HTTPS answers: `true` for one
    /// year, or a max-age such as "180d".
    #[serde(default)]
    pub hsts: Hsts,
    /// Peers (load balancers) whose `X-Forwarded-For`/`X-Forwarded-Proto`
    /// and PROXY protocol v2 header are believed; nobody else's are.
    #[serde(default, deserialize_with = "units::networks")]
    pub trusted_proxies: Option<Vec<IpNet>>,
    /// `[server.limits]`: timeouts against slow clients, connection caps.
    #[serde(default)]
    pub limits: Limits,
}

/// `Strict-Transport-Security`: off, or on with a max-age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hsts(pub Option<Duration>);

impl<'de> Deserialize<'de> for Hsts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Age(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(false) => Ok(Hsts(None)),
            Raw::Flag(true) => Ok(Hsts(Some(Duration::from_secs(365 * 86400)))),
            Raw::Age(s) => parse_duration(&s)
                .map(|d| Hsts(Some(d)))
                .map_err(|e| serde::de::Error::custom(format!("{e}, or true for one year"))),
        }
    }
}

/// Where a site's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteTls {
    /// PEM certificate chain (leaf first); relative paths are relative to
    /// the configuration file.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Obtain and renew the certificate from the `[acme]` directory.
    #[serde(default)]
    pub acme: bool,
    /// Generate a certificate at start (local use: browsers will warn).
    #[serde(default)]
    pub self_signed: bool,
}

/// What kind of certificate source a site's `tls` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    Files { cert: PathBuf, key: PathBuf },
    Acme,
    SelfSigned,
}

impl SiteTls {
    /// The source this table names (valid after [`Config::validate`]).
    pub fn source(&self) -> Option<TlsSource> {
        match (&self.cert, &self.key, self.acme, self.self_signed) {
            (Some(cert), Some(key), false, false) => Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None, true, false) => Some(TlsSource::Acme),
            (None, None, false, true) => Some(TlsSource::SelfSigned),
            _ => None,
        }
    }
}

/// The ACME account and where certificates are kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// Contact address given to the CA (expiry warnings, policy changes).
    pub email: Option<String>,
    /// The CA's directory URL; Let's Encrypt by default.
    #[serde(default = "default_acme_directory")]
    pub directory: String,
    /// Directory for the account key and certificates (created 0700; keys
    /// are written 0600); relative paths are relative to the configuration.
    pub storage: PathBuf,
    /// A PEM root to trust for the directory's own HTTPS (a private or test
    /// CA such as pebble); the system roots otherwise.
    pub ca_root: Option<PathBuf>,
}

pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

fn default_acme_directory() -> String {
    LETS_ENCRYPT.to_string()
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: default_listen(),
            ops_listen: default_ops_listen(),
            drain_delay: default_drain_delay(),
            grace: default_grace(),
            purge_token_file: None,
            purge_fanout: Vec::new(),
            log_format: LogFormat::Text,
            access_log: true,
            tls_listen: Vec::new(),
            redirect_https: false,
            hsts: Hsts::default(),
            trusted_proxies: None,
            limits: Limits::default(),
        }
    }
}

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
    /// Largest request body (uploads); larger ones get 413. PHP's own
    /// `post_max_size` must be at least this.
    #[serde(default = "default_max_body", with = "units::size")]
    pub max_body: u64,
    /// Login attempts per client address: `POST /wp-login.php` and
    /// `/xmlrpc.php`; beyond it 429 with `Retry-After`. "off" disables it.
    #[serde(default = "limits::default_login_limit")]
    pub login_limit: RateLimit,
    /// Requests per client address to this site (off by default); beyond
    /// it 429 with `Retry-After`.
    #[serde(default = "no_rate_limit")]
    pub rate_limit: RateLimit,
    #[serde(default)]
    pub cache: Cache,
    /// The site's certificate, for `server.tls_listen`.
    pub tls: Option<SiteTls>,
    /// Run WordPress's scheduled tasks (`wp-cron.php`, on the admin pool)
    /// at this interval, e.g. "1m". Off by default: WordPress then triggers
    /// them from page views, which cached pages never make. Set it when
    /// `wp-config.php` has `DISABLE_WP_CRON` (the container image does).
    #[serde(default, deserialize_with = "units::optional_duration")]
    pub wp_cron: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_ttl", with = "units::duration")]
    pub ttl: Duration,
    #[serde(default = "default_stale", with = "units::duration")]
    pub stale: Duration,
    #[serde(default = "default_max_memory", with = "units::size")]
    pub max_memory: u64,
    /// TTL of cached 404 pages, stored although WordPress sends them with
    /// `no-cache` (short: a page may be published at that URL; publishing
    /// purges it). `ttl_404` is its older name.
    #[serde(
        default = "default_ttl_404",
        with = "units::duration",
        alias = "ttl_404"
    )]
    pub not_found_ttl: Duration,
    /// Largest response body that is cached; larger ones stream through.
    #[serde(default = "default_max_entry", with = "units::size")]
    pub max_entry_size: u64,
    /// Cache RSS/Atom feeds (off by default: readers expect them fresh).
    #[serde(default)]
    pub feeds: bool,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            enabled: true,
            ttl: default_ttl(),
            stale: default_stale(),
            max_memory: default_max_memory(),
            not_found_ttl: default_ttl_404(),
            max_entry_size: default_max_entry(),
            feeds: false,
        }
    }
}

/// A `mysql://` URL whose password never appears in `Debug` or `Display`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DbUrl(String);

impl DbUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DbUrl(url.into())
    }
    /// The URL with its password, for the database driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "***".into();
        };
        match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => self.0.clone(),
        }
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn yes() -> bool {
    true
}
fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 8080))]
}
fn default_ops_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}
fn default_drain_delay() -> Duration {
    Duration::from_secs(2)
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
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
/// Like WordPress' and PHP's "64M" (mebibytes).
fn default_max_body() -> u64 {
    64 << 20
}
fn no_rate_limit() -> RateLimit {
    RateLimit(None)
}
fn default_ttl() -> Duration {
    Duration::from_secs(600)
}
fn default_stale() -> Duration {
    Duration::from_secs(3600)
}
fn default_ttl_404() -> Duration {
    Duration::from_secs(60)
}
fn default_max_memory() -> u64 {
    256 << 20
}
fn default_max_entry() -> u64 {
    8 << 20
}

/// A site host pattern: an exact name or `*.suffix`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    /// Matches any name ending in `.suffix` (one or more labels).
    Wildcard(String),
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let lower = s.trim().to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, lower.clone()),
        };
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!("{s:?} is not a host name; write a name like \"example.com\" or a wildcard like \"*.example.com\" (no scheme, port or path)"));
        }
        Ok(if wild {
            HostPattern::Wildcard(name)
        } else {
            HostPattern::Exact(name)
        })
    }
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut config = Config::parse(&text, &file)?;
        if let Some(dir) = path.parent() {
            config.resolve_relative(dir);
        }
        Ok(config)
    }

    /// Makes certificate and ACME paths absolute against `dir`, the
    /// configuration file's directory.
    pub fn resolve_relative(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for site in &mut self.site {
            if let Some(tls) = &mut site.tls {
                tls.cert.as_mut().map(fix);
                tls.key.as_mut().map(fix);
            }
        }
        if let Some(acme) = &mut self.acme {
            fix(&mut acme.storage);
            acme.ca_root.as_mut().map(fix);
        }
    }

    /// Whether any site obtains its certificate by ACME.
    pub fn wants_acme(&self) -> bool {
        self.site
            .iter()
            .any(|s| s.tls.as_ref().and_then(SiteTls::source) == Some(TlsSource::Acme))
    }

    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate(file)?;
        Ok(config)
    }

    /// Checks what the schema cannot: addresses, uniqueness, consistency.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: String, message: String| ConfigError::Invalid {
            file: file.to_string(),
            key,
            message,
        };
        if self.server.listen.is_empty() {
            return Err(err(
                "server.listen".into(),
                "is empty; give at least one address such as \"127.0.0.1:8080\"".into(),
            ));
        }
        if self.server.listen.contains(&self.server.ops_listen) {
            return Err(err(
                "server.ops_listen".into(),
                format!("{} is also a public listener; health, metrics and purge must be on their own address", self.server.ops_listen),
            ));
        }
        for addr in &self.server.tls_listen {
            if self.server.listen.contains(addr) || *addr == self.server.ops_listen {
                return Err(err(
                    "server.tls_listen".into(),
                    format!("{addr} is also in server.listen or server.ops_listen; each address serves one protocol"),
                ));
            }
        }
        let limits = &self.server.limits;
        if limits.max_connections == 0 || limits.max_connections_per_client == 0 {
            return Err(err(
                "server.limits".into(),
                "max_connections and max_connections_per_client must be at least 1".into(),
            ));
        }
        if limits.max_connections_per_client > limits.max_connections {
            return Err(err(
                "server.limits.max_connections_per_client".into(),
                format!(
                    "{} is above max_connections ({}); one client could take every connection",
                    limits.max_connections_per_client, limits.max_connections
                ),
            ));
        }
        for peer in &self.server.purge_fanout {
            let ok = peer
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(err(
                    "server.purge_fanout".into(),
                    format!("{peer:?} is not host:port; write the other edges' ops address, e.g. \"murakumo-edges.murakumo.svc.cluster.local:9090\""),
                ));
            }
        }
        if self.server.redirect_https && self.server.tls_listen.is_empty() {
            return Err(err(
                "server.redirect_https".into(),
                "is true but server.tls_listen is empty; add an HTTPS listener such as \"0.0.0.0:443\"".into(),
            ));
        }
        if let Some(acme) = &self.acme {
            if !(acme.directory.starts_with("https://") || acme.directory.starts_with("http://")) {
                return Err(err(
                    "acme.directory".into(),
                    format!(
                        "{:?} is not a URL; give the CA's directory, e.g. \"{LETS_ENCRYPT}\"",
                        acme.directory
                    ),
                ));
            }
            if let Some(email) = &acme.email {
                if !email.contains('@') || email.contains(char::is_whitespace) {
                    return Err(err(
                        "acme.email".into(),
                        format!("{email:?} is not an e-mail address"),
                    ));
                }
            }
        }
        if self.site.is_empty() {
            return Err(err(
                "site".into(),
                "no [[site]] is configured; add one with name, hosts, root and php".into(),
            ));
        }
        let mut names = HashSet::new();
        let mut hosts = HashSet::new();
        for (i, site) in self.site.iter().enumerate() {
            let key = |k: &str| format!("site[{i}].{k}");
            if site.name.is_empty()
                || !site
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(err(
                    key("name"),
                    format!("{:?} must be letters, digits, '-' or '_'", site.name),
                ));
            }
            if !names.insert(site.name.as_str()) {
                return Err(err(
                    key("name"),
                    format!("{:?} is used by two sites; names must be unique", site.name),
                ));
            }
            if site.hosts.is_empty() {
                return Err(err(
                    key("hosts"),
                    "is empty; list the host names this site answers, e.g. [\"example.com\"]"
                        .into(),
                ));
            }
            for h in &site.hosts {
                let pattern = HostPattern::parse(h).map_err(|m| err(key("hosts"), m))?;
                if !hosts.insert(pattern) {
                    return Err(err(key("hosts"), format!("{h:?} is claimed by two sites")));
                }
            }
            if site.wp_cron.is_some_and(|d| d < Duration::from_secs(10)) {
                return Err(err(
                    key("wp_cron"),
                    "is below 10s; WordPress schedules by the minute: write \"1m\"".into(),
                ));
            }
            if site.wp_cron.is_some() && !site.hosts.iter().any(|h| !h.contains('*')) {
                return Err(err(
                    key("wp_cron"),
                    "needs a host name without '*' in hosts (wp-cron.php is asked as that host)"
                        .into(),
                ));
            }
            if !site.root.is_absolute() {
                return Err(err(
                    key("root"),
                    format!("{} is relative; give an absolute path", site.root.display()),
                ));
            }
            check_pool(&site.php, &key("php")).map_err(|m| err(key("php"), m))?;
            if let Some(admin) = &site.admin_php {
                check_pool(admin, &key("admin_php")).map_err(|m| err(key("admin_php"), m))?;
            }
            if let Some(db) = &site.db {
                if !db.expose().starts_with("mysql://") {
                    return Err(err(key("db"), format!("{db} must be a mysql:// URL, e.g. \"mysql://user@localhost/wordpress\"")));
                }
            }
            if site.db_password_file.is_some() && site.db_password_env.is_some() {
                return Err(err(
                    key("db_password_file"),
                    "and db_password_env are both set; choose one".into(),
                ));
            }
            if site.php_max_conns == 0 {
                return Err(err(key("php_max_conns"), "must be at least 1".into()));
            }
            if site.max_body == 0 {
                return Err(err(
                    key("max_body"),
                    "is 0, which refuses every form and upload; give a size such as \"64MiB\""
                        .into(),
                ));
            }
            if site.tls.is_none() && self.server.redirect_https {
                return Err(err(
                    key("tls"),
                    "is missing while server.redirect_https = true: this site's visitors would be sent to HTTPS and get another site's certificate; give it tls = { acme = true } (or cert/key files)".into(),
                ));
            }
            if let Some(tls) = &site.tls {
                let source = tls.source().ok_or_else(|| {
                    err(
                        key("tls"),
                        "must name exactly one source: { cert = \"fullchain.pem\", key = \"key.pem\" }, { acme = true } or { self_signed = true }".into(),
                    )
                })?;
                if self.server.tls_listen.is_empty() {
                    return Err(err(
                        key("tls"),
                        "is set but server.tls_listen is empty; add an HTTPS listener such as \"0.0.0.0:443\"".into(),
                    ));
                }
                if source == TlsSource::Acme {
                    if self.acme.is_none() {
                        return Err(err(
                            key("tls"),
                            "asks for acme but there is no [acme] section; add one with at least storage = \"/var/lib/murakumo/acme\"".into(),
                        ));
                    }
                    if let Some(h) = site.hosts.iter().find(|h| h.starts_with("*.")) {
                        return Err(err(
                            key("tls"),
                            format!("acme cannot obtain {h:?}: wildcard names need a DNS-01 challenge; give the wildcard a certificate file"),
                        ));
                    }
                }
            }
            let c = &site.cache;
            if c.max_entry_size > c.max_memory {
                return Err(err(
                    key("cache.max_entry_size"),
                    "is larger than cache.max_memory".into(),
                ));
            }
        }
        Ok(())
    }
}

fn check_pool(members: &[String], _key: &str) -> Result<(), String> {
    if members.is_empty() {
        return Err("is empty; give at least one php-fpm address: \"unix:/run/php/php8.2-fpm.sock\" or \"127.0.0.1:9000\"".into());
    }
    for m in members {
        PhpAddress::parse(m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
