//! `[server.limits]`: what a client may cost the edge: timeouts against
//! slow clients, caps on connections. Every limit has a safe default.
//! (Request rates, set per site, are [`crate::rate`].)

use std::time::Duration;

use serde::Deserialize;

use crate::units;
use crate::Invalid;

/// `[server.limits]`: limits on connections and slow clients.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Time a client has to send a request's head, counted from when the
    /// connection is ready for it (slowloris). For HTTP/1.1 it is also how
    /// long an idle kept-alive connection stays open.
    #[serde(with = "units::duration")]
    pub header_timeout: Duration,
    /// Longest pause while a client sends a request body (slow POST).
    #[serde(with = "units::duration")]
    pub body_timeout: Duration,
    /// Longest time a client may leave a response unread before it is cut
    /// off (slow read).
    #[serde(with = "units::duration")]
    pub send_timeout: Duration,
    /// How long a connection with no request in progress stays open.
    #[serde(with = "units::duration")]
    pub idle_timeout: Duration,
    /// Open client connections, all listeners together; beyond it new
    /// connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// Open connections from one client address (a trusted proxy's own
    /// connections are not counted: they carry many clients).
    pub max_connections_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections: 16_384,
            max_connections_per_client: 256,
        }
    }
}

impl Limits {
    /// Caps of at least one, and one client never allowed every connection.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.max_connections == 0 || self.max_connections_per_client == 0 {
            return Err(Invalid::new(
                "server.limits",
                "max_connections and max_connections_per_client must be at least 1",
            ));
        }
        if self.max_connections_per_client > self.max_connections {
            return Err(Invalid::new(
                "server.limits.max_connections_per_client",
                format!(
                    "{} is above max_connections ({}); one client could take every connection",
                    self.max_connections_per_client, self.max_connections
                ),
            ));
        }
        Ok(())
    }
}
