//! The edge's end of the hand-off: connect to the keeper's socket, say
//! ready, receive connections; when draining, say so and take what the
//! keeper sent before its answer.

use std::io;
use std::path::Path;

use tokio::net::UnixStream;

use crate::wire::{self, Kind};

/// A connection the keeper handed over.
#[derive(Debug)]
pub struct Handed {
    pub kind: Kind,
    pub stream: std::net::TcpStream,
}

/// One link to a keeper.
pub struct Session {
    stream: UnixStream,
}

impl Session {
    /// Connects to the keeper at `path` and tells it to hand connections.
    pub async fn connect(path: &Path) -> io::Result<Session> {
        let stream = UnixStream::connect(path).await?;
        wire::send(&stream, &[wire::READY], &[]).await?;
        Ok(Session { stream })
    }

    /// The next connection; `None` when the keeper has answered a drain or
    /// is gone (then reconnect, unless draining).
    pub async fn next(&self) -> io::Result<Option<Handed>> {
        loop {
            let mut byte = [0u8; 1];
            let (n, mut fds) = wire::recv(&self.stream, &mut byte).await?;
            if n == 0 || byte[0] == wire::DRAINED {
                return Ok(None);
            }
            match (Kind::from_byte(byte[0]), fds.len()) {
                (Some(kind), 1) => {
                    let stream = std::net::TcpStream::from(fds.remove(0));
                    return Ok(Some(Handed { kind, stream }));
                }
                _ => {
                    // Not a message for an edge: whatever came is closed.
                    tracing::warn!(
                        byte = byte[0],
                        fds = fds.len(),
                        "unexpected message from the keeper"
                    );
                }
            }
        }
    }

    /// Asks for no more connections; [`Session::next`] then yields those
    /// already sent and `None`.
    pub async fn drain(&self) -> io::Result<()> {
        wire::send(&self.stream, &[wire::DRAIN], &[]).await
    }
}
