//! `[deploy]`: how `murakumo render` lays the site out on an orchestrator
//! (docker compose, Swarm, Kubernetes). `serve` and `up` ignore it. Every
//! key has a default that is right for a first deployment; `render`'s
//! command-line options override single keys.

use std::time::Duration;

use serde::Deserialize;

use crate::units;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Deploy {
    /// The runtime image (built from the repository's `Containerfile`).
    pub image: String,
    /// Kubernetes namespace; also the compose project and Swarm stack name.
    pub namespace: String,
    /// Public replicas (edge + php-fpm for visitors).
    pub replicas: u32,
    /// Upper bound for the public autoscaler (Kubernetes).
    pub max_replicas: Option<u32>,
    /// Admin replicas (edge + php-fpm for `/wp-admin`, `wp-login.php`).
    pub admin_replicas: u32,
    /// Public tier with code and content read-only (only temp paths
    /// writable). Swarm and Kubernetes require it.
    pub public_read_only: bool,
    /// Node label that places the tiers: public on `label=public_nodes`,
    /// admin on `label=admin_nodes`.
    pub node_label: String,
    pub public_nodes: String,
    pub admin_nodes: String,
    /// Node label naming the failure zone replicas are spread over.
    pub zone_label: String,
    /// Storage class of the shared (ReadWriteMany) content volume; the
    /// cluster's default class when unset.
    pub storage_class: Option<String>,
    pub content_size: String,
    /// How traffic reaches the edges on Kubernetes.
    pub ingress: IngressMode,
    /// Ingress class (e.g. "nginx"); the cluster's default when unset.
    pub ingress_class: Option<String>,
    /// Kubernetes TLS Secret for the Ingress (all sites' hosts).
    pub tls_secret: Option<String>,
    /// A Redis service (every target): WordPress's object cache for the php
    /// tiers and the page cache every edge shares (`[server.shared_cache]`
    /// in the rendered edge configurations).
    pub redis: bool,
    /// Use this existing Secret (Kubernetes) instead of generating one
    /// from `secrets/` files.
    pub existing_secret: Option<String>,
    /// How long the orchestrator waits after SIGTERM before SIGKILL; by
    /// default `drain_delay + grace` plus 5 s. Must exceed both together.
    #[serde(deserialize_with = "units::optional_duration")]
    pub stop_grace: Option<Duration>,
    /// How Swarm services find each other: `dnsrr` (the default: the name
    /// resolves to every task, and the edge spreads over them itself; needs
    /// nothing of the kernel) or `vip` (one virtual address per service,
    /// balanced by the kernel's IPVS, which some kernels lack).
    pub endpoint_mode: EndpointMode,
    pub db: DeployDb,
}

/// Swarm's `deploy.endpoint_mode` for every service of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    #[default]
    Dnsrr,
    Vip,
}

impl EndpointMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointMode::Dnsrr => "dnsrr",
            EndpointMode::Vip => "vip",
        }
    }
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
#[serde(default, deny_unknown_fields)]
pub struct DeployDb {
    /// Bundled on compose and Swarm, Galera on Kubernetes when unset.
    pub kind: Option<DbKind>,
    /// `host` or `host:port` of an external MySQL/MariaDB (kind = "external").
    pub host: Option<String>,
    pub name: String,
    pub user: String,
    /// Galera nodes (kind = "galera"): odd, at least 3.
    pub galera_size: u32,
    /// The MariaDB image for bundled and Galera databases.
    pub image: String,
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
            name: "wordpress".into(),
            user: "wp".into(),
            galera_size: 3,
            // Made by scripts/build-image (image/mariadb): Debian's
            // MariaDB with the official image's conventions, so
            // "docker.io/library/mariadb:10.11" works in its place.
            image: format!("murakumo-mariadb:{}", env!("CARGO_PKG_VERSION")),
            size: "10Gi".into(),
        }
    }
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            // A local name without a registry: Docker would read
            // "localhost/murakumo" as a registry on localhost:80, and a
            // Swarm node asks the image's registry before every task start:
            // there port 80 is the site (the port keeper), and the edge's
            // restart would wait for its own pull to time out. podman
            // stores this name as localhost/murakumo.
            image: format!("murakumo:{}", env!("CARGO_PKG_VERSION")),
            namespace: "murakumo".into(),
            replicas: 2,
            max_replicas: None,
            admin_replicas: 1,
            public_read_only: true,
            node_label: "env".into(),
            public_nodes: "user".into(),
            admin_nodes: "admin".into(),
            zone_label: "topology.kubernetes.io/zone".into(),
            storage_class: None,
            content_size: "10Gi".into(),
            ingress: IngressMode::default(),
            ingress_class: None,
            tls_secret: None,
            redis: false,
            existing_secret: None,
            stop_grace: None,
            endpoint_mode: EndpointMode::default(),
            db: DeployDb::default(),
        }
    }
}
