//! Per-client request rates: login attempts and the optional per-site limit.
//!
//! GCRA (the "generic cell rate algorithm"): one timestamp per client, the
//! theoretical arrival time of its next request; a request is allowed while
//! that time is less than the rate's period ahead of now. It allows `count`
//! requests at once, then one per `period / count`, and says exactly when
//! the next one will be allowed (`Retry-After`). Clients are kept in a
//! bounded cache that forgets them after a quiet period, so a flood of
//! addresses cannot grow memory. IPv6 clients are counted per /64, the
//! block one subscriber usually holds.
//!
//! Written here rather than taken from `governor`: the state is one atomic
//! per client, and the cache (`moka`) is one the edge already uses.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use murakumo_config::Rate;

/// Clients remembered per limiter; the least recently seen are forgotten.
const MAX_CLIENTS: u64 = 200_000;

pub struct Limiter {
    pub rate: Rate,
    interval: u64,
    tolerance: u64,
    epoch: Instant,
    clients: moka::sync::Cache<IpAddr, Arc<AtomicU64>>,
}

/// The key a client is counted under.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        let interval = nanos(rate.interval()).max(1);
        Limiter {
            rate,
            interval,
            tolerance: nanos(rate.per).saturating_sub(interval),
            epoch: Instant::now(),
            clients: moka::sync::Cache::builder()
                .max_capacity(MAX_CLIENTS)
                .time_to_idle(rate.per)
                .build(),
        }
    }

    /// Counts a request from `ip`: allowed, or refused with the time until
    /// the next one would be allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, nanos(self.epoch.elapsed()))
    }

    fn check_at(&self, ip: IpAddr, now: u64) -> Result<(), Duration> {
        let tat = self
            .clients
            .get_with(client_key(ip), || Arc::new(AtomicU64::new(0)));
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let start = current.max(now);
            let ahead = start - now;
            if ahead > self.tolerance {
                return Err(Duration::from_nanos(ahead - self.tolerance));
            }
            match tat.compare_exchange_weak(
                current,
                start + self.interval,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }
}

/// Whole seconds for `Retry-After`, rounded up (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn five_a_minute() -> Limiter {
        Limiter::new(murakumo_config::parse_rate("5/min").unwrap())
    }

    #[test]
    fn burst_then_one_per_interval() {
        let l = five_a_minute();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert!(l.check_at(ip, 100 * S).is_ok());
        }
        assert_eq!(l.check_at(ip, 100 * S), Err(Duration::from_secs(12)));
        assert_eq!(l.check_at(ip, 105 * S), Err(Duration::from_secs(7)));
        assert!(l.check_at(ip, 112 * S).is_ok());
        assert!(l.check_at(ip, 112 * S).is_err());
        // A quiet minute restores the whole burst.
        for _ in 0..5 {
            assert!(l.check_at(ip, 200 * S).is_ok());
        }
    }

    #[test]
    fn clients_are_counted_apart_and_v6_per_64() {
        let l = five_a_minute();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..5 {
            l.check_at(a, S).unwrap();
        }
        assert!(l.check_at(a, S).is_err());
        assert!(l.check_at(b, S).is_ok());
        // Same /64, different interface identifiers: one client.
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let v6c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        for _ in 0..5 {
            l.check_at(v6a, S).unwrap();
        }
        assert!(l.check_at(v6b, S).is_err());
        assert!(l.check_at(v6c, S).is_ok());
        // An IPv4-mapped address is the IPv4 client.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(l.check_at(mapped, S).is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(12)), 12);
        assert_eq!(retry_after_secs(Duration::from_millis(11_001)), 12);
    }
}
