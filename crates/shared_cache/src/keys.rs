//! Where things live in Redis. Every key starts with the configured prefix
//! and the site's name (letters, digits, `-`, `_`: it cannot hold `:`):
//!
//! - `PREFIX:SITE:p:KEY`: a page (a hash: `s` the stamp its fill began
//!   at, `u` its target, `t` its tags, `b` the entry's bytes), expiring at
//!   the end of its stale window;
//! - `PREFIX:SITE:lease:KEY`: who renders the page now, expiring by itself
//!   if its holder dies;
//! - `PREFIX:SITE:index`: the site's clock and the stamps of its purges;
//! - `PREFIX:purges`: the channel purges are announced on;
//! - `PREFIX:v:NAME`: a value the edges share besides pages (see
//!   `values`: ACME's account, challenges, leads and certificates).
//!
//! `KEY` is the cache key as a URL (`https://example.com/2024/hello/`).

use murakumo_cache::CacheKey;

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn page(&self, key: &CacheKey) -> String {
        format!("{}:{}:p:{key}", self.prefix, key.site)
    }

    pub(crate) fn lease(&self, key: &CacheKey) -> String {
        format!("{}:{}:lease:{key}", self.prefix, key.site)
    }

    pub(crate) fn index(&self, site: &str) -> String {
        format!("{}:{site}:index", self.prefix)
    }

    pub(crate) fn channel(&self) -> String {
        format!("{}:purges", self.prefix)
    }

    pub(crate) fn value(&self, name: &str) -> String {
        format!("{}:v:{name}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_site_and_the_url() {
        let k = Keys::new("murakumo");
        let key = CacheKey::new("blog".into(), true, "Example.com:443", "/a b/", Some("p=1"));
        assert_eq!(
            k.page(&key),
            "murakumo:blog:p:https://example.com/a%20b/?p=1"
        );
        assert_eq!(
            k.lease(&key),
            "murakumo:blog:lease:https://example.com/a%20b/?p=1"
        );
        assert_eq!(k.index("blog"), "murakumo:blog:index");
        assert_eq!(k.channel(), "murakumo:purges");
        assert_eq!(k.value("acme:account"), "murakumo:v:acme:account");
    }
}
