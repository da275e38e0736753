//! Passing a purge on to the other edges of a fleet (`server.purge_fanout`).
//!
//! Each edge replica has its own page cache, and a purge from WordPress
//! reaches one of them. The edge that receives it purges itself, then
//! resolves every `host:port` of `purge_fanout` (a Kubernetes headless
//! Service or Swarm's `tasks.SERVICE` name resolves to one address per
//! replica) and sends the same purge to each address, marked with
//! [`FANOUT_HEADER`] so that the receivers do not pass it on again. The
//! sender's own address may be among them: purging twice is harmless.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// Marks a purge that another edge passed on; it is not passed on again.
pub const FANOUT_HEADER: &str = "x-murakumo-fanout";

/// Bound on resolving, connecting and answering, per peer.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// What the fan-out reached.
#[derive(Debug, Default)]
pub struct Report {
    /// Peer addresses that answered 2xx.
    pub reached: usize,
    /// Peers (or names) that failed, with why.
    pub failed: Vec<String>,
}

/// Sends `POST /purge?{query}` to every address of every peer.
pub async fn fan_out(peers: &[String], query: &str, token: Option<&str>) -> Report {
    let mut report = Report::default();
    let mut addrs = BTreeSet::new();
    for peer in peers {
        match tokio::time::timeout(PEER_TIMEOUT, tokio::net::lookup_host(peer.as_str())).await {
            Ok(Ok(found)) => addrs.extend(found),
            Ok(Err(e)) => report.failed.push(format!("{peer}: {e}")),
            Err(_) => report.failed.push(format!("{peer}: resolving timed out")),
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for addr in addrs {
        let query = query.to_string();
        let token = token.map(str::to_string);
        tasks.spawn(async move {
            let outcome =
                tokio::time::timeout(PEER_TIMEOUT, send(addr, &query, token.as_deref())).await;
            match outcome {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{addr}: {e}")),
                Err(_) => Err(format!("{addr}: no answer within {PEER_TIMEOUT:?}")),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => report.reached += 1,
            Ok(Err(e)) => report.failed.push(e),
            Err(e) => report.failed.push(format!("fan-out task: {e}")),
        }
    }
    report
}

async fn send(addr: SocketAddr, query: &str, token: Option<&str>) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("/purge?{query}"))
        .header(header::HOST, addr.to_string())
        .header(FANOUT_HEADER, "1");
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    // Read the (small) answer so the peer sees a clean exchange.
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}
