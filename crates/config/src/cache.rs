//! `[site.cache]`: the page cache's lifetimes, memory and what it stores.

use std::time::Duration;

use serde::Deserialize;

use crate::units;
use crate::Invalid;

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

fn yes() -> bool {
    true
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

impl Cache {
    /// `key` is the site's `cache` key (`site[0].cache`).
    pub(crate) fn validate(&self, key: &str) -> Result<(), Invalid> {
        if self.max_entry_size > self.max_memory {
            return Err(Invalid::new(
                format!("{key}.max_entry_size"),
                "is larger than cache.max_memory",
            ));
        }
        Ok(())
    }
}
