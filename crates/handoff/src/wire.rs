//! The hand-off protocol: one-byte messages on a Unix stream socket, a
//! connection's descriptor attached to the message that hands it over
//! (`SCM_RIGHTS`). One message per `sendmsg`, and the receiver reads one
//! byte per `recvmsg`, so a descriptor always arrives with its own byte
//! (the kernel never merges data that carries descriptors).
//!
//! | from → to | byte | descriptors | meaning |
//! |---|---|---|---|
//! | edge → keeper | `R` | | ready: hand me connections |
//! | keeper → edge | `H` / `S` | 1 | a client connection, plain HTTP / for TLS |
//! | edge → keeper | `D` | | draining: hand me no more |
//! | keeper → edge | `A` | | answer to `D`: nothing more follows |
//! | successor → keeper | `T` | | take over: give me your listeners |
//! | keeper → successor | `L` n k₁…kₙ | n | the listening sockets, kᵢ = `H` or `S` |
//! | successor → keeper | `K` | | kept: my socket is at the path now |
//! | keeper → edge | `P` n k₁…kₙ | n | stopping with no successor: hold the listening sockets (and serve them) until the next keeper asks (`T`) |
//! | edge → keeper | `K` | | held: the edge's socket is at the path now |
//!
//! std's Unix sockets cannot pass descriptors on stable Rust, and tokio's
//! do not either: `sendmsg`/`recvmsg` come from rustix, on tokio's
//! readiness.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use tokio::io::Interest;
use tokio::net::UnixStream;

pub const READY: u8 = b'R';
pub const DRAIN: u8 = b'D';
pub const DRAINED: u8 = b'A';
pub const TAKE_OVER: u8 = b'T';
pub const LISTENERS: u8 = b'L';
pub const KEPT: u8 = b'K';
pub const PARK: u8 = b'P';

/// The most descriptors one message carries (the listeners of a keeper).
pub const MAX_FDS: usize = 16;

/// What a handed-over connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain HTTP.
    Http,
    /// TLS (the edge terminates it).
    Https,
}

impl Kind {
    pub fn byte(self) -> u8 {
        match self {
            Kind::Http => b'H',
            Kind::Https => b'S',
        }
    }

    pub fn from_byte(b: u8) -> Option<Kind> {
        match b {
            b'H' => Some(Kind::Http),
            b'S' => Some(Kind::Https),
            _ => None,
        }
    }
}

/// Sends one message with `fds` attached, waiting while the socket is full.
pub async fn send(stream: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    stream
        .async_io(Interest::WRITABLE, || {
            send_now(stream.as_fd(), bytes, fds, true)
        })
        .await
}

/// Receives one message into `buf` (its length bounds the bytes read) with
/// the descriptors attached to it. `Ok((0, _))` is the end of the stream.
pub async fn recv(stream: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    stream
        .async_io(Interest::READABLE, || recv_now(stream.as_fd(), buf, true))
        .await
}

/// `sendmsg` once; with `nonblocking`, `WouldBlock` when the socket is full.
pub fn send_now(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    nonblocking: bool,
) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(format!(
            "{} descriptors in one message (at most {MAX_FDS})",
            fds.len()
        )));
    }
    let mut flags = SendFlags::NOSIGNAL;
    if nonblocking {
        flags |= SendFlags::DONTWAIT;
    }
    let sent = sendmsg(socket, &[IoSlice::new(bytes)], &mut control, flags)?;
    if sent != bytes.len() {
        // Messages are a few bytes; a socket with room for part of one is
        // a peer that stopped reading.
        return Err(io::Error::other(
            "the hand-off socket took part of a message",
        ));
    }
    Ok(())
}

/// `recvmsg` once; with `nonblocking`, `WouldBlock` when nothing waits.
pub fn recv_now(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    nonblocking: bool,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if nonblocking {
        flags |= RecvFlags::DONTWAIT;
    }
    let msg = recvmsg(socket, &mut [IoSliceMut::new(buf)], &mut control, flags)?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::other(
            "descriptors were cut off (more than the message may carry)",
        ));
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[tokio::test]
    async fn a_descriptor_arrives_with_its_own_byte() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r1, w1) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut r2, w2) = std::os::unix::net::UnixStream::pair().unwrap();
        send(&a, &[Kind::Http.byte()], &[w1.as_fd()]).await.unwrap();
        send(&a, &[DRAINED], &[]).await.unwrap();
        send(&a, &[Kind::Https.byte()], &[w2.as_fd()])
            .await
            .unwrap();
        drop((w1, w2));
        let mut got = Vec::new();
        for _ in 0..3 {
            let mut byte = [0u8; 1];
            let (n, fds) = recv(&b, &mut byte).await.unwrap();
            assert_eq!(n, 1);
            got.push((byte[0], fds));
        }
        assert_eq!(got[0].0, b'H');
        assert_eq!(got[0].1.len(), 1);
        assert_eq!((got[1].0, got[1].1.len()), (DRAINED, 0));
        assert_eq!((got[2].0, got[2].1.len()), (b'S', 1));
        // The received descriptors are the sockets sent: writing to them
        // reaches the other ends.
        let mut w1 = std::os::unix::net::UnixStream::from(got.remove(0).1.remove(0));
        w1.write_all(b"one").unwrap();
        let mut buf = [0u8; 3];
        r1.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"one");
        drop(got);
        // Every copy of the second socket is closed: its reader sees the end.
        assert_eq!(r2.read(&mut buf).unwrap(), 0);
        drop(a);
        assert_eq!(recv(&b, &mut [0u8; 1]).await.unwrap().0, 0, "end of stream");
    }
}
