//! `murakumo probe`: the healthcheck of the compose and Swarm services, for
//! an image that carries no curl.
//!
//! HTTP/1.1 `GET` over a plain TCP stream, reading only the status line:
//! the peers are our own edge and php-fpm on loopback or the pod network.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

fn connect(hostport: &str, timeout: Duration) -> anyhow::Result<TcpStream> {
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("resolving {hostport}"))?
        .next()
        .with_context(|| format!("{hostport} has no address"))?;
    let s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

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

/// GETs `url` and returns the status code, or an error naming what failed.
fn get(url: &str, timeout: Duration) -> anyhow::Result<u16> {
    let (hostport, path) = split_url(url)?;
    let mut s = connect(hostport, timeout)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nUser-Agent: murakumo-probe\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = s
        .read(&mut head)
        .with_context(|| format!("reading {url}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    match status.parse::<u16>() {
        Ok(code) if status.len() == 3 => Ok(code),
        _ => bail!(
            "{url} answered {:?}, not HTTP",
            line.lines().next().unwrap_or("")
        ),
    }
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
    match get(target, timeout)? {
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
