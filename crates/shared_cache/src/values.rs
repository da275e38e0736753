//! Values the edges share besides pages: named strings, some expiring, and
//! leads (one edge at a time does a thing for the fleet, such as ordering
//! a certificate). The edge's ACME client keeps its account, challenges
//! and certificates here (`murakumo_tls::acme::fleet`).
//!
//! Unlike page lookups, which go on without Redis, these calls report
//! their failure: the caller decides (ACME waits and retries rather than
//! have every edge order on its own).

use std::time::Duration;

use redis::Value;

use crate::SharedCache;

const NOT_CONNECTED: &str = "not connected to Redis (server.shared_cache)";
const NO_ANSWER: &str = "Redis did not answer within server.shared_cache.timeout";

impl SharedCache {
    /// The value named `name`, if any.
    pub async fn value(&self, name: &str) -> Result<Option<String>, String> {
        let i = &self.inner;
        let mut conn = i.link.connection().ok_or(NOT_CONNECTED)?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(i.keys.value(name));
        let v: Option<Value> = self.timed(cmd.query_async(&mut conn)).await;
        match v.ok_or(NO_ANSWER)? {
            Value::Nil => Ok(None),
            Value::BulkString(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| format!("{name}: not UTF-8")),
            other => Err(format!("{name}: unexpected answer {other:?}")),
        }
    }

    /// Sets the value named `name`, expiring after `ttl` if given.
    pub async fn set_value(
        &self,
        name: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), String> {
        let i = &self.inner;
        let mut conn = i.link.connection().ok_or(NOT_CONNECTED)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(i.keys.value(name)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        let v: Option<Value> = self.timed(cmd.query_async(&mut conn)).await;
        v.map(|_| ()).ok_or_else(|| NO_ANSWER.to_string())
    }

    /// Takes the lead named `name` for `hold`, or keeps it for `hold` more
    /// if this edge has it; `false` when another edge has it.
    pub async fn lead(&self, name: &str, hold: Duration) -> Result<bool, String> {
        let i = &self.inner;
        let mut conn = i.link.connection().ok_or(NOT_CONNECTED)?;
        let mut call = i.scripts.lead.key(i.keys.value(name));
        call.arg(&i.owner).arg(hold.as_millis().max(1) as u64);
        let v: Option<i64> = self.timed(call.invoke_async(&mut conn)).await;
        v.map(|n| n == 1).ok_or_else(|| NO_ANSWER.to_string())
    }

    /// Gives back the lead named `name`, if this edge has it.
    pub async fn give_back(&self, name: &str) {
        self.release_key(self.inner.keys.value(name)).await
    }
}
