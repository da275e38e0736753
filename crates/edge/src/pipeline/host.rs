//! The Host header, read once ([`read_host`], by the front door's
//! `unambiguous`): checked to be a name (or address) and a port, nothing
//! more, and its name and port as the router, the cache key and redirects
//! compare them.

/// A Host's name as routes, cache keys and redirects compare it
/// (lowercase, no trailing dot: `murakumo_cache::key::host_name`), and the
/// port it names; read once, by the front door.
#[derive(Debug, PartialEq)]
pub struct HostName {
    /// The name's length in the Host as sent, when that is the name;
    /// otherwise the name, made canonical.
    name: Result<usize, Box<str>>,
    pub port: Option<u16>,
}

impl HostName {
    /// The name; `host` is the Host it was read from.
    pub fn name<'a>(&'a self, host: &'a str) -> &'a str {
        match &self.name {
            Ok(len) => host.get(..*len).unwrap_or_default(),
            Err(name) => name,
        }
    }
}

/// `name`, `name:port`, `[v6]` or `[v6]:port`; a name of letters, digits,
/// `-`, `_` and `.`; a port of 1 to 65535. `None`: not a Host. One walk over
/// the bytes checks it and finds its name and port.
pub fn read_host(host: &[u8]) -> Option<HostName> {
    let (name, port) = match host.iter().rposition(|&b| b == b':') {
        Some(i) if !host.starts_with(b"[") || host[..i].ends_with(b"]") => {
            (&host[..i], Some(&host[i + 1..]))
        }
        _ => (host, None),
    };
    // A port is 1 to 65535: `:99999` would otherwise name the default port
    // in cache keys while PHP saw the digits.
    let port = match port {
        None => None,
        Some(p) if p.is_empty() || p.len() > 5 => return None,
        Some(p) => {
            let mut n = 0u32;
            for &b in p {
                if !b.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + u32::from(b - b'0');
            }
            Some(u16::try_from(n).ok().filter(|&n| n > 0)?)
        }
    };
    let upper = match name.strip_prefix(b"[").and_then(|n| n.strip_suffix(b"]")) {
        Some(v6) => {
            if v6.is_empty()
                || !v6
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
            {
                return None;
            }
            v6.iter().any(u8::is_ascii_uppercase)
        }
        // Every request's Host: a table, not a chain of tests per byte.
        None => {
            let mut upper = false;
            for &b in name {
                match NAME_BYTES[b as usize] {
                    Byte::Not => return None,
                    Byte::Upper => upper = true,
                    Byte::Name => {}
                }
            }
            if name.is_empty() {
                return None;
            }
            upper
        }
    };
    let len = name.len() - name.iter().rev().take_while(|&&b| b == b'.').count();
    let name = match upper {
        false => Ok(len),
        // The bytes are ASCII: checked above.
        true => Err(String::from_utf8_lossy(&name[..len])
            .to_ascii_lowercase()
            .into_boxed_str()),
    };
    Some(HostName { name, port })
}

#[derive(Clone, Copy)]
enum Byte {
    Not,
    Name,
    Upper,
}

/// The bytes a host name may hold: letters, digits, `-`, `_` and `.`.
const NAME_BYTES: [Byte; 256] = {
    let mut table = [Byte::Not; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_uppercase() {
            Byte::Upper
        } else if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.' {
            Byte::Name
        } else {
            Byte::Not
        };
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_and_ports_only() {
        for good in [
            "wp.test",
            "WP.test:8080",
            "localhost:18443",
            "127.0.0.1",
            "[::1]:8443",
            "[::1]",
            "a_b.example.",
            "wp.test:65535",
            "wp.test:080",
            "WP.Test.:8443",
            "Wp.Test..",
            "[::ABCD]:80",
            "[::abcd]",
        ] {
            let read = read_host(good.as_bytes()).unwrap_or_else(|| panic!("{good}"));
            // The name and port keys and routes compare (the cache's own
            // reading of a Host).
            assert_eq!(
                read.name(good),
                murakumo_cache::key::host_name(good),
                "{good}"
            );
            assert_eq!(read.port, murakumo_cache::key::host_port(good), "{good}");
        }
        for bad in [
            "evil.example/foo?",
            "evil.example/foo?:18443",
            "a b",
            "user@host",
            "host:",
            "host:99999x",
            "host:99999",
            "host:65536",
            "host:0",
            "",
            "[::1",
            "host#frag",
            "h\\x",
        ] {
            assert_eq!(read_host(bad.as_bytes()), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever a client sends as Host, the name and port read once
        /// here are the cache key's and the router's reading of it.
        #[test]
        fn a_host_read_once_is_read_as_keys_and_routes_read_it(
            host in "(\\[[0-9a-fA-F:.]{0,6}\\]|[a-zA-Z0-9._-]{0,8})(:[0-9]{0,6})?|[ -~]{0,12}"
        ) {
            if let Some(read) = read_host(host.as_bytes()) {
                proptest::prop_assert_eq!(read.name(&host), &*murakumo_cache::key::host_name(&host));
                proptest::prop_assert_eq!(read.port, murakumo_cache::key::host_port(&host));
            }
        }
    }
}
