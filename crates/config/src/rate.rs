//! Request rates of a site (`login_limit`, `rate_limit`): "5/min", "10/s",
//! "100/h", or "off".

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A request rate: `count` requests per `per`, allowed in a burst of
/// `count`, then one every `per / count`. Written "5/min", "10/s", "100/h".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// The time one request "costs": the steady interval between requests.
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => return write!(f, "{}/{}s", self.count, self.per.as_secs()),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let bad = || format!("{s:?} is not a rate; write e.g. \"5/min\", \"10/s\" or \"100/h\"");
    let (count, unit) = s.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(format!(
            "{s:?} allows nothing; use \"off\" to disable the limit instead"
        ));
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    Ok(Rate { count, per })
}

/// A rate limit that can be switched off: "5/min" or "off" (or `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit(pub Option<Rate>);

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(false) => Ok(RateLimit(None)),
            Raw::Flag(true) => Err(serde::de::Error::custom(
                "true is not a rate; write e.g. \"5/min\", or \"off\"",
            )),
            Raw::Text(t) if t.trim() == "off" => Ok(RateLimit(None)),
            Raw::Text(t) => parse_rate(&t)
                .map(|r| RateLimit(Some(r)))
                .map_err(|e| serde::de::Error::custom(format!("{e}, or \"off\""))),
        }
    }
}

/// Login attempts (`POST /wp-login.php`, `/xmlrpc.php`) per client address.
pub fn default_login_limit() -> RateLimit {
    RateLimit(Some(Rate {
        count: 5,
        per: Duration::from_secs(60),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let r = parse_rate("5/min").unwrap();
        assert_eq!((r.count, r.per), (5, Duration::from_secs(60)));
        assert_eq!(r.interval(), Duration::from_secs(12));
        assert_eq!(r.to_string(), "5/min");
        assert_eq!(parse_rate(" 10 / s ").unwrap().per, Duration::from_secs(1));
        assert_eq!(parse_rate("100/h").unwrap().to_string(), "100/h");
        for bad in ["5", "5/day", "x/min", "0/s", "-1/s", "/s"] {
            assert!(parse_rate(bad).is_err(), "{bad} accepted");
        }
    }
}
