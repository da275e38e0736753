//! The one reading of a php-fpm address in `murakumo.toml` (`php`,
//! `admin_php`): `unix:/absolute/path.sock` or `host:port`. Validation
//! refuses anything else with the fix to write; the edge builds its FastCGI
//! pool members from what this returns.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhpAddress {
    /// A unix socket, by absolute path.
    Unix(PathBuf),
    /// `host:port` (a name, an IPv4 address or a bracketed IPv6 one).
    Tcp(String),
}

impl PhpAddress {
    pub fn parse(s: &str) -> Result<PhpAddress, String> {
        let refuse = || {
            format!("{s:?} is not a php-fpm address; write \"unix:/absolute/path.sock\" or \"host:port\"")
        };
        if let Some(path) = s.strip_prefix("unix:") {
            return if path.starts_with('/') {
                Ok(PhpAddress::Unix(PathBuf::from(path)))
            } else {
                Err(refuse())
            };
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(PhpAddress::Tcp(s.to_string()))
            }
            _ => Err(refuse()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms() {
        assert_eq!(
            PhpAddress::parse("unix:/run/a.sock"),
            Ok(PhpAddress::Unix("/run/a.sock".into()))
        );
        assert_eq!(
            PhpAddress::parse("127.0.0.1:9000"),
            Ok(PhpAddress::Tcp("127.0.0.1:9000".into()))
        );
        assert_eq!(
            PhpAddress::parse("[::1]:9000"),
            Ok(PhpAddress::Tcp("[::1]:9000".into()))
        );
        for bad in [
            "unix:",
            "unix:run/a.sock",
            "localhost",
            "h:99999",
            ":9000",
            "",
        ] {
            assert!(PhpAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
