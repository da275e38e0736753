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

/// What the keeper sent.
#[derive(Debug)]
pub enum Next {
    Connection(Handed),
    /// The keeper stops with no successor: its listening sockets, for
    /// this edge to hold until the next keeper takes them
    /// ([`crate::keeper::Prepared::parked`]); answer with [`Session::held`].
    Parked(Vec<(Kind, std::net::TcpListener)>),
    /// The keeper has answered a drain, or is gone.
    End,
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

    /// The next message: a connection, listening sockets to hold, or the
    /// end (then reconnect, unless draining).
    pub async fn next(&self) -> io::Result<Next> {
        loop {
            let mut byte = [0u8; 1];
            let (n, mut fds) = wire::recv(&self.stream, &mut byte).await?;
            if n == 0 || byte[0] == wire::DRAINED {
                return Ok(Next::End);
            }
            if byte[0] == wire::PARK {
                // The count and the kinds follow, without descriptors.
                let mut count = [0u8; 1];
                wire::recv(&self.stream, &mut count).await?;
                let mut kinds = vec![0u8; usize::from(count[0])];
                let mut got = 0;
                while got < kinds.len() {
                    let (n, _) = wire::recv(&self.stream, &mut kinds[got..]).await?;
                    if n == 0 {
                        return Ok(Next::End);
                    }
                    got += n;
                }
                if kinds.len() != fds.len() {
                    return Err(io::Error::other(
                        "the keeper's listeners came without their kinds",
                    ));
                }
                let listeners = kinds
                    .iter()
                    .zip(fds)
                    .map(|(k, fd)| {
                        let kind = Kind::from_byte(*k).ok_or_else(|| {
                            io::Error::other(format!("unknown listener kind {k}"))
                        })?;
                        Ok((kind, std::net::TcpListener::from(fd)))
                    })
                    .collect::<io::Result<_>>()?;
                return Ok(Next::Parked(listeners));
            }
            match (Kind::from_byte(byte[0]), fds.len()) {
                (Some(kind), 1) => {
                    let stream = std::net::TcpStream::from(fds.remove(0));
                    return Ok(Next::Connection(Handed { kind, stream }));
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

    /// Tells the keeper that parked its listeners here that this edge holds
    /// them (its own socket is at the path now).
    pub async fn held(&self) -> io::Result<()> {
        wire::send(&self.stream, &[wire::KEPT], &[]).await
    }
}
