//! Static files served by the edge, never by PHP: content type, validators
//! (`ETag`, `Last-Modified`, 304), single byte ranges (206/416),
//! precompressed `.br`/`.gz` siblings.
//!
//! What the edge knows about a file ([`FileInfo`]: size, mtime, siblings,
//! and the bytes of small files) is kept in memory and re-checked with
//! `stat` at most every [`REVALIDATE`], like nginx's `open_file_cache`: a hot
//! asset costs no system call, and an edited file shows within a second.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use murakumo_cache::encoding::{self, Encoding};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::response::{plain, Body};

/// Files up to this size are kept in memory.
const MEMORY_FILE_MAX: u64 = 512 * 1024;
const CHUNK: usize = 64 * 1024;
/// How long what we know of a file is trusted before it is checked again.
pub const REVALIDATE: Duration = Duration::from_secs(1);

/// One representation of a file: itself or a precompressed sibling.
#[derive(Clone)]
struct Variant {
    path: PathBuf,
    len: u64,
    etag: String,
    /// The bytes, for small files.
    data: Option<Bytes>,
}

impl Variant {
    fn load(path: PathBuf, len: u64, etag: String) -> Variant {
        let data = (len <= MEMORY_FILE_MAX)
            .then(|| std::fs::read(&path).ok())
            .flatten()
            .filter(|d| d.len() as u64 == len)
            .map(Bytes::from);
        Variant {
            path,
            len,
            etag,
            data,
        }
    }
}

/// What the edge knows about one static file.
#[derive(Clone)]
pub struct FileInfo {
    identity: Variant,
    br: Option<Variant>,
    gz: Option<Variant>,
    mtime: SystemTime,
    content_type: HeaderValue,
    last_modified: Option<HeaderValue>,
    checked: Instant,
}

impl FileInfo {
    /// Stats the file and its siblings; `None` if it is not a regular file.
    fn read(path: &Path, previous: Option<&FileInfo>) -> Option<FileInfo> {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        if let Some(p) = previous
            .filter(|p| p.mtime == mtime && p.identity.len == meta.len() && same_siblings(path, p))
        {
            return Some(FileInfo {
                checked: Instant::now(),
                ..p.clone()
            });
        }
        let secs = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let base = format!("{secs:x}-{:x}", meta.len());
        let sibling = |ext: &str| {
            let p = sibling_path(path, ext);
            let m = std::fs::metadata(&p).ok().filter(|m| m.is_file())?;
            Some(Variant::load(p, m.len(), format!("\"{base}-{ext}\"")))
        };
        Some(FileInfo {
            br: sibling("br"),
            gz: sibling("gz"),
            identity: Variant::load(path.to_path_buf(), meta.len(), format!("\"{base}\"")),
            mtime,
            content_type: content_type(path),
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(mtime)).ok(),
            checked: Instant::now(),
        })
    }

    fn weight(&self) -> u32 {
        let data = |v: &Variant| v.data.as_ref().map_or(0, Bytes::len);
        let total = data(&self.identity)
            + self.br.as_ref().map_or(0, data)
            + self.gz.as_ref().map_or(0, data)
            + 512;
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

fn sibling_path(path: &Path, ext: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".");
    p.push(ext);
    PathBuf::from(p)
}

fn same_siblings(path: &Path, previous: &FileInfo) -> bool {
    let len = |ext| {
        std::fs::metadata(sibling_path(path, ext))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    };
    len("br") == previous.br.as_ref().map(|v| v.len)
        && len("gz") == previous.gz.as_ref().map(|v| v.len)
}

/// Static file information and small file bodies, bounded in bytes.
pub struct FileCache {
    files: moka::sync::Cache<PathBuf, Arc<FileInfo>>,
}

impl FileCache {
    pub fn new(max_bytes: u64) -> FileCache {
        FileCache {
            files: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_k: &PathBuf, v: &Arc<FileInfo>| v.weight())
                .build(),
        }
    }

    /// The file's information if it was checked within [`REVALIDATE`].
    pub fn fresh(&self, path: &Path) -> Option<Arc<FileInfo>> {
        self.files
            .get(path)
            .filter(|i| i.checked.elapsed() < REVALIDATE)
    }

    /// The file's information, checking the filesystem if it is not fresh.
    /// `None` if the path is not a regular file.
    pub fn info(&self, path: &Path) -> Option<Arc<FileInfo>> {
        if let Some(info) = self.fresh(path) {
            return Some(info);
        }
        let previous = self.files.get(path);
        match FileInfo::read(path, previous.as_deref()) {
            Some(info) => {
                let info = Arc::new(info);
                self.files.insert(path.to_path_buf(), info.clone());
                Some(info)
            }
            None => {
                self.files.invalidate(path);
                None
            }
        }
    }
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

/// `If-None-Match` against an ETag, by weak comparison (RFC 9110 13.1.2).
pub fn etag_matches(header: &str, etag: &str) -> bool {
    let etag = etag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// Serves a static file for a GET or HEAD.
pub async fn serve(info: &FileInfo, method: &Method, headers: &HeaderMap) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let accept = encoding::accepted(
        headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    );
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

    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, info.content_type.clone());
    if let Ok(v) = HeaderValue::from_str(&variant.etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(lm) = &info.last_modified {
        h.insert(header::LAST_MODIFIED, lm.clone());
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if !info.content_type.as_bytes().starts_with(b"text/html") {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=604800"),
        );
    }
    if info.br.is_some() || info.gz.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if let Some(t) = chosen
        .token()
        .filter(|_| !std::ptr::eq(variant, &info.identity))
    {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(t));
    }

    // Conditional requests: If-None-Match wins over If-Modified-Since.
    let not_modified = match headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(inm) => etag_matches(inm, &variant.etag),
        None => {
            let secs = info
                .mtime
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .is_some_and(|since| {
                    since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) >= secs
                })
        }
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
            .is_none_or(|v| v.trim() == variant.etag);
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
    if let Some(data) = &variant.data {
        *resp.body_mut() = Body::full(data.slice(start as usize..=end as usize));
        return resp;
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
        assert!(etag_matches("W/\"b\"", "W/\"b\""));
        assert!(etag_matches("\"b\"", "W/\"b\""));
    }

    #[test]
    fn file_info_follows_edits_after_revalidation() {
        let dir = std::env::temp_dir().join(format!("murakumo-static-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.css");
        std::fs::write(&f, "one").unwrap();
        let cache = FileCache::new(1 << 20);
        let first = cache.info(&f).unwrap();
        assert_eq!(first.identity.data.as_deref(), Some(&b"one"[..]));
        assert!(first.br.is_none());
        std::fs::write(&f, "two!").unwrap();
        std::fs::write(dir.join("a.css.br"), "BR").unwrap();
        // Trusted until REVALIDATE passes.
        assert!(Arc::ptr_eq(&cache.info(&f).unwrap(), &first));
        std::thread::sleep(REVALIDATE + Duration::from_millis(50));
        let second = cache.info(&f).unwrap();
        assert_eq!(second.identity.data.as_deref(), Some(&b"two!"[..]));
        assert_eq!(
            second.br.as_ref().unwrap().data.as_deref(),
            Some(&b"BR"[..])
        );
        std::fs::remove_file(&f).unwrap();
        std::thread::sleep(REVALIDATE + Duration::from_millis(50));
        assert!(cache.info(&f).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
