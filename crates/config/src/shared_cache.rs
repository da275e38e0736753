//! `[server.shared_cache]`: the page cache every edge shares (L2), on Redis.
//!
//! ```toml
//! [server.shared_cache]
//! redis = "redis://redis:6379/0"      # or "unix:/run/redis/redis.sock"
//! password_file = "/run/secrets/redis_password"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::units;
use crate::Invalid;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedCache {
    /// `redis://HOST[:PORT][/DB]` or `unix:/PATH` (`?db=N` for a database).
    pub redis: String,
    /// A file holding the Redis password (`requirepass`, or an ACL user's
    /// when the URL names one: `redis://USER@HOST`). Never in the URL.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// How long one lookup may take before the edge answers without it.
    #[serde(default = "default_timeout", with = "units::duration")]
    pub timeout: Duration,
    /// Every key this edge writes starts with this (several fleets may
    /// share one Redis).
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_timeout() -> Duration {
    Duration::from_millis(100)
}

fn default_prefix() -> String {
    "murakumo".into()
}

impl SharedCache {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        const KEY: &str = "server.shared_cache.redis";
        match address_problem(&self.redis) {
            None => {}
            Some(Problem::Password) => {
                return Err(Invalid::new(
                    KEY,
                    "holds a password; put it in server.shared_cache.password_file (never logged, never in a world-readable file)",
                ))
            }
            Some(Problem::Shape) => {
                return Err(Invalid::new(
                    KEY,
                    format!(
                        "{:?} is not a Redis address; write \"redis://HOST:6379/0\" or \"unix:/run/redis/redis.sock\"",
                        self.redis
                    ),
                ))
            }
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(5) {
            return Err(Invalid::new(
                "server.shared_cache.timeout",
                "must be above 0 and at most 5s (a lookup that takes longer is slower than PHP); the default is \"100ms\"",
            ));
        }
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if self.prefix.is_empty() || !self.prefix.bytes().all(plain) {
            return Err(Invalid::new(
                "server.shared_cache.prefix",
                format!(
                    "{:?}: use letters, digits, '-' and '_' (the default is \"murakumo\")",
                    self.prefix
                ),
            ));
        }
        Ok(())
    }
}

enum Problem {
    Shape,
    Password,
}

/// What is wrong with a Redis address, if anything.
fn address_problem(url: &str) -> Option<Problem> {
    if let Some(path) = url.strip_prefix("unix:") {
        let path = path.split('?').next().unwrap_or("");
        return (!path.starts_with('/') || path.len() < 2).then_some(Problem::Shape);
    }
    let Some(rest) = url.strip_prefix("redis://") else {
        return Some(Problem::Shape);
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = match authority.rsplit_once('@') {
        Some((user, _)) if user.contains(':') => return Some(Problem::Password),
        Some((_, hostport)) => hostport,
        None => authority,
    };
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => return Some(Problem::Shape),
        },
        None => match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let db_ok = rest[authority.len()..]
        .strip_prefix('/')
        .map(|db| db.split('?').next().unwrap_or(""))
        .is_none_or(|db| db.is_empty() || db.parse::<u16>().is_ok());
    (host.is_empty() || !port_ok || !db_ok).then_some(Problem::Shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in [
            "redis://redis",
            "redis://redis:6379",
            "redis://redis:6379/0",
            "redis://cache@redis:6379/2",
            "redis://[::1]:6379/0",
            "unix:/run/redis/redis.sock",
            "unix:/run/redis/redis.sock?db=1",
        ] {
            assert!(address_problem(ok).is_none(), "{ok}");
        }
        for bad in [
            "redis:6379",
            "http://redis:6379",
            "redis://:6379",
            "redis://redis:0",
            "redis://redis:port",
            "redis://redis/zero",
            "unix:relative.sock",
            "tcp://redis",
        ] {
            assert!(
                matches!(address_problem(bad), Some(Problem::Shape)),
                "{bad}"
            );
        }
        assert!(matches!(
            address_problem("redis://user:secret@redis:6379"),
            Some(Problem::Password)
        ));
        assert!(matches!(
            address_problem("redis://:secret@redis"),
            Some(Problem::Password)
        ));
    }
}
