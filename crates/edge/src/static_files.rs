//! Static files served by the edge, never by PHP: content type, validators
//! (`ETag`, `Last-Modified`, 304), single byte ranges (206/416),
//! precompressed `.br`/`.gz` siblings, and small files kept in memory
//! (checked against size and mtime on every request, so edits show at once).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use murakumo_cache::encoding::{self, Encoding};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::body::Body;

/// Files up to this size are kept in memory.
const MEMORY_FILE_MAX: u64 = 512 * 1024;
const CHUNK: usize = 64 * 1024;

/// Small files in memory, keyed by path and validated by (len, mtime).
pub struct FileCache {
    files: moka::sync::Cache<PathBuf, (u64, SystemTime, Bytes)>,
}

impl FileCache {
    pub fn new(max_bytes: u64) -> FileCache {
        FileCache {
            files: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &PathBuf, v: &(u64, SystemTime, Bytes)| {
                    (v.2.len() + k.as_os_str().len() + 64)
                        .try_into()
                        .unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    fn read(&self, path: &Path, len: u64, mtime: SystemTime) -> std::io::Result<Bytes> {
        if let Some((l, m, b)) = self.files.get(path) {
            if l == len && m == mtime {
                return Ok(b);
            }
        }
        let data = Bytes::from(std::fs::read(path)?);
        self.files
            .insert(path.to_path_buf(), (len, mtime, data.clone()));
        Ok(data)
    }
}

struct Variant {
    path: PathBuf,
    len: u64,
    encoding: Encoding,
}

fn sibling(path: &Path, ext: &str) -> Option<(PathBuf, u64)> {
    let mut p = path.as_os_str().to_owned();
    p.push(ext);
    let p = PathBuf::from(p);
    let m = std::fs::metadata(&p).ok()?;
    m.is_file().then_some((p, m.len()))
}

fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
        || mime.subtype() == mime_guess::mime::JSON;
    let value = if text {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// Parses a single `bytes=` range against a length. `Ok(None)`: serve all.
/// `Err(())`: unsatisfiable (416).
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: the whole file is a valid answer
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let n: u64 = end.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len.checked_sub(1).ok_or(())?)
    } else {
        let s: u64 = start.parse().map_err(|_| ())?;
        let e: u64 = if end.is_empty() {
            len.saturating_sub(1)
        } else {
            end.parse::<u64>()
                .map_err(|_| ())?
                .min(len.saturating_sub(1))
        };
        (s, e)
    };
    if range.0 >= len || range.0 > range.1 {
        return Err(());
    }
    Ok(Some(range))
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// Serves `path` (an existing regular file) for a GET or HEAD.
pub async fn serve(
    files: &FileCache,
    method: &Method,
    headers: &HeaderMap,
    path: PathBuf,
) -> Response<Body> {
    let Ok(meta) = std::fs::metadata(&path) else {
        return status_only(StatusCode::NOT_FOUND);
    };
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let secs = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());

    let accept = encoding::accepted(
        headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    );
    let br = sibling(&path, ".br");
    let gz = sibling(&path, ".gz");
    let has_siblings = br.is_some() || gz.is_some();
    let chosen = if range_header.is_some() {
        Encoding::Identity
    } else {
        accept.choose(br.is_some(), gz.is_some())
    };
    let variant = match (chosen, br, gz) {
        (Encoding::Brotli, Some((p, len)), _) => Variant {
            path: p,
            len,
            encoding: Encoding::Brotli,
        },
        (Encoding::Gzip, _, Some((p, len))) => Variant {
            path: p,
            len,
            encoding: Encoding::Gzip,
        },
        _ => Variant {
            path: path.clone(),
            len: meta.len(),
            encoding: Encoding::Identity,
        },
    };
    let etag = match variant.encoding.token() {
        Some(t) => format!("\"{secs:x}-{:x}-{t}\"", meta.len()),
        None => format!("\"{secs:x}-{:x}\"", meta.len()),
    };

    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type(&path));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(mtime)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if !h[header::CONTENT_TYPE].as_bytes().starts_with(b"text/html") {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=604800"),
        );
    }
    if has_siblings {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if let Some(t) = variant.encoding.token() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(t));
    }

    // Conditional requests: If-None-Match wins over If-Modified-Since.
    let not_modified = match headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(inm) => etag_matches(inm, &etag),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| {
                since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) >= secs
            }),
    };
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp.headers_mut().remove(header::CONTENT_TYPE);
        return resp;
    }

    let len = variant.len;
    let mut range = None;
    if let Some(r) = range_header {
        let if_range_ok = headers
            .get(header::IF_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim() == etag);
        if if_range_ok {
            match parse_range(r, len) {
                Ok(found) => range = found,
                Err(()) => {
                    let mut r = status_only(StatusCode::RANGE_NOT_SATISFIABLE);
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                        r.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    return r;
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
    }
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if method == Method::HEAD || count == 0 {
        return resp;
    }
    if len <= MEMORY_FILE_MAX {
        match files.read(&variant.path, len, mtime) {
            Ok(data) if data.len() as u64 == len => {
                *resp.body_mut() = Body::full(data.slice(start as usize..=end as usize));
                return resp;
            }
            _ => return status_only(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
    let Ok(mut file) = tokio::fs::File::open(&variant.path).await else {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn etags() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }
}
