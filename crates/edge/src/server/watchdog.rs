//! Per-connection watch on what a client costs over time:
//! - [`Watchdog`] wraps the socket (under TLS) and cuts a client that
//!   leaves a response unread for `send_timeout` (slow read: a write that
//!   makes no progress that long fails the connection);
//! - [`Activity`] records that the connection moved bytes, how many
//!   requests are in progress and, on HTTP/1, whether a request head is
//!   being read; [`Seen`], the connection loop's own view of it, tells when
//!   it saw each of these change, so the server can close connections idle
//!   longer than `idle_timeout` or whose head takes longer than
//!   `header_timeout` (slowloris, however slowly it trickles), and can tell
//!   a fresh connection (no request yet) from an idle one when draining.
//!
//! No clock is read per read, write or request (three clock reads a
//! request were 360 instructions of a cache hit's, `bench/instructions.sh`):
//! bytes moving bump a counter, and the loop, which wakes at least every
//! quarter of the shorter of `header_timeout` and `idle_timeout`, reads the
//! clock once a wake and dates what changed since its last look by that
//! wake. A change is so dated late by at most one wake: an idle connection
//! is closed, and a slow head dropped, at most that quarter after their
//! time, never before it.
//! hyper's own header timeout would arm and clear a timer for every
//! request.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// What a connection has been doing, as its socket and its requests
/// record it (no clock: [`Seen`] dates it).
pub struct Activity {
    /// Bumped whenever bytes move or a request ends; only its changes
    /// count. A plain load and store, not an atomic add: the connection's
    /// task moves its bytes, and two bumps racing still change it.
    moved: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    cut: AtomicBool,
    /// Whether request heads are timed (HTTP/1; an HTTP/2 connection's
    /// control frames are no request heads).
    heads: AtomicBool,
    /// Bytes of a request head have come and its request has not started.
    head: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            moved: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            heads: AtomicBool::new(false),
            head: AtomicBool::new(false),
        })
    }

    fn bump(&self) {
        let n = self.moved.load(Ordering::Relaxed);
        self.moved.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Bytes came in: with no request in progress, they are a request
    /// head's.
    fn received(&self) {
        self.bump();
        if self.heads.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Acquire) == 0
            && !self.head.load(Ordering::Relaxed)
        {
            self.head.store(true, Ordering::Relaxed);
        }
    }

    /// Times request heads from now on (HTTP/1 connections): the first
    /// one is awaited from the loop's first look (a connection that sends
    /// nothing is timed like a slow head).
    pub fn time_heads(&self) {
        self.heads.store(true, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            self.head.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the connection was cut for leaving a response unread.
    pub fn was_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// Requests started on this connection so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }

    /// Marks a request in progress until the returned guard is dropped
    /// (when its response has been sent or abandoned).
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        // Its head is whole.
        self.head.store(false, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// The connection loop's view of its [`Activity`]: when it last saw bytes
/// move, and since when it has seen the request head now being read. Each
/// [`Seen::look`] dates what changed since the last one by its `now`.
pub struct Seen {
    moved: u64,
    moved_at: Instant,
    /// The requests started when the head being read was first seen (a
    /// later head has a higher count), and when.
    head: Option<(u64, Instant)>,
}

impl Seen {
    /// A view that has seen nothing move before `now`.
    pub fn new(activity: &Activity, now: Instant) -> Seen {
        Seen {
            moved: activity.moved.load(Ordering::Relaxed),
            moved_at: now,
            head: None,
        }
    }

    /// Takes in what changed since the last look, as of `now`.
    pub fn look(&mut self, activity: &Activity, now: Instant) {
        let moved = activity.moved.load(Ordering::Relaxed);
        if moved != self.moved {
            self.moved = moved;
            self.moved_at = now;
        }
        self.head = if activity.head.load(Ordering::Relaxed) {
            let requests = activity.requests();
            match self.head {
                Some((seen, since)) if seen == requests => Some((seen, since)),
                _ => Some((requests, now)),
            }
        } else {
            None
        };
    }

    /// How long the request head being read has been seen arriving, if
    /// one is.
    pub fn head_for(&self, now: Instant) -> Option<Duration> {
        self.head
            .map(|(_, since)| now.saturating_duration_since(since))
    }

    /// How long no bytes were seen moving and no request was in progress
    /// (zero while one is).
    pub fn idle_for(&self, activity: &Activity, now: Instant) -> Duration {
        if activity.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        now.saturating_duration_since(self.moved_at)
    }
}

pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.bump();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress until it
/// has been sent (or dropped).
pub struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(body: B, in_flight: InFlight) -> Self {
        Tracked {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket of one client connection, with a stall limit on writes.
pub struct Watchdog<IO> {
    io: IO,
    activity: Arc<Activity>,
    send_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> Watchdog<IO> {
    pub fn new(io: IO, activity: Arc<Activity>, send_timeout: Duration) -> Self {
        Watchdog {
            io,
            activity,
            send_timeout,
            stalled: None,
        }
    }

    /// Turns a pending write into an error once it has stalled for
    /// `send_timeout`; progress resets the clock.
    fn on_write(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                self.stalled = None;
                if n > 0 {
                    self.activity.bump();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let timeout = self.send_timeout;
                let stall = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(stall.as_mut().poll(cx));
                self.activity.cut.store(true, Ordering::Relaxed);
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the client read nothing for {timeout:?}"),
                )))
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watchdog<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watchdog<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.on_write(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.on_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_reader_that_stops_reading_is_cut() {
        // A socket pair whose far end never reads: writes fill the buffers,
        // then stall.
        let (near, _far) = tokio::io::duplex(1024);
        let activity = Activity::new();
        let mut w = Watchdog::new(near, activity.clone(), Duration::from_millis(100));
        let chunk = vec![0u8; 4096];
        let err = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Err(e) = w.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .expect("the stalled write was not cut");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(activity.was_cut());
    }

    #[tokio::test]
    async fn a_slow_but_steady_reader_is_not_cut() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut w = Watchdog::new(near, Activity::new(), Duration::from_millis(300));
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 1024 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += far.read(&mut buf).await.unwrap();
            }
            total
        });
        w.write_all(&[1u8; 1024]).await.expect("steady reader cut");
        assert_eq!(reader.await.unwrap(), 1024);
    }

    #[test]
    fn a_head_is_timed_from_when_it_is_first_seen_until_its_request_starts() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let a = Activity::new();
        let mut seen = Seen::new(&a, t0);
        a.received();
        seen.look(&a, t0);
        assert_eq!(seen.head_for(t0), None, "heads are timed on HTTP/1 only");
        // The first head is awaited from the first look.
        a.time_heads();
        seen.look(&a, t0);
        assert_eq!(seen.head_for(t0 + ms(10)), Some(ms(10)));
        // More bytes of the same head do not restart its clock.
        a.received();
        seen.look(&a, t0 + ms(30));
        assert_eq!(seen.head_for(t0 + ms(30)), Some(ms(30)));
        let guard = a.request();
        seen.look(&a, t0 + ms(40));
        assert_eq!(seen.head_for(t0 + ms(40)), None);
        // A body's bytes, while the request is in progress, are no head.
        a.received();
        seen.look(&a, t0 + ms(50));
        assert_eq!(seen.head_for(t0 + ms(50)), None);
        drop(guard);
        // The next head is timed from when it is seen.
        a.received();
        seen.look(&a, t0 + ms(60));
        assert_eq!(seen.head_for(t0 + ms(70)), Some(ms(10)));
        // Heads that came and went between two looks (a busy keep-alive
        // connection) are not one slow head: a later head is timed anew.
        let guard = a.request();
        drop(guard);
        a.received();
        seen.look(&a, t0 + ms(100));
        assert_eq!(seen.head_for(t0 + ms(100)), Some(Duration::ZERO));
    }

    #[test]
    fn idle_time_counts_from_the_look_that_saw_bytes_last_move() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let a = Activity::new();
        let mut seen = Seen::new(&a, t0);
        seen.look(&a, t0 + ms(20));
        assert_eq!(seen.idle_for(&a, t0 + ms(20)), ms(20));
        a.received();
        seen.look(&a, t0 + ms(30));
        assert_eq!(seen.idle_for(&a, t0 + ms(50)), ms(20));
        // Nothing moved: the time is not reset.
        seen.look(&a, t0 + ms(60));
        assert_eq!(seen.idle_for(&a, t0 + ms(60)), ms(30));
    }

    #[test]
    fn in_flight_requests_are_never_idle() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let a = Activity::new();
        let mut seen = Seen::new(&a, t0);
        let guard = a.request();
        seen.look(&a, t0 + ms(20));
        assert_eq!(seen.idle_for(&a, t0 + ms(20)), Duration::ZERO);
        // A request's end counts as a move.
        drop(guard);
        seen.look(&a, t0 + ms(40));
        assert_eq!(seen.idle_for(&a, t0 + ms(60)), ms(20));
        assert_eq!(a.requests(), 1);
    }
}
