//! One FastCGI connection to php-fpm, carrying one request at a time.
//!
//! The request id is always 1: php-fpm does not multiplex, so a connection is
//! either idle in the pool or owned by exactly one request.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::params::{self, Params};
use crate::record::{self, EndRequest, END_REQUEST, REQUEST_COMPLETE, STDERR, STDIN, STDOUT};
use crate::Error;

const REQUEST_ID: u16 = 1;

/// Where a php-fpm pool listens: `unix:/path/to.sock` or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Unix(PathBuf),
    Tcp(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tcp(a) => f.write_str(a),
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What php-fpm sent next for the current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Part of the CGI response (head, then body).
    Stdout(Bytes),
    /// A message PHP wrote to stderr (warnings, fatal errors).
    Stderr(Bytes),
    /// The request is over; the connection may be reused.
    End { app_status: u32 },
}

/// A connection to one php-fpm member.
pub struct Connection {
    stream: Stream,
    read_buf: BytesMut,
    write_buf: BytesMut,
}

impl Connection {
    pub async fn connect(addr: &Address) -> io::Result<Connection> {
        let stream = match addr {
            Address::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
            Address::Tcp(a) => {
                let s = TcpStream::connect(a.as_str()).await?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
        };
        Ok(Connection {
            stream,
            read_buf: BytesMut::with_capacity(16 * 1024),
            write_buf: BytesMut::with_capacity(4 * 1024),
        })
    }

    /// Sends BEGIN_REQUEST (asking php-fpm to keep the connection open) and
    /// the whole PARAMS stream.
    pub async fn begin(&mut self, params: &Params) -> Result<(), Error> {
        self.write_buf.clear();
        record::put_begin_request(&mut self.write_buf, REQUEST_ID, true);
        params::encode_records(&mut self.write_buf, REQUEST_ID, params)?;
        self.stream.write_all(&self.write_buf).await?;
        Ok(())
    }

    /// Sends part of the request body. Empty data is ignored: use [`Self::end_stdin`].
    pub async fn write_stdin(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        for chunk in data.chunks(record::MAX_CONTENT_LEN) {
            self.write_buf.clear();
            record::put_header(&mut self.write_buf, STDIN, REQUEST_ID, chunk.len());
            self.stream.write_all(&self.write_buf).await?;
            self.stream.write_all(chunk).await?;
        }
        Ok(())
    }

    /// Ends the request body.
    pub async fn end_stdin(&mut self) -> Result<(), Error> {
        self.write_buf.clear();
        record::put_header(&mut self.write_buf, STDIN, REQUEST_ID, 0);
        self.stream.write_all(&self.write_buf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads the next event of the current request. Records of other kinds or
    /// other request ids are skipped.
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(ev) = self.buffered_event()? {
                return Ok(ev);
            }
            if self.read_buf.capacity() - self.read_buf.len() < 8192 {
                self.read_buf.reserve(64 * 1024);
            }
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(Error::UnexpectedEof);
            }
        }
    }

    /// The next event if it is already buffered, without any I/O: lets a
    /// reader gather the records one read brought in.
    pub fn buffered_event(&mut self) -> Result<Option<Event>, Error> {
        while let Some(rec) = record::decode(&mut self.read_buf)? {
            if rec.request_id != REQUEST_ID {
                continue;
            }
            match rec.kind {
                STDOUT if !rec.content.is_empty() => return Ok(Some(Event::Stdout(rec.content))),
                STDERR if !rec.content.is_empty() => return Ok(Some(Event::Stderr(rec.content))),
                END_REQUEST => {
                    let end = EndRequest::parse(&rec.content)?;
                    if end.protocol_status != REQUEST_COMPLETE {
                        return Err(Error::Rejected(end.protocol_status));
                    }
                    return Ok(Some(Event::End {
                        app_status: end.app_status,
                    }));
                }
                _ => continue,
            }
        }
        Ok(None)
    }

    /// Whether php-fpm has closed (or half-closed) this idle connection, or
    /// sent something unasked. Asks the kernel (`recv` with `MSG_PEEK` on the
    /// non-blocking socket), not the runtime's readiness cache: php-fpm shuts
    /// down its side right after the last request of a worker
    /// (`pm.max_requests`), and that must be seen before a request is sent.
    pub fn is_closed(&self) -> bool {
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let peeked = match &self.stream {
            Stream::Unix(s) => socket2::SockRef::from(s).peek(&mut probe),
            Stream::Tcp(s) => socket2::SockRef::from(s).peek(&mut probe),
        };
        !matches!(peeked, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// True when bytes beyond the finished request are buffered, which means
    /// the connection is out of step and must not be reused.
    pub fn has_leftover(&self) -> bool {
        !self.read_buf.is_empty()
    }
}
