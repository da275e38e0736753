//! Who the client is and whether it came over HTTPS, when a load balancer
//! sits in front: `X-Forwarded-For` and `X-Forwarded-Proto` are believed
//! only from `server.trusted_proxies` (and the PROXY protocol header only
//! from them, in `proxy_protocol`). From anyone else these headers,
//! `Forwarded`/`X-Real-IP`, and the headers frameworks read to rebuild the
//! URL (`X-Forwarded-Host`, `X-Original-URL`, `X-Rewrite-URL`, …) are
//! removed before PHP sees them, so a plugin or a `wp-config.php` that
//! trusts them cannot be fooled by a client. (Page-cache fills send PHP no
//! client header at all: `crate::php::cgi::fill_params`.)
//!
//! The client is the right-most `X-Forwarded-For` address that is not a
//! trusted proxy (each proxy appends the address it saw), as nginx's
//! `real_ip_recursive on` does.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

use crate::conn::ConnInfo;

const SPOOFABLE: [&str; 18] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "forwarded",
    "x-real-ip",
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-original-url",
    "x-original-uri",
    "x-original-host",
    "x-rewrite-url",
    "x-host",
    "x-url-scheme",
    "front-end-https",
];

/// Whether `ip` (IPv4-mapped IPv6 counted as IPv4) is a trusted proxy.
pub fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    proxies.iter().any(|n| n.contains(&ip))
}

/// One of [`SPOOFABLE`], each of which starts with `x` or `f`: the
/// headers every request has (`host`, `accept`, `user-agent`, …) are ruled
/// out by their first byte, not by eighteen comparisons.
pub fn spoofable(name: &str) -> bool {
    matches!(name.as_bytes().first(), Some(b'x' | b'f')) && SPOOFABLE.contains(&name)
}

/// The connection as the client made it, seen through trusted proxies.
/// `seen` says whether one of the headers is [`spoofable`]: the front door
/// reads a request's headers in one pass, for this and the Host.
pub fn effective(
    conn: ConnInfo,
    headers: &mut HeaderMap,
    proxies: &[IpNet],
    seen: bool,
) -> ConnInfo {
    if !trusted(conn.remote.ip(), proxies) {
        if seen {
            for h in SPOOFABLE {
                headers.remove(h);
            }
        }
        return conn;
    }
    let mut out = conn;
    let mut chain: Vec<&str> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        if let Ok(s) = v.to_str() {
            chain.extend(s.split(',').map(str::trim).filter(|s| !s.is_empty()));
        }
    }
    for hop in chain.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        out.remote = SocketAddr::new(ip, conn.remote.port());
        if !trusted(ip, proxies) {
            break;
        }
    }
    let proto = headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .last()
        .map(|s| s.trim().to_ascii_lowercase());
    match proto.as_deref() {
        Some("https") => out.https = true,
        Some("http") => out.https = false,
        _ => {}
    }
    out
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`effective`], with the pass over the headers the front door makes.
    fn effective_of(conn: ConnInfo, headers: &mut HeaderMap, proxies: &[IpNet]) -> ConnInfo {
        let seen = headers.keys().any(|k| spoofable(k.as_str()));
        effective(conn, headers, proxies, seen)
    }

    #[test]
    fn every_spoofable_header_is_dropped_from_an_untrusted_client() {
        let mut headers = HeaderMap::new();
        for name in SPOOFABLE {
            headers.insert(name, "1.2.3.4".parse().unwrap());
        }
        headers.insert("x-custom", "kept".parse().unwrap());
        headers.insert("host", "kept".parse().unwrap());
        effective_of(conn("203.0.113.9:5000"), &mut headers, &[]);
        for name in SPOOFABLE {
            assert!(headers.get(name).is_none(), "{name} was kept");
        }
        assert_eq!(headers.len(), 2);
    }

    fn conn(remote: &str) -> ConnInfo {
        ConnInfo {
            remote: remote.parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            https: false,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn untrusted_peers_cannot_claim_anything() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "2.2.2.2"),
            ("forwarded", "for=3.3.3.3"),
            ("x-forwarded-host", "evil.test"),
            ("x-original-url", "/wp-admin/"),
            ("x-rewrite-url", "/wp-admin/"),
            ("front-end-https", "on"),
        ]);
        let c = effective_of(conn("203.0.113.9:5000"), &mut h, &proxies);
        assert_eq!(c.remote.ip().to_string(), "203.0.113.9");
        assert!(!c.https);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn right_most_untrusted_hop_is_the_client() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.4"),
            ("x-forwarded-for", "10.1.1.1:3456"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = effective_of(conn("10.0.0.2:5000"), &mut h, &proxies);
        assert_eq!(c.remote.ip().to_string(), "198.51.100.4");
        assert!(c.https);
        assert_eq!(
            h.get_all("x-forwarded-for").iter().count(),
            2,
            "kept for PHP"
        );

        // Garbage stops the walk at the last good hop.
        let mut h = headers(&[("x-forwarded-for", "nonsense, 198.51.100.5")]);
        let c = effective_of(conn("[::ffff:10.0.0.2]:5000"), &mut h, &proxies);
        assert_eq!(c.remote.ip().to_string(), "198.51.100.5");
        // No header: the proxy itself.
        let c = effective_of(conn("10.0.0.2:5000"), &mut HeaderMap::new(), &proxies);
        assert_eq!(c.remote.ip().to_string(), "10.0.0.2");
        // Only proxies in the chain: the left-most.
        let mut h = headers(&[("x-forwarded-for", "10.9.9.9, 10.8.8.8")]);
        let c = effective_of(conn("10.0.0.2:5000"), &mut h, &proxies);
        assert_eq!(c.remote.ip().to_string(), "10.9.9.9");
    }
}
