//! The response body type of the edge: nothing, bytes already in memory
//! (cache hits, small files), or a stream fed by a task through a bounded
//! channel (PHP output, large files), so that nothing large is buffered and a
//! client that goes away stops the producer.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use murakumo_cache::encoding::{Encoding, Level, StreamEncoder};
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

    /// The body in `encoding`, compressed on the fly ([`Level::Fast`]): a
    /// body in memory at once, a stream piece by piece as it arrives (each
    /// piece flushed, so a client sees what PHP has sent so far).
    pub fn encoded(self, encoding: Encoding) -> Body {
        let Some(mut enc) = StreamEncoder::new(encoding, Level::Fast) else {
            return self;
        };
        match self {
            Body::Full(None) => Body::Full(None),
            Body::Full(Some(b)) => {
                let whole = enc.push(&b).and_then(|head| {
                    let tail = enc.finish()?;
                    let mut out = BytesMut::with_capacity(head.len() + tail.len());
                    out.extend_from_slice(&head);
                    out.extend_from_slice(&tail);
                    Ok(out.freeze())
                });
                // Writing to memory does not fail; if it did, the body
                // would stay as it was.
                Body::full(whole.unwrap_or(b))
            }
            Body::Channel(mut rx) => {
                let (tx, body) = Body::channel();
                tokio::spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        match chunk.and_then(|b| enc.push(&b)) {
                            Ok(piece) if piece.is_empty() => {}
                            Ok(piece) => {
                                if tx.send(Ok(piece)).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        }
                    }
                    match enc.finish() {
                        Ok(tail) => {
                            let _ = tx.send(Ok(tail)).await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                        }
                    }
                });
                body
            }
        }
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
