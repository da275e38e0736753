//! The murakumo edge: HTTP in front of php-fpm.
//!
//! Request flow (see `handler`): site by Host → path normalised → guards →
//! static file or PHP → page cache (`cached`) → FastCGI pool (`php`).
//! Operations (`ops`): health, readiness, metrics, purge on their own listener.
//! Lifecycle (`server`): drain on SIGTERM, reload on SIGHUP.
//! HTTPS (`server`, `certificates`): TLS 1.3/1.2 with h2 and http/1.1,
//! certificates by SNI from files, self-signed or ACME; `forwarded`: the
//! real client behind trusted proxies.
//! Limits: `rate_limit` (login and per-site rates), `request_body` (bodies
//! read whole, bounded and timed, before PHP), `server` (timeouts and
//! connection caps, `SO_REUSEPORT` handover).
//! Scheduled work: `wp_cron` runs WordPress's tasks on a clock.

pub mod admission;
pub mod body;
pub mod cached;
pub mod certificates;
pub mod cgi;
pub mod forwarded;
pub mod guard;
pub mod handler;
pub mod metrics;
pub mod ops;
pub mod path;
pub mod php;
pub mod proxy_protocol;
pub mod purge;
pub mod purge_fanout;
pub mod rate_limit;
pub mod request_body;
pub mod resolve;
pub mod router;
pub mod server;
pub mod site;
pub mod state;
pub mod static_files;
pub mod watchdog;
pub mod wp_cron;

pub use server::{run, ServeError};
pub use state::{Edge, StateError};
