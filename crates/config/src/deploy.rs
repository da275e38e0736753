//! `[deploy]`: how `murakumo render` lays the site out on an orchestrator
//! (docker compose, Swarm, Kubernetes). `serve` and `up` ignore it. Every
//! key has a default that is right for a first deployment; `render`'s
//! command-line options override single keys.

use std::time::Duration;

use serde::Deserialize;

use crate::units;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// The runtime image (built from the repository's `Containerfile`).
    #[serde(default = "default_image")]
    pub image: String,
    /// Kubernetes namespace; also the compose project and Swarm stack name.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Public replicas (edge + php-fpm for visitors).
    #[serde(default = "two")]
    pub replicas: u32,
    /// Upper bound for the public autoscaler (Kubernetes).
    #[serde(default)]
    pub max_replicas: Option<u32>,
    /// Admin replicas (edge + php-fpm for `/wp-admin`, `wp-login.php`).
    #[serde(default = "one")]
    pub admin_replicas: u32,
    /// Public tier with code and content read-only (only temp paths
    /// writable). Swarm and Kubernetes require it.
    #[serde(default = "yes")]
    pub public_read_only: bool,
    /// Node label that places the tiers: public on `label=public_nodes`,
    /// admin on `label=admin_nodes`.
    #[serde(default = "default_node_label")]
    pub node_label: String,
    #[serde(default = "default_public_nodes")]
    pub public_nodes: String,
    #[serde(default = "default_admin_nodes")]
    pub admin_nodes: String,
    /// Node label naming the failure zone replicas are spread over.
    #[serde(default = "default_zone_label")]
    pub zone_label: String,
    /// Storage class of the shared (ReadWriteMany) content volume; the
    /// cluster's default class when unset.
    pub storage_class: Option<String>,
    #[serde(default = "default_content_size")]
    pub content_size: String,
    /// How traffic reaches the edges on Kubernetes.
    #[serde(default)]
    pub ingress: IngressMode,
    /// Ingress class (e.g. "nginx"); the cluster's default when unset.
    pub ingress_class: Option<String>,
    /// Kubernetes TLS Secret for the Ingress (all sites' hosts).
    pub tls_secret: Option<String>,
    /// A Redis service for object caching (compose).
    #[serde(default)]
    pub redis: bool,
    /// Use this existing Secret (Kubernetes) instead of generating one
    /// from `secrets/` files.
    pub existing_secret: Option<String>,
    /// How long the orchestrator waits after SIGTERM before SIGKILL; by
    /// default `drain_delay + grace` plus 5 s. Must exceed both together.
    #[serde(default, deserialize_with = "units::optional_duration")]
    pub stop_grace: Option<Duration>,
    #[serde(default)]
    pub db: DeployDb,
}

/// How traffic enters a Kubernetes deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IngressMode {
    /// An Ingress routes admin paths to the admin Service, the rest to
    /// the public one (TLS at the Ingress).
    #[default]
    Ingress,
    /// A LoadBalancer Service on the public edges, which terminate TLS
    /// and route admin paths to the admin php-fpm themselves.
    Edge,
}

/// The database the site uses on the orchestrator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployDb {
    /// Bundled on compose and Swarm, Galera on Kubernetes when unset.
    #[serde(default)]
    pub kind: Option<DbKind>,
    /// `host` or `host:port` of an external MySQL/MariaDB (kind = "external").
    pub host: Option<String>,
    #[serde(default = "default_db_name")]
    pub name: String,
    #[serde(default = "default_db_user")]
    pub user: String,
    /// Galera nodes (kind = "galera"): odd, at least 3.
    #[serde(default = "three")]
    pub galera_size: u32,
    /// The MariaDB image for bundled and Galera databases.
    #[serde(default = "default_db_image")]
    pub image: String,
    #[serde(default = "default_db_size")]
    pub size: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    /// One MariaDB container with a named volume (compose, Swarm).
    Bundled,
    /// A database run elsewhere (managed MySQL, an existing cluster).
    External,
    /// A MariaDB Galera cluster as a StatefulSet (Kubernetes).
    Galera,
}

impl Default for DeployDb {
    fn default() -> Self {
        DeployDb {
            kind: None,
            host: None,
            name: default_db_name(),
            user: default_db_user(),
            galera_size: three(),
            image: default_db_image(),
            size: default_db_size(),
        }
    }
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            image: default_image(),
            namespace: default_namespace(),
            replicas: two(),
            max_replicas: None,
            admin_replicas: one(),
            public_read_only: true,
            node_label: default_node_label(),
            public_nodes: default_public_nodes(),
            admin_nodes: default_admin_nodes(),
            zone_label: default_zone_label(),
            storage_class: None,
            content_size: default_content_size(),
            ingress: IngressMode::default(),
            ingress_class: None,
            tls_secret: None,
            redis: false,
            existing_secret: None,
            stop_grace: None,
            db: DeployDb::default(),
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn default_image() -> String {
    format!("localhost/murakumo:{}", env!("CARGO_PKG_VERSION"))
}
fn default_namespace() -> String {
    "murakumo".into()
}
fn default_node_label() -> String {
    "env".into()
}
fn default_public_nodes() -> String {
    "user".into()
}
fn default_admin_nodes() -> String {
    "admin".into()
}
fn default_zone_label() -> String {
    "topology.kubernetes.io/zone".into()
}
fn default_content_size() -> String {
    "10Gi".into()
}
fn default_db_name() -> String {
    "wordpress".into()
}
fn default_db_user() -> String {
    "wp".into()
}
fn default_db_image() -> String {
    "docker.io/library/mariadb:10.11".into()
}
fn default_db_size() -> String {
    "10Gi".into()
}
