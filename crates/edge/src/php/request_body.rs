//! Request bodies are read whole before PHP sees them, as nginx does: a
//! php-fpm worker is then never held hostage by a slow client (slow POST),
//! and the size limit (`max_body`, 413) and the pause limit
//! (`body_timeout`, 408) are enforced before any PHP runs. Small bodies stay
//! in memory; larger ones are spooled to an unnamed temporary file (gone
//! when closed, invisible to other users), so uploads do not grow memory.

use std::io::SeekFrom;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// Bodies up to this size stay in memory.
const IN_MEMORY: usize = 256 << 10;

/// A request body read to its end.
pub enum SpooledBody {
    Empty,
    Memory(Bytes),
    File { file: tokio::fs::File, len: u64 },
}

impl SpooledBody {
    pub fn len(&self) -> u64 {
        match self {
            SpooledBody::Empty => 0,
            SpooledBody::Memory(b) => b.len() as u64,
            SpooledBody::File { len, .. } => *len,
        }
    }

    /// Back to the start, so that the body can be sent again (a request
    /// resent on a fresh php-fpm connection).
    pub async fn rewind(&mut self) -> std::io::Result<()> {
        if let SpooledBody::File { file, .. } = self {
            file.seek(SeekFrom::Start(0)).await?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than this site's limit ({0} bytes)")]
    TooLarge(u64),
    #[error("the client paused longer than {0:?} while sending the body")]
    Timeout(Duration),
    #[error("reading the request body: {0}")]
    Client(String),
    #[error("spooling the request body to a temporary file: {0}")]
    Spool(std::io::Error),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Client(_) => StatusCode::BAD_REQUEST,
            BodyError::Spool(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Reads `incoming` to its end: at most `max` bytes, no pause longer than
/// `pause`.
pub async fn read(
    mut incoming: Incoming,
    max: u64,
    pause: Duration,
) -> Result<SpooledBody, BodyError> {
    let mut memory = BytesMut::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut len: u64 = 0;
    loop {
        let frame = match tokio::time::timeout(pause, incoming.frame()).await {
            Err(_) => return Err(BodyError::Timeout(pause)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Client(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers: PHP has no use for them
        };
        len += data.len() as u64;
        if len > max {
            return Err(BodyError::TooLarge(max));
        }
        match file.as_mut() {
            Some(f) => f.write_all(&data).await.map_err(BodyError::Spool)?,
            None if memory.len() + data.len() <= IN_MEMORY => memory.extend_from_slice(&data),
            None => {
                let std_file = tokio::task::spawn_blocking(tempfile::tempfile)
                    .await
                    .map_err(|e| BodyError::Spool(std::io::Error::other(e)))?
                    .map_err(BodyError::Spool)?;
                let mut f = tokio::fs::File::from_std(std_file);
                f.write_all(&memory).await.map_err(BodyError::Spool)?;
                f.write_all(&data).await.map_err(BodyError::Spool)?;
                memory = BytesMut::new();
                file = Some(f);
            }
        }
    }
    Ok(match file {
        Some(mut f) => {
            f.flush().await.map_err(BodyError::Spool)?;
            f.seek(SeekFrom::Start(0)).await.map_err(BodyError::Spool)?;
            SpooledBody::File { file: f, len }
        }
        None if memory.is_empty() => SpooledBody::Empty,
        None => SpooledBody::Memory(memory.freeze()),
    })
}
