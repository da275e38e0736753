//! `murakumo probe`: the healthcheck of the compose and Swarm services, for
//! an image that carries no curl.
//!
//! HTTP/1.1 `GET` over a plain TCP stream, reading only the status line
//! (`murakumo_stack::probe`, which `up` and `status` use too): the peers
//! are our own edge and php-fpm on loopback or the pod network.

use std::time::Duration;

use anyhow::{bail, Context};
use murakumo_stack::probe::{connect, get_status};

/// `http://HOST:PORT/PATH` → (`HOST:PORT`, `/PATH`).
fn split_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?}: expected http://HOST:PORT/PATH"))?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if hostport.is_empty() {
        bail!("{url:?}: no host");
    }
    Ok((hostport, if path.is_empty() { "/" } else { path }))
}

/// `http://HOST:PORT/PATH` must answer 2xx, `tcp:HOST:PORT` must accept a
/// connection, within 3 s.
pub fn probe(target: &str) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(3);
    if let Some(hostport) = target.strip_prefix("tcp:") {
        connect(hostport, timeout)?;
        return Ok(());
    }
    if !target.starts_with("http://") {
        bail!("{target:?}: probe http://HOST:PORT/PATH or tcp:HOST:PORT");
    }
    let (hostport, path) = split_url(target)?;
    match get_status(hostport, path, timeout).with_context(|| format!("probing {target}"))? {
        200..=299 => Ok(()),
        code => bail!("{target} answered {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9090/readyz").unwrap(),
            ("127.0.0.1:9090", "/readyz")
        );
        assert_eq!(split_url("http://edge:8080").unwrap(), ("edge:8080", "/"));
        assert!(split_url("https://edge/").is_err());
        assert!(split_url("http:///x").is_err());
    }
}
