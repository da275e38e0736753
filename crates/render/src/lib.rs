//! `murakumo render`: one site of `murakumo.toml` as files to apply on an
//! orchestrator, carrying the operational lessons of running WordPress in
//! containers (admin and public tiers, a read-only public tier, probes that
//! tell alive from ready, drain before stop, secrets as files, spread over
//! failure domains, purges that reach every edge).
//!
//! - [`plan`]: the site, the `[deploy]` settings and what follows from them;
//! - [`check`]: contradictions refused before anything is written;
//! - [`edge_config`]: the edge's `murakumo.toml` inside the target;
//! - [`compose`] (docker compose and Swarm stack files), [`k8s`]
//!   (a kustomize tree): the manifests;
//! - [`secrets`]: the secret files, generated once and never overwritten;
//! - [`yaml`]: the YAML writer. The runtime image's contract (paths,
//!   ports, secret files) is the `murakumo-image` crate, shared with `up`.
//!
//! Every target runs the same image (`Containerfile`): the edge
//! (`murakumo serve`) and php-fpm (`murakumo php-fpm --role public|admin`).

pub mod check;
pub mod compose;
pub mod edge_config;
pub mod galera;
pub mod k8s;
pub mod plan;
pub mod secrets;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use murakumo_config::{Config, ConfigError, Deploy};

pub use plan::{Plan, Tier};

/// What to render for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// docker compose on one host.
    Compose,
    /// A Swarm stack file (`docker stack deploy`).
    Swarm,
    /// A kustomize tree for Kubernetes (`kubectl apply -k`).
    K8s,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("rendering failed: {0} (a bug in murakumo render; please report it)")]
    Internal(String),
}

/// A file to write under the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    /// Relative to the output directory.
    pub path: PathBuf,
    pub text: String,
}

/// `[deploy]` keys given on the command line; each wins over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub site: Option<String>,
    pub image: Option<String>,
    pub namespace: Option<String>,
    pub replicas: Option<u32>,
    pub admin_replicas: Option<u32>,
    pub storage_class: Option<String>,
    pub db: Option<murakumo_config::DbKind>,
    pub db_host: Option<String>,
    pub galera_size: Option<u32>,
    pub edge_ingress: bool,
    pub redis: bool,
    pub existing_secret: Option<String>,
    pub public_nodes: Option<String>,
    pub admin_nodes: Option<String>,
}

impl Overrides {
    /// Applies the flags; returns which keys they set (key → flag).
    fn apply(&self, d: &mut Deploy) -> BTreeMap<&'static str, &'static str> {
        let mut set = BTreeMap::new();
        macro_rules! take {
            ($field:expr, $value:expr, $key:literal, $flag:literal) => {
                if let Some(v) = $value.clone() {
                    $field = v;
                    set.insert($key, $flag);
                }
            };
        }
        take!(d.image, self.image, "deploy.image", "--image");
        take!(
            d.namespace,
            self.namespace,
            "deploy.namespace",
            "--namespace"
        );
        take!(d.replicas, self.replicas, "deploy.replicas", "--replicas");
        take!(
            d.admin_replicas,
            self.admin_replicas,
            "deploy.admin_replicas",
            "--admin-replicas"
        );
        take!(
            d.public_nodes,
            self.public_nodes,
            "deploy.public_nodes",
            "--public-nodes"
        );
        take!(
            d.admin_nodes,
            self.admin_nodes,
            "deploy.admin_nodes",
            "--admin-nodes"
        );
        if let Some(v) = &self.storage_class {
            d.storage_class = Some(v.clone());
            set.insert("deploy.storage_class", "--storage-class");
        }
        if let Some(v) = self.db {
            d.db.kind = Some(v);
            set.insert("deploy.db.kind", "--db");
        }
        if let Some(v) = &self.db_host {
            d.db.host = Some(v.clone());
            set.insert("deploy.db.host", "--db-host");
        }
        take!(
            d.db.galera_size,
            self.galera_size,
            "deploy.db.galera_size",
            "--galera-size"
        );
        if self.edge_ingress {
            d.ingress = murakumo_config::IngressMode::Edge;
            set.insert("deploy.ingress", "--edge-ingress");
        }
        if self.redis {
            d.redis = true;
            set.insert("deploy.redis", "--redis");
        }
        if let Some(v) = &self.existing_secret {
            d.existing_secret = Some(v.clone());
            set.insert("deploy.existing_secret", "--existing-secret");
        }
        set
    }
}

/// Renders `config_file` for `target`: the files to write (secrets
/// excepted; see [`secrets::ensure`]).
pub fn render(
    target: Target,
    config_file: &Path,
    overrides: &Overrides,
) -> Result<Vec<OutFile>, RenderError> {
    let file = config_file.display().to_string();
    let text = std::fs::read_to_string(config_file).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    render_text(target, &text, &file, overrides)
}

/// [`render`] from configuration text; `file` names it in errors.
pub fn render_text(
    target: Target,
    text: &str,
    file: &str,
    overrides: &Overrides,
) -> Result<Vec<OutFile>, RenderError> {
    let config = Config::parse(text, file)?;
    let source: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| RenderError::Internal(e.to_string()))?;
    let site = match &overrides.site {
        Some(name) => config.site.iter().find(|s| &s.name == name).ok_or_else(|| {
            RenderError::Invalid {
                file: file.to_string(),
                key: "site (set by --site)".into(),
                message: format!("no site is named {name:?}; the sites are {}", names(&config)),
            }
        })?,
        None if config.site.len() == 1 => &config.site[0],
        None => {
            return Err(RenderError::Invalid {
                file: file.to_string(),
                key: "site".into(),
                message: format!(
                    "has {} sites; render one at a time, each into its own directory: --site NAME (one of {})",
                    config.site.len(),
                    names(&config)
                ),
            })
        }
    };
    let mut deploy = config.deploy.clone();
    let flags = overrides.apply(&mut deploy);
    let plan = Plan {
        target,
        config: &config,
        site,
        deploy,
        source,
        file: file.to_string(),
        flags,
    };
    check::check(&plan)?;
    match target {
        Target::Compose | Target::Swarm => compose::render(&plan),
        Target::K8s => k8s::render(&plan),
    }
}

fn names(config: &Config) -> String {
    config
        .site
        .iter()
        .map(|s| format!("{:?}", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the secret files go in the output directory of `target`.
pub fn secrets_dir(target: Target) -> &'static str {
    match target {
        Target::K8s => "base/secrets",
        Target::Compose | Target::Swarm => "secrets",
    }
}

/// Writes `files` under `out` (each written beside its place and renamed
/// in, so a file is never half-written), then creates the secrets the
/// target needs unless they exist.
pub fn write(
    target: Target,
    out: &Path,
    files: &[OutFile],
) -> Result<secrets::Created, RenderError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| RenderError::Io { path, source }
    };
    for f in files {
        let path = out.join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &f.text).map_err(io(&partial))?;
        std::fs::rename(&partial, &path).map_err(io(&path))?;
    }
    let owner = (target == Target::Compose).then_some(murakumo_image::UID);
    secrets::ensure(&out.join(secrets_dir(target)), owner)
}
