//! The murakumo edge: HTTP in front of php-fpm.
//!
//! - [`server`](crate::server): listeners, connections (TLS, h1/h2, PROXY,
//!   caps), drain and reload; [`serve`] is the in-process entry point,
//!   [`run`] wraps it with binding and signals.
//! - `pipeline`: one request, step by step (its module doc lists them),
//!   from the front door to the page cache, static files and PHP.
//! - `php`: php-fpm exchanges, CGI environments, request bodies.
//! - `ops`: health, readiness, metrics, purge and ACME renewal on their own
//!   listener.
//! - `state` and `site`: what every connection shares (the sites, swapped
//!   whole on reload); `conn` and `response`: small types the others
//!   share, importing nothing of the rest (`forwarded` only `conn`).
//! - `wp_cron`: WordPress's scheduled tasks, run on a clock.
//!
//! ARCHITECTURE.md at the repository root has the import rules. The crate's
//! face is [`Edge::new`], [`serve`] (with [`Listeners`]) and [`run`], and
//! their errors ([`StateError`], [`ServeError`] and what they carry:
//! [`SiteError`], [`CertError`]); every module is private.

mod admission;
mod certificates;
mod conn;
mod file_cache;
mod forwarded;
mod metrics;
mod ops;
mod php;
mod pipeline;
mod rate_limit;
mod response;
mod router;
mod server;
mod site;
mod state;
mod wp_cron;

pub use certificates::CertError;
pub use server::{run, serve, Listeners, ServeError};
pub use site::SiteError;
pub use state::{Edge, StateError};
