//! `murakumo.toml`: the one configuration that `serve` runs, `up` generates
//! and `render` turns into manifests.
//!
//! Loading is two steps: [`serde`] checks the shape (unknown keys are errors,
//! so a typo never silently falls back to a default), then [`Config::validate`]
//! checks meaning (addresses parse, names are unique, durations agree). Every
//! error names the file, the key, what is wrong and what would be right.

//!
//! One module a section, each validating itself: [`server`](Server)
//! (`[server]`, with [`limits`](Limits) for `[server.limits]` and
//! [`shared_cache`](SharedCache) for `[server.shared_cache]`),
//! [rates](Rate) (a site's `login_limit` and `rate_limit`),
//! [`site`](Site) (`[[site]]`, with its [`cache`](Cache), [`tls`](SiteTls),
//! [`guard`](Guard), [`db`](DbUrl), [hosts](HostPattern) and
//! [php](PhpAddress)),
//! [`acme`](Acme) and [`deploy`](Deploy); `units` parses durations, sizes
//! and networks.

mod acme;
mod cache;
mod db_url;
mod deploy;
mod guard;
mod host_pattern;
mod limits;
mod php_address;
mod rate;
mod server;
mod shared_cache;
mod site;
mod tls;
mod units;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use acme::{Acme, LETS_ENCRYPT};
pub use cache::Cache;
pub use db_url::DbUrl;
pub use deploy::{DbKind, Deploy, DeployDb, IngressMode};
pub use guard::Guard;
pub use host_pattern::HostPattern;
pub use limits::Limits;
pub use php_address::PhpAddress;
pub use rate::{parse_rate, Rate, RateLimit};
pub use server::{Hsts, LogFormat, Server};
pub use shared_cache::SharedCache;
pub use site::Site;
pub use tls::{SiteTls, TlsSource};
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

/// What is wrong with one key, before the file is named.
#[derive(Debug)]
pub(crate) struct Invalid {
    key: String,
    message: String,
}

impl Invalid {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    fn in_file(self, file: &str) -> ConfigError {
        ConfigError::Invalid {
            file: file.to_string(),
            key: self.key,
            message: self.message,
        }
    }
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

    /// Checks what the schema cannot (addresses, uniqueness, consistency),
    /// each section by itself, then the sites against the server and
    /// `[acme]`.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        self.check().map_err(|e| e.in_file(file))
    }

    fn check(&self) -> Result<(), Invalid> {
        self.server.validate()?;
        if let Some(acme) = &self.acme {
            acme.validate()?;
        }
        if self.site.is_empty() {
            return Err(Invalid::new(
                "site",
                "no [[site]] is configured; add one with name, hosts, root and php",
            ));
        }
        let (mut names, mut hosts) = (HashSet::new(), HashSet::new());
        for (i, site) in self.site.iter().enumerate() {
            site.validate(i, &mut names, &mut hosts, &self.server, self.acme.as_ref())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
