//! `[site.cache]`: the page cache's lifetimes, memory and what it stores.

use std::time::Duration;

use serde::Deserialize;

use crate::units;
use crate::Invalid;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cache {
    pub enabled: bool,
    #[serde(with = "units::duration")]
    pub ttl: Duration,
    #[serde(with = "units::duration")]
    pub stale: Duration,
    #[serde(with = "units::size")]
    pub max_memory: u64,
    /// TTL of cached 404 pages, stored although WordPress sends them with
    /// `no-cache` (short: a page may be published at that URL; publishing
    /// purges it). `ttl_404` is its older name.
    #[serde(with = "units::duration", alias = "ttl_404")]
    pub not_found_ttl: Duration,
    /// Largest response body that is cached; larger ones stream through.
    #[serde(with = "units::size")]
    pub max_entry_size: u64,
    /// Cache RSS/Atom feeds (off by default: readers expect them fresh).
    pub feeds: bool,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            enabled: true,
            ttl: Duration::from_secs(600),
            stale: Duration::from_secs(3600),
            max_memory: 256 << 20,
            not_found_ttl: Duration::from_secs(60),
            max_entry_size: 8 << 20,
            feeds: false,
        }
    }
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
