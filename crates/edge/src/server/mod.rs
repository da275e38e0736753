//! The server around the pipeline: [`serve`] runs the edge on listeners it
//! is given until a shutdown future resolves, then drains; [`run`] wraps it
//! with binding the configured addresses and the process's signals. Tests
//! call `serve` directly, on listeners of their own.
//!
//! - [`listen`]: sockets (`SO_REUSEPORT` handover), fd limit, accept loop;
//! - [`connection`]: one client connection (PROXY, TLS, h1/h2, caps, cuts);
//! - [`serve`](serve()): serving and draining;
//! - [`lifecycle`]: binding, signals, reload;
//! - [`watchdog`], [`proxy_protocol`] (and [`crate::admission`]): what a
//!   connection is checked against;
//! - [`gate`]: the connection's timer and stop signal, polled only when
//!   they woke its task.

mod connection;
mod error;
mod gate;
mod handoff;
mod lifecycle;
mod listen;
mod proxy_protocol;
mod serve;
mod watchdog;

pub use error::ServeError;
pub use lifecycle::run;
pub use serve::{serve, Listeners};
