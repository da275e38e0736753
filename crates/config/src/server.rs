//! `[server]`: listeners, drain, purge fan-out, logs, HTTPS behaviour,
//! trusted proxies, `[server.limits]` and `[server.shared_cache]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::limits::Limits;
use crate::shared_cache::SharedCache;
use crate::units::{self, parse_duration};
use crate::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    pub listen: Vec<SocketAddr>,
    pub ops_listen: SocketAddr,
    #[serde(with = "units::duration")]
    pub drain_delay: Duration,
    #[serde(with = "units::duration")]
    pub grace: Duration,
    pub purge_token_file: Option<PathBuf>,
    /// Other edges a purge is passed on to, as `host:port` of their ops
    /// listeners; each name is resolved at every purge and every address
    /// gets it (a Kubernetes headless Service, Swarm's `tasks.SERVICE`).
    pub purge_fanout: Vec<String>,
    /// Format of the access log and other logs: "text" or "json".
    pub log_format: LogFormat,
    pub access_log: bool,
    /// HTTPS listeners (TLS 1.3 and 1.2, ALPN h2 and http/1.1).
    pub tls_listen: Vec<SocketAddr>,
    /// Answer plain-HTTP requests with a redirect to HTTPS (ACME challenges
    /// excepted).
    pub redirect_https: bool,
    /// `Strict-Transport-Security` on HTTPS answers: on by default for one
    /// year (`true`), a max-age such as "180d", or `false`. Browsers ignore
    /// it on a connection whose certificate they do not trust, so a
    /// self-signed local site is not pinned.
    pub hsts: Hsts,
    /// Peers (load balancers) whose `X-Forwarded-For`/`X-Forwarded-Proto`
    /// and PROXY protocol v2 header are believed; nobody else's are.
    #[serde(deserialize_with = "units::networks")]
    pub trusted_proxies: Option<Vec<IpNet>>,
    /// `[server.limits]`: timeouts against slow clients, connection caps.
    pub limits: Limits,
    /// `[server.shared_cache]`: a page cache on Redis that every edge
    /// shares, behind each one's memory; none by default.
    pub shared_cache: Option<SharedCache>,
    /// The Unix socket of the node's port keeper (`murakumo portkeeper`):
    /// the edge also serves the connections it hands over, so edges are
    /// replaced on a node without a refused connection. None by default.
    pub handoff: Option<PathBuf>,
}

/// `Strict-Transport-Security`: off, or on with a max-age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hsts(pub Option<Duration>);

impl Hsts {
    pub const ONE_YEAR: Hsts = Hsts(Some(Duration::from_secs(365 * 86400)));
}

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
            Raw::Flag(true) => Ok(Hsts::ONE_YEAR),
            Raw::Age(s) => parse_duration(&s)
                .map(|d| Hsts(Some(d)))
                .map_err(|e| serde::de::Error::custom(format!("{e}, or true for one year"))),
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            drain_delay: Duration::from_secs(2),
            grace: Duration::from_secs(30),
            purge_token_file: None,
            purge_fanout: Vec::new(),
            log_format: LogFormat::Text,
            access_log: true,
            tls_listen: Vec::new(),
            redirect_https: false,
            hsts: Hsts::ONE_YEAR,
            trusted_proxies: None,
            limits: Limits::default(),
            shared_cache: None,
            handoff: None,
        }
    }
}

impl Server {
    /// Addresses that serve one protocol each, connection caps that fit,
    /// fan-out peers that are `host:port`, a redirect to HTTPS that has a
    /// listener.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.listen.is_empty() {
            return Err(Invalid::new(
                "server.listen",
                "is empty; give at least one address such as \"127.0.0.1:8080\"",
            ));
        }
        if self.listen.contains(&self.ops_listen) {
            return Err(Invalid::new(
                "server.ops_listen",
                format!("{} is also a public listener; health, metrics and purge must be on their own address", self.ops_listen),
            ));
        }
        for addr in &self.tls_listen {
            if self.listen.contains(addr) || *addr == self.ops_listen {
                return Err(Invalid::new(
                    "server.tls_listen",
                    format!("{addr} is also in server.listen or server.ops_listen; each address serves one protocol"),
                ));
            }
        }
        self.limits.validate()?;
        if let Some(shared) = &self.shared_cache {
            shared.validate()?;
        }
        for peer in &self.purge_fanout {
            let ok = peer
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(Invalid::new(
                    "server.purge_fanout",
                    format!("{peer:?} is not host:port; write the other edges' ops address, e.g. \"murakumo-edges.murakumo.svc.cluster.local:9090\""),
                ));
            }
        }
        if let Some(path) = &self.handoff {
            if !path.is_absolute() {
                return Err(Invalid::new(
                    "server.handoff",
                    format!("{} is not an absolute path; give the keeper's socket, e.g. \"/run/murakumo-handoff/keeper.sock\"", path.display()),
                ));
            }
        }
        if self.redirect_https && self.tls_listen.is_empty() {
            return Err(Invalid::new(
                "server.redirect_https",
                "is true but server.tls_listen is empty; add an HTTPS listener such as \"0.0.0.0:443\"",
            ));
        }
        Ok(())
    }
}
