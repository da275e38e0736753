//! What every target needs to know about the site being rendered: the
//! chosen site, the `[deploy]` settings after command-line overrides, and
//! names and numbers derived from them (one place, so compose, Swarm and
//! Kubernetes agree).

use std::collections::BTreeMap;
use std::time::Duration;

use murakumo_config::{Config, DbKind, Deploy, Site};

use crate::Target;

/// A tier of the site: visitors, or the admin area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Public,
    Admin,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Public => "public",
            Tier::Admin => "admin",
        }
    }
}

/// A rendering of one site for one target.
pub struct Plan<'a> {
    pub target: Target,
    pub config: &'a Config,
    pub site: &'a Site,
    pub deploy: Deploy,
    /// The configuration file as written (every key the user set, so the
    /// edge in the target runs with the same limits, cache and guards).
    pub source: toml::Table,
    /// The configuration file's name, for errors.
    pub file: String,
    /// Keys set from the command line: key → flag, for errors.
    pub flags: BTreeMap<&'static str, &'static str>,
}

impl Plan<'_> {
    /// A `[deploy]` key as the user set it: the flag when given as one.
    pub fn key(&self, key: &'static str) -> String {
        match self.flags.get(key) {
            Some(flag) => format!("{key} (set by {flag})"),
            None => key.to_string(),
        }
    }

    /// The database kind, with the target's default: a bundled MariaDB on
    /// compose and Swarm, a Galera cluster on Kubernetes.
    pub fn db_kind(&self) -> DbKind {
        self.deploy.db.kind.unwrap_or(match self.target {
            Target::K8s => DbKind::Galera,
            Target::Compose | Target::Swarm => DbKind::Bundled,
        })
    }

    /// Resource names are prefixed with the site's name (lowercase).
    pub fn name(&self, what: &str) -> String {
        format!(
            "{}-{what}",
            self.site.name.to_ascii_lowercase().replace('_', "-")
        )
    }

    /// Where the database answers, as seen from the containers.
    pub fn db_host(&self) -> String {
        match self.db_kind() {
            DbKind::External => self.deploy.db.host.clone().unwrap_or_default(),
            DbKind::Bundled => match self.target {
                Target::K8s => self.name("db"),
                _ => "mariadb".into(),
            },
            DbKind::Galera => match self.target {
                Target::K8s => self.name("db"),
                // Every node's service has the alias `db` (dnsrr: the name
                // resolves to every node; PHP tries them in turn).
                _ => "db".into(),
            },
        }
    }

    /// The Redis of `deploy.redis`, as `host:port` from the containers.
    pub fn redis_host(&self) -> String {
        let host = match self.target {
            Target::K8s => self.name("redis"),
            _ => "redis".into(),
        };
        format!("{host}:{}", murakumo_image::REDIS_PORT)
    }

    /// How long the orchestrator waits between SIGTERM and SIGKILL: the
    /// edge's drain delay and grace, plus time to exit.
    pub fn stop_grace(&self) -> Duration {
        self.deploy.stop_grace.unwrap_or(
            self.config.server.drain_delay + self.config.server.grace + Duration::from_secs(5),
        )
    }

    /// Whether the edges terminate TLS themselves (else the Ingress does,
    /// or nobody does).
    pub fn edge_tls(&self) -> bool {
        self.site.tls.is_some()
            && !(self.target == Target::K8s
                && self.deploy.ingress == murakumo_config::IngressMode::Ingress)
    }

    /// Upper bound of the public autoscaler.
    pub fn max_replicas(&self) -> u32 {
        self.deploy
            .max_replicas
            .unwrap_or(self.deploy.replicas.saturating_mul(4))
    }
}

/// Whole seconds, rounded up.
pub fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
