//! The PROXY protocol v2 header that L4 load balancers (HAProxy, AWS NLB,
//! kube's cloud LBs) put before a connection's first byte to say who the
//! client is. Read only from `server.trusted_proxies`, and only when the
//! connection starts with its 12-byte signature, which no HTTP request or
//! TLS hello can start with; anyone else's bytes go to HTTP/TLS untouched.
//! Parsing is `ppp`'s; this module finds the header's end and bounds it.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::v2::{Addresses, Command, Header};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Fixed part: signature, version/command, family/protocol, length.
const FIXED: usize = 16;
/// Addresses (at most 216 bytes for unix) plus TLVs: generous, bounded.
const MAX_REST: usize = 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("PROXY header: not complete within {0:?}")]
    Timeout(Duration),
    #[error("PROXY header: {0} bytes of addresses and TLVs is too long")]
    TooLong(usize),
    #[error("PROXY header: {0}")]
    Parse(#[from] ppp::v2::ParseError),
}

/// If the connection starts with a PROXY v2 header, consumes it and
/// returns the client's address (`None` for a LOCAL header, a health check
/// by the balancer itself, or no header at all).
pub async fn read(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    match tokio::time::timeout(READ_TIMEOUT, read_inner(stream)).await {
        Ok(r) => r,
        Err(_) => Err(ProxyHeaderError::Timeout(READ_TIMEOUT)),
    }
}

async fn read_inner(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut peeked = [0u8; SIGNATURE.len()];
    loop {
        let n = stream.peek(&mut peeked).await?;
        if n == 0 || peeked[..n] != SIGNATURE[..n] {
            return Ok(None);
        }
        if n == SIGNATURE.len() {
            break;
        }
        // A partial signature: wait for the rest.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut buf = vec![0u8; FIXED];
    stream.read_exact(&mut buf).await?;
    let rest = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if rest > MAX_REST {
        return Err(ProxyHeaderError::TooLong(rest));
    }
    buf.resize(FIXED + rest, 0);
    stream.read_exact(&mut buf[FIXED..]).await?;
    parse(&buf)
}

/// The client address in a complete header.
pub fn parse(bytes: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let header = Header::try_from(bytes)?;
    if header.command == Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Unspecified | Addresses::Unix(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4_header(src: [u8; 4], port: u16) -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.extend([0x21, 0x11, 0, 12]);
        h.extend(src);
        h.extend([10, 0, 0, 1]);
        h.extend(port.to_be_bytes());
        h.extend(443u16.to_be_bytes());
        h
    }

    #[test]
    fn proxy_and_local_commands() {
        let h = v4_header([198, 51, 100, 7], 4242);
        assert_eq!(
            parse(&h).unwrap(),
            Some("198.51.100.7:4242".parse().unwrap())
        );
        let mut local = h.clone();
        local[12] = 0x20;
        assert_eq!(parse(&local).unwrap(), None);
        let mut bad = h;
        bad[12] = 0x11; // version 1 in a v2 header
        assert!(parse(&bad).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut h = SIGNATURE.to_vec();
            h.extend(&tail);
            let _ = parse(&h);
        }
    }
}
