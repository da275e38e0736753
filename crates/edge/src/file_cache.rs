//! What the edge knows about the static files it serves ([`FileInfo`]:
//! size, mtime, precompressed `.br`/`.gz` siblings, validators, the bytes
//! of small files, and the brotli and gzip forms of text files that have no
//! sibling, made once per version of the file), kept in memory and re-checked with `stat` at most
//! every [`REVALIDATE`], like nginx's `open_file_cache`: a hot asset costs
//! no system call, and an edited file shows within a second. Serving them
//! is [`crate::pipeline`]'s `static_files` step.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use murakumo_cache::encoding::{self, Encoding, Level};

use crate::response::headers::security_defaults;

/// Files up to this size are kept in memory.
const MEMORY_FILE_MAX: u64 = 512 * 1024;
/// How long what we know of a file is trusted before it is checked again.
pub const REVALIDATE: Duration = Duration::from_secs(1);

/// Text files up to this size get compressed forms made in memory.
const COMPRESS_MAX: u64 = 8 << 20;
/// Smaller ones are not worth it.
const COMPRESS_MIN: u64 = 1024;
/// Files compressed at once, at most: a deploy that touches every asset
/// does not take every core. The others go out compressed on the fly and
/// are tried again when next checked (each second they are asked for).
const COMPRESS_AT_ONCE: usize = 2;

/// One representation of a file: itself, a precompressed sibling on disk,
/// or a compressed form the edge made.
#[derive(Clone)]
pub struct Variant {
    pub path: PathBuf,
    pub len: u64,
    pub etag: String,
    /// The bytes, for small files and for forms the edge made.
    pub data: Option<Bytes>,
    /// Made by the edge (no file on disk stands for it).
    made: bool,
    /// The head of a whole (200) answer with this form, for an unversioned
    /// URL (`[0]`) and a versioned one (`[1]`, `?ver=`): built once per
    /// version of the file ([`FileInfo::with_heads`]).
    pub heads: [HeaderMap; 2],
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
            made: false,
            heads: Default::default(),
        }
    }

    /// A compressed form of `identity` (`ext` "br" or "gz"), in memory.
    fn made(identity: &Variant, ext: &str, data: Vec<u8>) -> Variant {
        let base = identity.etag.trim_matches('"');
        Variant {
            path: identity.path.clone(),
            len: data.len() as u64,
            etag: format!("\"{base}-{ext}\""),
            data: Some(Bytes::from(data)),
            made: true,
            heads: Default::default(),
        }
    }
}

/// What the edge knows about one static file.
#[derive(Clone)]
pub struct FileInfo {
    pub identity: Variant,
    pub br: Option<Variant>,
    pub gz: Option<Variant>,
    pub mtime: SystemTime,
    pub content_type: HeaderValue,
    pub last_modified: Option<HeaderValue>,
    /// Its answers go as they are: it has compressed forms, or it is too
    /// small or of a type not worth compressing (else, until its forms are
    /// made, it is compressed on the fly).
    pub settled: bool,
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
        let info = FileInfo {
            br: sibling("br"),
            gz: sibling("gz"),
            identity: Variant::load(path.to_path_buf(), meta.len(), format!("\"{base}\"")),
            mtime,
            content_type: content_type(path),
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(mtime)).ok(),
            settled: false,
            checked: Instant::now(),
        };
        Some(info.with_heads())
    }

    /// The file with the heads of its forms built ([`Variant::heads`]):
    /// type, validators, ranges, browser caching, `Vary` when it has
    /// compressed forms, the encoding, the length and the security headers
    /// (the static step drops these for a site that turned them off).
    fn with_heads(mut self) -> FileInfo {
        let vary = self.br.is_some() || self.gz.is_some();
        self.settled = vary
            || self.identity.len < COMPRESS_MIN
            || !self
                .content_type
                .to_str()
                .is_ok_and(encoding::is_compressible_type);
        let (content_type, last_modified) = (&self.content_type, &self.last_modified);
        let html = content_type.as_bytes().starts_with(b"text/html");
        let head = |v: &Variant, enc: Encoding, versioned: bool| {
            let mut h = HeaderMap::with_capacity(10);
            h.insert(header::CONTENT_TYPE, content_type.clone());
            if let Ok(etag) = HeaderValue::from_str(&v.etag) {
                h.insert(header::ETAG, etag);
            }
            if let Some(lm) = last_modified {
                h.insert(header::LAST_MODIFIED, lm.clone());
            }
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            if !html {
                h.insert(header::CACHE_CONTROL, cache_control(versioned));
            }
            if vary {
                h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            }
            if let Some(token) = enc.token() {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(v.len));
            for (name, value) in security_defaults() {
                h.insert(name, value);
            }
            h
        };
        let heads = |v: &Variant, enc| [head(v, enc, false), head(v, enc, true)];
        let identity = heads(&self.identity, Encoding::Identity);
        let br = self.br.as_ref().map(|v| heads(v, Encoding::Brotli));
        let gz = self.gz.as_ref().map(|v| heads(v, Encoding::Gzip));
        self.identity.heads = identity;
        if let (Some(v), Some(h)) = (self.br.as_mut(), br) {
            v.heads = h;
        }
        if let (Some(v), Some(h)) = (self.gz.as_mut(), gz) {
            v.heads = h;
        }
        self
    }

    fn weight(&self) -> u64 {
        let data = |v: &Variant| v.data.as_ref().map_or(0, Bytes::len);
        // Each form's two heads: some 300 bytes each.
        let total = data(&self.identity)
            + self.br.as_ref().map_or(0, data)
            + self.gz.as_ref().map_or(0, data)
            + 512
            + 3 * 600;
        total as u64
    }
}

fn sibling_path(path: &Path, ext: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".");
    p.push(ext);
    PathBuf::from(p)
}

/// Whether the `.br`/`.gz` files beside `path` are what `previous` saw (a
/// form the edge made stands for no file).
fn same_siblings(path: &Path, previous: &FileInfo) -> bool {
    let len = |ext| {
        std::fs::metadata(sibling_path(path, ext))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    };
    let on_disk = |v: &Option<Variant>| v.as_ref().filter(|v| !v.made).map(|v| v.len);
    len("br") == on_disk(&previous.br) && len("gz") == on_disk(&previous.gz)
}

/// Paths come from clients: a seeded hasher, much cheaper than SipHash.
type PathHasher = foldhash::quality::RandomState;

/// A file weighs the bytes it keeps in memory ([`FileInfo::weight`]).
#[derive(Clone)]
struct FileWeight;

impl quick_cache::Weighter<Box<[u8]>, Arc<FileInfo>> for FileWeight {
    fn weight(&self, _path: &Box<[u8]>, info: &Arc<FileInfo>) -> u64 {
        info.weight()
    }
}

/// What is known of the files, by path. `quick_cache`, as the page cache:
/// a lookup (one per static answer) is a hash, a read lock and a probe.
type Files = quick_cache::sync::Cache<Box<[u8]>, Arc<FileInfo>, FileWeight, PathHasher>;

/// Assets are some KB: the table is sized for this many bytes a file.
const BYTES_PER_FILE: u64 = 8 * 1024;
/// The most a file's information weighs: its bytes (a small file) or its
/// brotli and gzip forms (a text file up to [`COMPRESS_MAX`]), and heads.
const LARGEST_FILE_INFO: u64 = 2 * COMPRESS_MAX + MEMORY_FILE_MAX + 64 * 1024;

/// Static file information and small file bodies, bounded in bytes.
pub struct FileCache {
    /// By the path's bytes: hashing a `Path` walks its components.
    files: Arc<Files>,
    /// Files whose compressed forms are being made.
    compressing: Arc<Mutex<HashSet<PathBuf>>>,
    /// The heaviest information a shard of `files` takes: compressed forms
    /// that would not fit are not made (they would be made again and
    /// thrown away on every request).
    largest: u64,
}

impl FileCache {
    pub fn new(max_bytes: u64) -> FileCache {
        let shards = murakumo_cache::store::shards_for(max_bytes, LARGEST_FILE_INFO);
        FileCache {
            files: Arc::new(Files::with_options(
                quick_cache::OptionsBuilder::new()
                    .shards(shards)
                    .weight_capacity(max_bytes)
                    .estimated_items_capacity(
                        usize::try_from(max_bytes / BYTES_PER_FILE)
                            .unwrap_or(usize::MAX)
                            .max(32),
                    )
                    .build()
                    // The builder refuses only missing capacities, and both are set.
                    .unwrap_or_else(|e| unreachable!("file cache options: {e}")),
                FileWeight,
                PathHasher::default(),
                Default::default(),
            )),
            // quick_cache may use fewer shards (each bigger) than asked for.
            largest: max_bytes / shards as u64 * 9 / 10,
            compressing: Arc::default(),
        }
    }

    /// [`FileCache::fresh`] for `root.join(relative)` as of `now` (the
    /// request's start: no clock read of its own), without making that
    /// path: its bytes are put together in a buffer of the thread's (this
    /// runs for every static file and asset request).
    pub fn fresh_at(&self, root: &Path, relative: &str, now: Instant) -> Option<Arc<FileInfo>> {
        use std::cell::RefCell;
        thread_local! {
            static KEY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        KEY.with_borrow_mut(|buf| {
            buf.clear();
            buf.extend_from_slice(key(root));
            if !buf.ends_with(b"/") {
                buf.push(b'/');
            }
            buf.extend_from_slice(relative.as_bytes());
            self.files
                .get(&buf[..])
                .filter(|i| now.saturating_duration_since(i.checked) < REVALIDATE)
        })
    }

    /// The file's information if it was checked within [`REVALIDATE`].
    pub fn fresh(&self, path: &Path) -> Option<Arc<FileInfo>> {
        self.files
            .get(key(path))
            .filter(|i| i.checked.elapsed() < REVALIDATE)
    }

    /// The file's information, checking the filesystem if it is not fresh.
    /// `None` if the path is not a regular file.
    pub fn info(&self, path: &Path) -> Option<Arc<FileInfo>> {
        if let Some(info) = self.fresh(path) {
            return Some(info);
        }
        let previous = self.files.get(key(path));
        match FileInfo::read(path, previous.as_deref()) {
            Some(info) => {
                let info = Arc::new(info);
                self.files.insert(key(path).into(), info.clone());
                self.compress_later(path, &info);
                Some(info)
            }
            None => {
                self.files.remove(key(path));
                None
            }
        }
    }
}

impl FileCache {
    /// Makes the brotli and gzip forms a text file lacks, once per version
    /// of the file, off the request path (a blocking task); until they are
    /// there, the file goes out compressed on the fly. Nothing is made
    /// outside a tokio runtime.
    fn compress_later(&self, path: &Path, info: &Arc<FileInfo>) {
        let wanted = (info.br.is_none() || info.gz.is_none())
            && (COMPRESS_MIN..=COMPRESS_MAX).contains(&info.identity.len)
            && info.weight() + 2 * info.identity.len <= self.largest
            && info
                .content_type
                .to_str()
                .is_ok_and(encoding::is_compressible_type);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !wanted {
            return;
        }
        {
            let mut busy = lock(&self.compressing);
            if busy.len() >= COMPRESS_AT_ONCE || !busy.insert(path.to_path_buf()) {
                return;
            }
        }
        let (files, compressing) = (self.files.clone(), self.compressing.clone());
        let (path, info) = (path.to_path_buf(), info.clone());
        runtime.spawn_blocking(move || {
            if let Some(made) = with_compressed_forms(&info) {
                // Only onto the version it was made from.
                let current = files.get(key(&path));
                if current
                    .is_some_and(|c| c.mtime == info.mtime && c.identity.len == info.identity.len)
                {
                    files.insert(key(&path).into(), Arc::new(made));
                }
            }
            lock(&compressing).remove(&path);
        });
    }
}

/// A path's cache key: its bytes.
fn key(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `info` with the compressed forms it lacks, if any came out smaller.
fn with_compressed_forms(info: &FileInfo) -> Option<FileInfo> {
    let data = match &info.identity.data {
        Some(d) => d.clone(),
        None => Bytes::from(std::fs::read(&info.identity.path).ok()?),
    };
    if data.len() as u64 != info.identity.len {
        return None; // changed under us: the next check sees it
    }
    let smaller = |c: Option<Vec<u8>>| c.filter(|c| c.len() < data.len());
    let mut made = info.clone();
    if made.br.is_none() {
        made.br = smaller(encoding::brotli(&data, Level::Static))
            .map(|c| Variant::made(&info.identity, "br", c));
    }
    if made.gz.is_none() {
        made.gz = smaller(encoding::gzip(&data, Level::Static))
            .map(|c| Variant::made(&info.identity, "gz", c));
    }
    (made.br.is_some() || made.gz.is_some()).then(|| made.with_heads())
}

/// How long browsers keep a file. WordPress names each version of its
/// assets in the URL (`style.css?ver=6.1.1`): such a URL never changes, so
/// it is kept a year and never revalidated; others a week.
fn cache_control(versioned: bool) -> HeaderValue {
    HeaderValue::from_static(if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=604800"
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_found_by_root_and_relative_path_as_by_its_joined_path() {
        let dir = std::env::temp_dir().join(format!("murakumo-at-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("css")).unwrap();
        std::fs::write(dir.join("css/a.css"), "a").unwrap();
        std::fs::write(dir.join("index.html"), "i").unwrap();
        let cache = FileCache::new(1 << 20);
        for (root, relative) in [(dir.clone(), "css/a.css"), (dir.clone(), "index.html")] {
            assert!(cache.fresh_at(&root, relative, Instant::now()).is_none());
            let info = cache.info(&root.join(relative)).unwrap();
            let found = cache
                .fresh_at(&root, relative, Instant::now())
                .expect("found by root and path");
            assert!(Arc::ptr_eq(&info, &found));
            // A root written with a trailing slash names the same files.
            let slashed = PathBuf::from(format!("{}/", root.display()));
            assert!(cache.fresh_at(&slashed, relative, Instant::now()).is_some());
        }
        std::fs::remove_dir_all(&dir).unwrap();
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
