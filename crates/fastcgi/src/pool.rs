//! Keep-alive connections to the members of one php-fpm pool.
//!
//! - Each member has a bounded number of connections (`max_conns`). Keep it at
//!   or below php-fpm's `pm.max_children`: with `FCGI_KEEP_CONN` an idle kept
//!   connection pins a php-fpm worker.
//! - A request takes the member with the fewest outstanding requests among
//!   healthy ones, reuses its most recently idle connection or opens one;
//!   a request that asks for a fresh connection closes one idle connection
//!   of the member first (it pins a worker the new one needs).
//! - A member that refuses connections is marked down for `down_for` and
//!   skipped; the request moves to another member (nothing was sent yet).
//! - When no member accepts, the request waits and tries again, but only
//!   until `restart_wait` after some member last accepted a connection: a
//!   php-fpm restarting, or its container being replaced, costs waiting,
//!   not a 502; a php-fpm that stays gone gets 502s at once after that.
//! - A connection is returned to the pool only when its request ended cleanly
//!   ([`PooledConnection::release`]); dropping it closes the connection, which is
//!   also how an abandoned request is aborted in php-fpm.
//! - Starvation guard: with `FCGI_KEEP_CONN` an idle kept connection pins a
//!   php-fpm worker, so if `max_conns` exceeds `pm.max_children` a new
//!   connection can sit in php-fpm's listen backlog while workers wait on our
//!   idle ones. A fresh connection with no answer after [`STALL`] is taken
//!   for such a case: the member's idle connections are closed, and finished
//!   ones are closed instead of kept until it is answered. A slow script on a
//!   fresh connection costs at most some reuse, never correctness.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::connection::{Address, Connection, Event};
use crate::params::Params;
use crate::Error;

/// How long a fresh connection may wait for its first byte before the
/// starvation guard frees pinned workers.
pub const STALL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Requests in flight per member. Connections follow: a new one is
    /// opened only when none is idle, so their number stays within this too.
    pub max_conns: usize,
    pub connect_timeout: Duration,
    /// How long a member that refused a connection is skipped.
    pub down_for: Duration,
    /// Idle connections older than this are closed instead of reused, and
    /// by [`Pool::close_expired`], which the edge calls every few seconds.
    /// Below php-fpm's `request_terminate_timeout` (65 s as `murakumo up`
    /// and the image run it): php-fpm times a kept connection waiting for
    /// its next request as a request, and kills its worker past that.
    pub idle_timeout: Duration,
    /// How long a request waits for a free connection before giving up.
    pub queue_timeout: Duration,
    /// Requests that may wait for a free connection at once; more are
    /// refused at once ([`PoolError::QueueFull`]), so a saturated pool
    /// cannot gather an unbounded crowd of waiting requests.
    pub max_queue: usize,
    /// How long after the last accepted connection requests wait for a
    /// member to accept again (see the module doc); zero: never wait.
    pub restart_wait: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_conns: 16,
            connect_timeout: Duration::from_secs(2),
            down_for: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
            queue_timeout: Duration::from_secs(30),
            max_queue: 128,
            restart_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no php-fpm member accepted a connection (last: {addr}: {source})")]
    Unavailable { addr: String, source: io::Error },
    #[error("all php-fpm connections stayed busy for {0:?}")]
    Saturated(Duration),
    #[error("all php-fpm connections are busy and {0} requests already wait")]
    QueueFull(usize),
    #[error("the pool has no members")]
    Empty,
}

struct Member {
    addr: Address,
    idle: Mutex<Vec<(Connection, Instant)>>,
    permits: Arc<Semaphore>,
    outstanding: AtomicUsize,
    /// Fresh connections waiting longer than [`STALL`] for a first byte.
    stalled: AtomicUsize,
    down_until: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data
    // inconsistent (plain pushes and pops), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Member {
    fn is_up(&self, now: Instant) -> bool {
        lock(&self.down_until).is_none_or(|t| t <= now)
    }
}

/// Counters exported as metrics.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub opened: AtomicU64,
    pub reused: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Requests refused because the pool stayed busy or its queue was full.
    pub saturated: AtomicU64,
}

/// The health of one member, for `/metrics` and `/readyz`.
#[derive(Debug, Clone)]
pub struct MemberStatus {
    pub address: String,
    pub up: bool,
    pub outstanding: usize,
    pub idle: usize,
}

/// A pool of php-fpm members.
pub struct Pool {
    members: Vec<Arc<Member>>,
    config: PoolConfig,
    stats: Arc<PoolStats>,
    next: AtomicUsize,
    /// Requests waiting for a connection slot.
    queued: AtomicUsize,
    /// When a member last accepted a connection or served a kept one
    /// (or the pool was made), as nanoseconds since `born`.
    last_accepted: AtomicU64,
    born: Instant,
}

impl Pool {
    pub fn new(addresses: Vec<Address>, config: PoolConfig) -> Pool {
        let members = addresses
            .into_iter()
            .map(|addr| {
                Arc::new(Member {
                    addr,
                    idle: Mutex::new(Vec::new()),
                    permits: Arc::new(Semaphore::new(config.max_conns.max(1))),
                    outstanding: AtomicUsize::new(0),
                    stalled: AtomicUsize::new(0),
                    down_until: Mutex::new(None),
                })
            })
            .collect();
        Pool {
            members,
            config,
            stats: Arc::new(PoolStats::default()),
            next: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            last_accepted: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    pub fn status(&self) -> Vec<MemberStatus> {
        let now = Instant::now();
        self.members
            .iter()
            .map(|m| MemberStatus {
                address: m.addr.to_string(),
                up: m.is_up(now),
                outstanding: m.outstanding.load(Ordering::Relaxed),
                idle: lock(&m.idle).len(),
            })
            .collect()
    }

    /// Members in the order to try: healthy ones by fewest outstanding
    /// requests (ties rotate), then those marked down, soonest retry first.
    fn candidates(&self) -> Vec<Arc<Member>> {
        let now = Instant::now();
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Sort key: (down, outstanding if up, retry time if down, rotation).
        let mut order: Vec<(bool, usize, Option<Instant>, usize)> = (0..n)
            .map(|k| {
                let m = &self.members[(start + k) % n];
                let down = (*lock(&m.down_until)).filter(|t| *t > now);
                let outstanding = if down.is_some() {
                    0
                } else {
                    m.outstanding.load(Ordering::Relaxed)
                };
                (down.is_some(), outstanding, down, k)
            })
            .collect();
        order.sort_unstable();
        order
            .into_iter()
            .map(|(_, _, _, k)| self.members[(start + k) % n].clone())
            .collect()
    }

    /// Whether some member accepts a connection now, without taking a
    /// request slot: readiness must not fail because PHP is busy (php-fpm's
    /// listen backlog accepts while every worker works).
    pub async fn probe(&self) -> Result<(), PoolError> {
        let mut last_err = None;
        for member in self.candidates() {
            let connect = tokio::time::timeout(
                self.config.connect_timeout,
                Connection::connect(&member.addr),
            );
            match connect.await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => last_err = Some((member.addr.to_string(), e)),
                Err(_) => {
                    last_err = Some((
                        member.addr.to_string(),
                        io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                    ))
                }
            }
        }
        match last_err {
            Some((addr, source)) => Err(PoolError::Unavailable { addr, source }),
            None => Err(PoolError::Empty),
        }
    }

    /// A request slot on `member`: at once if one is free, else after
    /// waiting in the bounded queue.
    async fn wait_for_slot(&self, member: &Member) -> Result<OwnedSemaphorePermit, PoolError> {
        if let Ok(p) = member.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        let max = self.config.max_queue;
        if self.queued.fetch_add(1, Ordering::AcqRel) >= max {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.stats.saturated.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::QueueFull(max));
        }
        let waited = tokio::time::timeout(
            self.config.queue_timeout,
            member.permits.clone().acquire_owned(),
        )
        .await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(PoolError::Empty),
            Err(_) => {
                self.stats.saturated.fetch_add(1, Ordering::Relaxed);
                Err(PoolError::Saturated(self.config.queue_timeout))
            }
        }
    }

    /// Requests waiting for a connection now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Takes a connection: an idle one if the chosen member has one (unless
    /// `fresh`), else a new one. Moves to the next member when a connect
    /// fails; when none accepts, tries again within the restart window.
    pub async fn checkout(&self, fresh: bool) -> Result<PooledConnection, PoolError> {
        loop {
            match self.checkout_once(fresh).await {
                Err(e @ PoolError::Unavailable { .. }) => {
                    let last = Duration::from_nanos(self.last_accepted.load(Ordering::Relaxed));
                    let until = self.born + last + self.config.restart_wait;
                    let Some(left) = until.checked_duration_since(Instant::now()) else {
                        return Err(e);
                    };
                    tokio::time::sleep(left.min(Duration::from_millis(200))).await;
                }
                other => return other,
            }
        }
    }

    async fn checkout_once(&self, fresh: bool) -> Result<PooledConnection, PoolError> {
        let mut last_err = None;
        for member in self.candidates() {
            member.outstanding.fetch_add(1, Ordering::Relaxed);
            let guard = Outstanding(member.clone());
            let permit = self.wait_for_slot(&member).await?;
            if !fresh {
                if let Some(conn) = self.take_idle(&member) {
                    self.accepted();
                    self.stats.reused.fetch_add(1, Ordering::Relaxed);
                    return Ok(PooledConnection::new(conn, guard, permit, true));
                }
            } else {
                // A fresh connection replaces a kept one: each kept
                // connection pins a php-fpm worker, and the new one needs a
                // free worker to be answered.
                let mut idle = lock(&member.idle);
                if !idle.is_empty() {
                    idle.remove(0);
                }
            }
            let connect = tokio::time::timeout(
                self.config.connect_timeout,
                Connection::connect(&member.addr),
            );
            let result = match connect.await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
            };
            match result {
                Ok(conn) => {
                    *lock(&member.down_until) = None;
                    self.accepted();
                    self.stats.opened.fetch_add(1, Ordering::Relaxed);
                    return Ok(PooledConnection::new(conn, guard, permit, false));
                }
                Err(e) => {
                    self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(member = %member.addr, error = %e, "php-fpm member refused a connection; skipping it for {:?}", self.config.down_for);
                    *lock(&member.down_until) = Some(Instant::now() + self.config.down_for);
                    lock(&member.idle).clear();
                    last_err = Some((member.addr.to_string(), e));
                }
            }
        }
        match last_err {
            Some((addr, source)) => Err(PoolError::Unavailable { addr, source }),
            None => Err(PoolError::Empty),
        }
    }

    /// PHP answers: the restart window starts again from now.
    fn accepted(&self) {
        let since = self.born.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.last_accepted.fetch_max(since, Ordering::Relaxed);
    }

    /// Closes every member's idle connections older than `idle_timeout`:
    /// with no request to take them, they would stay open until php-fpm
    /// kills their workers. Returns how many were closed.
    pub fn close_expired(&self) -> usize {
        let now = Instant::now();
        self.members
            .iter()
            .map(|m| self.drop_expired(&mut lock(&m.idle), now))
            .sum()
    }

    /// Drops the idle connections older than `idle_timeout` (the oldest
    /// are at the front); how many.
    fn drop_expired(&self, idle: &mut Vec<(Connection, Instant)>, now: Instant) -> usize {
        let expired = idle
            .iter()
            .take_while(|(_, t)| now.duration_since(*t) > self.config.idle_timeout)
            .count();
        idle.drain(..expired);
        expired
    }

    fn take_idle(&self, member: &Member) -> Option<Connection> {
        let mut idle = lock(&member.idle);
        self.drop_expired(&mut idle, Instant::now());
        // Newest first; skip those php-fpm has closed (max_requests, idle kill).
        while let Some((conn, _)) = idle.pop() {
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        None
    }
}

/// Decrements a member's outstanding count when a request is done with it.
struct Outstanding(Arc<Member>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection owned by one request. Call [`PooledConnection::release`] after
/// [`Event::End`] to keep it; dropping it closes the connection.
pub struct PooledConnection {
    conn: Option<Connection>,
    member: Outstanding,
    _permit: OwnedSemaphorePermit,
    reused: bool,
    /// A fresh connection that has sent a request and seen no answer yet.
    waiting_first_byte: bool,
    /// Counted in the member's `stalled`.
    stalled: bool,
}

impl PooledConnection {
    fn new(
        conn: Connection,
        member: Outstanding,
        permit: OwnedSemaphorePermit,
        reused: bool,
    ) -> Self {
        PooledConnection {
            conn: Some(conn),
            member,
            _permit: permit,
            reused,
            waiting_first_byte: false,
            stalled: false,
        }
    }

    pub fn address(&self) -> &Address {
        &self.member.0.addr
    }

    fn conn(&mut self) -> &mut Connection {
        // Only `release` takes the connection, and it consumes self.
        self.conn
            .as_mut()
            .expect("connection present until release")
    }

    pub async fn begin(&mut self, params: &Params) -> Result<(), Error> {
        self.waiting_first_byte = !self.reused;
        self.conn().begin(params).await
    }

    pub async fn write_stdin(&mut self, data: &[u8]) -> Result<(), Error> {
        self.conn().write_stdin(data).await
    }

    pub async fn end_stdin(&mut self) -> Result<(), Error> {
        self.conn().end_stdin().await
    }

    pub async fn next_event(&mut self) -> Result<Event, Error> {
        while self.waiting_first_byte && !self.stalled {
            // Reading is cancel-safe: bytes already read stay buffered.
            if let Ok(ev) = tokio::time::timeout(STALL, self.conn().next_event()).await {
                self.waiting_first_byte = false;
                return ev;
            }
            // Only idle connections can pin the worker this one waits for;
            // with none, PHP is just slow: keep waiting.
            let member = &self.member.0;
            let mut idle = lock(&member.idle);
            if !idle.is_empty() {
                tracing::warn!(member = %member.addr, "a new php-fpm connection got no answer within {STALL:?} while {} idle ones may pin every worker; closing them (is php_max_conns above pm.max_children?)", idle.len());
                idle.clear();
                drop(idle);
                self.stalled = true;
                member.stalled.fetch_add(1, Ordering::Relaxed);
            }
        }
        let ev = self.conn().next_event().await;
        self.waiting_first_byte = false;
        self.unstall();
        ev
    }

    /// The next event if already buffered (no I/O); see
    /// [`Connection::buffered_event`].
    pub fn buffered_event(&mut self) -> Result<Option<Event>, Error> {
        let ev = self.conn().buffered_event()?;
        if ev.is_some() {
            self.waiting_first_byte = false;
            self.unstall();
        }
        Ok(ev)
    }

    fn unstall(&mut self) {
        if self.stalled {
            self.stalled = false;
            self.member.0.stalled.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Returns the connection to the pool after its request ended.
    pub fn release(mut self) {
        self.unstall();
        let member = self.member.0.clone();
        if let Some(conn) = self.conn.take() {
            if !conn.has_leftover() && member.stalled.load(Ordering::Relaxed) == 0 {
                lock(&member.idle).push((conn, Instant::now()));
            }
        }
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        self.unstall();
    }
}

#[cfg(test)]
mod tests {
    //! The restart window against plain Unix listeners: only connecting
    //! matters here (no FastCGI is spoken); the end-to-end tests restart a
    //! real php-fpm.
    use super::*;

    fn pool(path: &std::path::Path, restart_wait: Duration) -> Pool {
        Pool::new(
            vec![Address::Unix(path.to_path_buf())],
            PoolConfig {
                restart_wait,
                ..PoolConfig::default()
            },
        )
    }

    #[tokio::test]
    async fn a_request_waits_for_php_that_comes_back_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("php.sock");
        let p = pool(&path, Duration::from_secs(10));
        let later = path.clone();
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let l = tokio::net::UnixListener::bind(&later).unwrap();
            let _conn = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        assert!(p.checkout(true).await.is_ok(), "waited for the member");
        server.abort();
    }

    /// A responder of one request on a Unix socket (our own record codec: a
    /// test double where php-fpm is not the point, only what the pool does
    /// with the connection after): it answers, keeps the connection, and
    /// reports when the pool closes it.
    async fn answer_once_then_wait_for_close(
        listener: tokio::net::UnixListener,
        closed: tokio::sync::oneshot::Sender<()>,
    ) {
        use crate::record;
        use bytes::BytesMut;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        loop {
            s.read_buf(&mut buf).await.unwrap();
            let mut stdin_done = false;
            while let Some(r) = record::decode(&mut buf).unwrap() {
                stdin_done |= r.kind == record::STDIN && r.content.is_empty();
            }
            if stdin_done {
                break;
            }
        }
        let mut out = BytesMut::new();
        record::put_stream(&mut out, record::STDOUT, 1, b"Status: 200 OK\r\n\r\nok");
        record::put_stream(&mut out, record::STDOUT, 1, b"");
        record::put_end_request(&mut out, 1, 0, record::REQUEST_COMPLETE);
        s.write_all(&out).await.unwrap();
        let mut rest = [0u8; 64];
        while s.read(&mut rest).await.unwrap_or(0) > 0 {}
        let _ = closed.send(());
    }

    #[tokio::test]
    async fn idle_connections_past_their_time_are_closed_without_a_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("php.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let (closed_tx, closed) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(answer_once_then_wait_for_close(listener, closed_tx));
        let p = Pool::new(
            vec![Address::Unix(path.clone())],
            PoolConfig {
                idle_timeout: Duration::from_millis(200),
                ..PoolConfig::default()
            },
        );
        let mut conn = p.checkout(false).await.unwrap();
        let mut params = Params::new();
        params.insert("REQUEST_METHOD", "GET");
        conn.begin(&params).await.unwrap();
        conn.end_stdin().await.unwrap();
        while !matches!(conn.next_event().await.unwrap(), Event::End { .. }) {}
        conn.release();
        assert_eq!(p.status()[0].idle, 1, "kept for the next request");
        assert_eq!(p.close_expired(), 0, "not idle long enough yet");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(p.close_expired(), 1);
        assert_eq!(p.status()[0].idle, 0);
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("php saw its connection closed")
            .unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn without_a_window_or_after_it_a_gone_php_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("php.sock");
        let none = pool(&path, Duration::ZERO);
        assert!(matches!(
            none.checkout(true).await,
            Err(PoolError::Unavailable { .. })
        ));
        let short = pool(&path, Duration::from_millis(300));
        assert!(matches!(
            short.checkout(true).await,
            Err(PoolError::Unavailable { .. })
        ));
        // The window has passed: still an error, not a hang.
        assert!(short.checkout(true).await.is_err());
    }
}
