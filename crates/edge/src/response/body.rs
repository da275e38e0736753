//! The response body type of the edge: nothing, bytes already in memory
//! (cache hits, small files), or a stream fed by a task through a bounded
//! channel (PHP output, large files), so that nothing large is buffered and a
//! client that goes away stops the producer.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

pub type Chunk = Result<Bytes, std::io::Error>;

pub enum Body {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Chunk>),
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }

    pub fn full(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        Body::Full(if b.is_empty() { None } else { Some(b) })
    }

    /// A streaming body and the sender its producer writes to.
    pub fn channel() -> (mpsc::Sender<Chunk>, Body) {
        let (tx, rx) = mpsc::channel(8);
        (tx, Body::Channel(rx))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Channel(rx) => rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Channel(_) => SizeHint::default(),
        }
    }
}
