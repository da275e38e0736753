//! Per-connection watch on what a client costs over time:
//! - [`Watchdog`] wraps the socket (under TLS) and cuts a client that
//!   leaves a response unread for `send_timeout` (slow read: a write that
//!   makes no progress that long fails the connection);
//! - [`Activity`] records when the connection last moved bytes, how many
//!   requests are in progress and, on HTTP/1, since when the request head
//!   being read has been arriving, so the server can close connections idle
//!   longer than `idle_timeout` or whose head takes longer than
//!   `header_timeout` (slowloris, however slowly it trickles), and can tell
//!   a fresh connection (no request yet) from an idle one when draining.
//!   This costs a clock read per read; hyper's own header timeout would
//!   arm and clear a timer for every request.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// What a connection has been doing.
pub struct Activity {
    epoch: Instant,
    /// Milliseconds after `epoch` when bytes last moved.
    last: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    cut: AtomicBool,
    /// Whether request heads are timed (HTTP/1; an HTTP/2 connection's
    /// control frames are no request heads).
    heads: AtomicBool,
    /// Milliseconds after `epoch`, plus one, when bytes of the request head
    /// being read first came; 0 while none is being read.
    head_since: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            heads: AtomicBool::new(false),
            head_since: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes came in: with no request in progress, they are a request
    /// head's, whose clock starts with its first bytes.
    fn received(&self) {
        let now = self.now_ms();
        self.last.store(now, Ordering::Relaxed);
        if self.heads.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(now + 1, Ordering::Relaxed);
        }
    }

    /// Times request heads from now on (HTTP/1 connections): the first
    /// one is awaited from now (a connection that sends nothing is timed
    /// like a slow head).
    pub fn time_heads(&self) {
        self.heads.store(true, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            self.head_since.store(self.now_ms() + 1, Ordering::Relaxed);
        }
    }

    /// How long the request head being read has been arriving, if one is.
    pub fn head_for(&self) -> Option<Duration> {
        match self.head_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(
                self.now_ms().saturating_sub(since - 1),
            )),
        }
    }

    /// How long no bytes moved and no request was in progress (zero while
    /// one is).
    pub fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
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
        self.head_since.store(0, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
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
        activity.touch();
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
                    self.activity.touch();
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
    fn a_head_is_timed_from_its_first_bytes_until_its_request_starts() {
        let a = Activity::new();
        a.received();
        assert_eq!(a.head_for(), None, "heads are timed on HTTP/1 only");
        // The first head is awaited from the start.
        a.time_heads();
        assert!(a.head_for().is_some());
        a.received();
        std::thread::sleep(Duration::from_millis(30));
        // More bytes of the same head do not restart its clock.
        a.received();
        assert!(a.head_for().unwrap() >= Duration::from_millis(30));
        let guard = a.request();
        assert_eq!(a.head_for(), None);
        // A body's bytes, while the request is in progress, are no head.
        a.received();
        assert_eq!(a.head_for(), None);
        drop(guard);
        a.received();
        assert!(a.head_for().unwrap() < Duration::from_millis(30));
    }

    #[test]
    fn in_flight_requests_are_never_idle() {
        let a = Activity::new();
        let guard = a.request();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(a.idle_for(), Duration::ZERO);
        drop(guard);
        std::thread::sleep(Duration::from_millis(20));
        assert!(a.idle_for() >= Duration::from_millis(20));
        assert_eq!(a.requests(), 1);
    }
}
