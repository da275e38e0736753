//! The murakumo edge: HTTP in front of php-fpm.
//!
//! Request flow (see `handler`): site by Host → path normalised → guards →
//! rate limits → a fresh cached page (`cached`) → static file or PHP → page
//! cache fill, each fill the key's canonical request (`cached`, `cgi`) →
//! FastCGI pool (`php`).
//! Operations (`ops`): health, readiness, metrics, and `purge` (by URL,
//! prefix, tag, site) on their own listener.
//! Lifecycle (`server`): drain on SIGTERM, reload on SIGHUP.
//! HTTPS (`server`, `certificates`): TLS 1.3/1.2 with h2 and http/1.1,
//! certificates by SNI from files, self-signed or ACME; `forwarded`: the
//! real client behind trusted proxies.
//! Limits: `rate_limit` (login and per-site rates), `request_body` (bodies
//! read whole, bounded and timed, before PHP), `server` (timeouts and
//! connection caps, `SO_REUSEPORT` handover).
//! Scheduled work: `wp_cron` runs WordPress's tasks on a clock.
//!
//! The crate's face is [`Edge::new`] and [`run`]; every module is private.

mod admission;
mod body;
mod cached;
mod certificates;
mod cgi;
mod forwarded;
mod guard;
mod handler;
mod metrics;
mod ops;
mod path;
mod php;
mod proxy_protocol;
mod purge;
mod purge_fanout;
mod rate_limit;
mod request_body;
mod resolve;
mod router;
mod server;
mod site;
mod state;
mod static_files;
mod watchdog;
mod wp_cron;

pub use server::{run, ServeError};
pub use state::{Edge, StateError};
