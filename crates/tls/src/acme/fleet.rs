//! What the edges of one fleet share for ACME, so that a site's certificate
//! is ordered once and every edge serves it and answers the CA.
//!
//! With several edges behind one name, the CA's HTTP-01 request reaches
//! whichever edge the network picks, and each edge ordering on its own
//! would run into the CA's rate limits. So, through a [`Fleet`] (the
//! edges' Redis, `server.shared_cache`):
//!
//! - the ordering edge publishes each challenge's answer
//!   ([`challenge_key`]); an edge asked for a token it does not hold looks
//!   there;
//! - one edge at a time orders a site's certificate: the one holding the
//!   site's lead ([`lead_key`]) while it orders; after a failure the fleet
//!   waits for the next attempt ([`retry_key`], expiring then), so it
//!   retries at the pace of one edge (a forced renewal does not wait);
//! - the certificate and its key are stored for every edge
//!   ([`certificate_key`]): an edge adopts a newer one within
//!   [`FLEET_POLL`], and one that starts without its own takes it at once.
//!   If the store loses it (Redis restarted without saving, or evicted it),
//!   the edges that have it put it back; an edge that has none waits a
//!   poll for them before it orders;
//! - the ACME account is shared too ([`ACCOUNT_KEY`]), so restarted or new
//!   edges do not each make one.
//!
//! The trait is a small store with expiring keys and leads, so this crate
//! does not depend on Redis; the edge implements it over its shared cache.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, as the trait's methods return (the trait is used as an
/// object).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The store the edges of a fleet share. Every call has its own short
/// timeout; an error is a message for the log and the status.
pub trait Fleet: Send + Sync + 'static {
    /// The value under `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> Pending<'a, Result<Option<String>, String>>;
    /// Sets `key`, expiring after `ttl` if given.
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Option<Duration>,
    ) -> Pending<'a, Result<(), String>>;
    /// Takes the lead named `key` for `hold`, or keeps it for `hold` more if
    /// this edge has it; false if another edge has it.
    fn lead<'a>(&'a self, key: &'a str, hold: Duration) -> Pending<'a, Result<bool, String>>;
    /// Gives the lead named `key` back, if this edge has it.
    fn release<'a>(&'a self, key: &'a str) -> Pending<'a, ()>;
}

/// How often an edge looks for a certificate another edge obtained.
pub const FLEET_POLL: Duration = Duration::from_secs(10);
/// How often an edge whose certificate is due, and which does not lead,
/// looks again for the leader's certificate (or for the lead).
pub const FOLLOW_POLL: Duration = Duration::from_secs(2);
/// How long a lead lasts while its edge orders (an order takes seconds; a
/// leader that died frees it after this).
pub const LEAD_HOLD: Duration = Duration::from_secs(300);
/// How long a published challenge answer lasts.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(600);

pub const ACCOUNT_KEY: &str = "acme:account";

pub fn challenge_key(token: &str) -> String {
    format!("acme:challenge:{token}")
}

pub fn lead_key(site: &str) -> String {
    format!("acme:{site}:lead")
}

pub fn retry_key(site: &str) -> String {
    format!("acme:{site}:retry")
}

pub fn certificate_key(site: &str) -> String {
    format!("acme:{site}:certificate")
}

/// A certificate as the fleet stores it: the chain and the key, PEM.
pub fn encode_certificate(chain_pem: &str, key_pem: &str) -> String {
    serde_json::json!({ "chain": chain_pem, "key": key_pem }).to_string()
}

/// The chain and the key of a stored certificate; `None` if malformed.
pub fn decode_certificate(doc: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(doc).ok()?;
    Some((
        v.get("chain")?.as_str()?.to_string(),
        v.get("key")?.as_str()?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_certificates_read_back_and_junk_is_refused() {
        let doc = encode_certificate("-----BEGIN CERTIFICATE-----\n\"x\"\n", "KEY");
        assert_eq!(
            decode_certificate(&doc),
            Some((
                "-----BEGIN CERTIFICATE-----\n\"x\"\n".to_string(),
                "KEY".to_string()
            ))
        );
        assert_eq!(decode_certificate("{\"chain\": 1}"), None);
        assert_eq!(decode_certificate("not json"), None);
        assert_eq!(lead_key("shop"), "acme:shop:lead");
    }
}
