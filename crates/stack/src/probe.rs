//! Minimal HTTP GET for health probes of our own edge and php-fpm (readiness
//! during `up`, `status`, and `murakumo probe`, the containers'
//! healthcheck). Written here because a probe needs a status line and
//! nothing else; an HTTP client crate would be most of the build for one
//! line of use.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a probe failed, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("resolving {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("talking to {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} answered {1:?}, not HTTP")]
    NotHttp(String, String),
}

/// A connection to `hostport` (`127.0.0.1:9000`, `edge:8080`) within `timeout`.
pub fn connect(hostport: &str, timeout: Duration) -> Result<TcpStream, ProbeError> {
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| ProbeError::Resolve(hostport.to_string(), e))?
        .next()
        .ok_or_else(|| ProbeError::NoAddress(hostport.to_string()))?;
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| ProbeError::Connect(addr, e))?;
    let io = |e| ProbeError::Io(hostport.to_string(), e);
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    Ok(stream)
}

/// The status code of `GET path` at `hostport`.
pub fn get_status(hostport: &str, path: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let mut stream = connect(hostport, timeout)?;
    let io = |e| ProbeError::Io(hostport.to_string(), e);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nUser-Agent: murakumo-probe\r\n\r\n"
    )
    .map_err(io)?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        let n = stream.read(&mut head[len..]).map_err(io)?;
        if n == 0 {
            break;
        }
        len += n;
    }
    parse_status(&head[..len]).ok_or_else(|| {
        let text = String::from_utf8_lossy(&head[..len]);
        ProbeError::NotHttp(
            format!("{hostport}{path}"),
            text.lines().next().unwrap_or("").to_string(),
        )
    })
}

/// The status code of `GET path` at `addr`, or `None` if it did not answer.
pub fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    get_status(&addr.to_string(), path, timeout).ok()
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let mut parts = text.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() < 3 {
        return None;
    }
    code.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status(b"HTTP/1.1 2"), None);
    }
}
