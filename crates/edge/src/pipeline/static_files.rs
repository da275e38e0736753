//! The static-file step: files served by the edge, never by PHP: content
//! type, validators (`ETag`, `Last-Modified`, 304), single byte ranges
//! (206/416), precompressed `.br`/`.gz` siblings, from what
//! [`crate::file_cache`] knows of them.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use murakumo_cache::encoding::{self, Encoding};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::file_cache::FileInfo;
use crate::response::headers::security_defaults;
use crate::response::{etag_matches, plain, Body};

const CHUNK: usize = 64 * 1024;

/// Whether a URL names one version of a file (`?ver=6.1.1`, as WordPress
/// writes its assets' URLs): such a URL never changes.
fn versioned(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, v)| k == "ver" && !v.is_empty())
        })
    })
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// Parses a single `bytes=` range against a length (the unit in any case,
/// as HTTP reads it). `Ok(None)`: serve all. `Err(())`: unsatisfiable
/// (416). A last position past the end, however many digits it has, means
/// the end (RFC 9110 14.1.2), as does a suffix longer than the file.
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let value = value.trim();
    let Some(spec) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &value[6..])
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: the whole file is a valid answer
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let n = position(end)?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len.checked_sub(1).ok_or(())?)
    } else {
        let s = position(start)?;
        let e = if end.is_empty() {
            len.saturating_sub(1)
        } else {
            position(end)?.min(len.saturating_sub(1))
        };
        (s, e)
    };
    if range.0 >= len || range.0 > range.1 {
        return Err(());
    }
    Ok(Some(range))
}

/// A byte position (`1*DIGIT`), `u64::MAX` when it has more digits than
/// a `u64` holds: past the end of any file.
fn position(digits: &str) -> Result<u64, ()> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    Ok(digits.parse().unwrap_or(u64::MAX))
}

/// The request headers a static answer depends on, as text (a value that
/// is not text counts as absent, as before), read in one pass over the
/// request's headers rather than a lookup by name for each; the first of
/// each name counts.
#[derive(Default)]
struct Asked<'a> {
    range: Option<&'a str>,
    accept_encoding: Option<&'a str>,
    if_none_match: Option<&'a str>,
    if_modified_since: Option<&'a str>,
    if_range: Option<&'a str>,
}

impl<'a> Asked<'a> {
    fn read(headers: &'a HeaderMap) -> Asked<'a> {
        let mut asked = Asked::default();
        // The names already met: only the first value of each is read.
        let mut met = 0u8;
        for (name, value) in headers {
            let (slot, bit) = match *name {
                header::RANGE => (&mut asked.range, 1),
                header::ACCEPT_ENCODING => (&mut asked.accept_encoding, 2),
                header::IF_NONE_MATCH => (&mut asked.if_none_match, 4),
                header::IF_MODIFIED_SINCE => (&mut asked.if_modified_since, 8),
                header::IF_RANGE => (&mut asked.if_range, 16),
                _ => continue,
            };
            if met & bit == 0 {
                met |= bit;
                *slot = value.to_str().ok();
            }
        }
        asked
    }
}

/// A static file's answer: made whole, or its head made and its bytes
/// still to be read from the disk (a file too large to be kept in memory).
pub enum Served {
    Ready(Response<Body>),
    FromDisk(FromDisk),
}

/// The bytes `start..start + count` of the file at `path`, to be sent with
/// `resp`'s head.
pub struct FromDisk {
    resp: Response<Body>,
    path: PathBuf,
    start: u64,
    count: u64,
}

/// Serves a static file for a GET or HEAD (405 for anything else), with
/// the security headers when `security_headers`. The flag says whether the
/// answer was made from the file's ready head (200, 206, 304), which has
/// them; other answers (405, 416, an error) are decorated by `finish`.
pub fn serve(info: &FileInfo, req: &Parts, security_headers: bool) -> (Served, bool) {
    let served = answer(info, req, security_headers);
    let status = match &served {
        Served::Ready(r) => r.status(),
        Served::FromDisk(d) => d.resp.status(),
    };
    // Only these are made from the head; the others are short answers of
    // their own.
    let from_head = matches!(
        status,
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
    );
    (served, from_head)
}

fn answer(info: &FileInfo, req: &Parts, security_headers: bool) -> Served {
    let (method, headers) = (&req.method, &req.headers);
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Served::Ready(r);
    }
    let asked = Asked::read(headers);
    let range_header = asked.range;
    let accept = encoding::accepted(asked.accept_encoding);
    let chosen = if range_header.is_some() {
        Encoding::Identity
    } else {
        accept.choose(info.br.is_some(), info.gz.is_some())
    };
    let variant = match chosen {
        Encoding::Brotli => info.br.as_ref().unwrap_or(&info.identity),
        Encoding::Gzip => info.gz.as_ref().unwrap_or(&info.identity),
        Encoding::Identity => &info.identity,
    };

    // The form's ready head: type, validators, caching, encoding, length.
    let mut resp = Response::new(Body::empty());
    *resp.headers_mut() = variant.heads[usize::from(versioned(req.uri.query()))].clone();
    if !security_headers {
        for (name, _) in security_defaults() {
            resp.headers_mut().remove(name);
        }
    }

    // Conditional requests: If-None-Match wins over If-Modified-Since.
    let not_modified = match asked.if_none_match {
        Some(inm) => etag_matches(inm, &variant.etag),
        None => {
            let secs = info
                .mtime
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            asked
                .if_modified_since
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .is_some_and(|since| {
                    since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) >= secs
                })
        }
    };
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp.headers_mut().remove(header::CONTENT_TYPE);
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        return Served::Ready(resp);
    }

    let len = variant.len;
    let mut range = None;
    if let Some(r) = range_header {
        let if_range_ok = asked.if_range.is_none_or(|v| v.trim() == variant.etag);
        if if_range_ok {
            match parse_range(r, len) {
                Ok(found) => range = found,
                Err(()) => {
                    let mut r = status_only(StatusCode::RANGE_NOT_SATISFIABLE);
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                        r.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    return Served::Ready(r);
                }
            }
        }
    }
    let (start, end) = range.unwrap_or((0, len.saturating_sub(1)));
    let count = if len == 0 { 0 } else { end - start + 1 };
    if let Some((s, e)) = range {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    }
    if method == Method::HEAD || count == 0 {
        return Served::Ready(resp);
    }
    if let Some(data) = &variant.data {
        *resp.body_mut() = Body::full(data.slice(start as usize..=end as usize));
        return Served::Ready(resp);
    }
    Served::FromDisk(FromDisk {
        resp,
        path: variant.path.clone(),
        start,
        count,
    })
}

impl FromDisk {
    /// The answer, its body streamed from the file (404 if it has gone
    /// since it was looked at).
    pub async fn send(self) -> Response<Body> {
        let FromDisk {
            mut resp,
            path,
            start,
            count,
        } = self;
        let Ok(mut file) = tokio::fs::File::open(&path).await else {
            return status_only(StatusCode::NOT_FOUND);
        };
        if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
            return status_only(StatusCode::INTERNAL_SERVER_ERROR);
        }
        let (tx, body) = Body::channel();
        tokio::spawn(async move {
            let mut left = count;
            while left > 0 {
                let mut buf = vec![0u8; CHUNK.min(left as usize)];
                match file.read(&mut buf).await {
                    Ok(0) => {
                        let _ = tx
                            .send(Err(std::io::Error::other("file shrank while being sent")))
                            .await;
                        return;
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        left -= n as u64;
                        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        *resp.body_mut() = body;
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_asked_are_the_first_of_each_name_as_text() {
        let mut h = HeaderMap::new();
        h.append(
            header::RANGE,
            HeaderValue::from_bytes(b"bytes=\xff").unwrap(),
        );
        h.append(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        h.append(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\""));
        h.append(header::IF_NONE_MATCH, HeaderValue::from_static("\"b\""));
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        h.append(header::HOST, HeaderValue::from_static("example.com"));
        let asked = Asked::read(&h);
        // Not text: absent, as `get(…).to_str().ok()` read it; the later
        // value does not stand in.
        assert_eq!(asked.range, None);
        assert_eq!(asked.if_none_match, Some("\"a\""));
        assert_eq!(asked.accept_encoding, Some("br"));
        assert_eq!(asked.if_modified_since, None);
        assert_eq!(asked.if_range, None);
    }

    #[test]
    fn range_positions_past_any_file_and_units_in_any_case() {
        let huge = "9".repeat(40);
        assert_eq!(
            parse_range(&format!("bytes=0-{huge}"), 100),
            Ok(Some((0, 99)))
        );
        assert_eq!(
            parse_range(&format!("bytes=-{huge}"), 100),
            Ok(Some((0, 99)))
        );
        assert_eq!(parse_range(&format!("bytes={huge}-"), 100), Err(()));
        assert_eq!(parse_range("BYTES=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("Bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=+1-2", 100), Err(()));
        assert_eq!(parse_range("items=0-9", 100), Ok(None));
        assert_eq!(parse_range("bytés=0-9", 100), Ok(None));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-1000", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=x-1", 100), Err(()));
    }
}
