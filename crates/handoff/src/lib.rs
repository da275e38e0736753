//! Connections handed over between processes on one node, so that the
//! process that serves them can be replaced while the ports stay open.
//!
//! On Swarm (and compose) an edge's container has its own network
//! namespace and its published port belongs to that one task: a new edge
//! cannot bind it until the old one is gone, and the gap refuses
//! connections. Here a small, rarely changing process on the host's
//! network, the keeper ([`keeper`]), owns the ports; edges connect to it
//! over a Unix socket on a volume they share and receive each accepted
//! connection's descriptor ([`receiver`]). Edges come and go (start-first
//! updates, restarts, crashes) without a refused connection, clients keep
//! their real addresses, and the keeper hands its own ports to its
//! successor the same way. A keeper stopped before its successor starts
//! (compose replaces containers stop-first) parks its ports with an edge,
//! which serves them and hands them to the next keeper. [`wire`] is the
//! protocol.

pub mod keeper;
pub mod receiver;
pub mod wire;

pub use receiver::{Handed, Next, Session};
pub use wire::Kind;
