//! Content codings: `Accept-Encoding` negotiation (RFC 9110 12.5.3), which
//! content is worth compressing, and the gzip and brotli encoders, whole
//! (cached pages, static files: compressed once) and streaming (PHP
//! answers that are not cached, compressed as they arrive).

use std::io::Write;

use bytes::Bytes;
use http::header::{self, HeaderMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    pub fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// Which of the encodings the client accepts, best first (br, then gzip),
/// with q-values honoured (`q=0` refuses, `*` covers the unnamed ones).
///
/// Read on every cache hit and static answer: a browser sends the same
/// header on every request, so each thread keeps the last header it read
/// and its answer (a comparison of some 20 bytes). Others are read from
/// their bytes without allocating (splitting and lowercasing `str`s, as
/// this once did, cost two thousand instructions, an eighth of a hit).
pub fn accepted(header: Option<&str>) -> AcceptSet {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(String, AcceptSet)> = const {
            RefCell::new((String::new(), AcceptSet::NONE))
        };
    }
    let Some(header) = header else {
        return AcceptSet::NONE;
    };
    // Only headers of a usual size are kept (a long one is read each time).
    if header.len() > 128 {
        return read_accepted(header);
    }
    LAST.with_borrow_mut(|(last, set)| {
        if last.as_str() != header {
            *set = read_accepted(header);
            last.clear();
            last.push_str(header);
        }
        *set
    })
}

/// [`accepted`]'s reading of a header.
fn read_accepted(header: &str) -> AcceptSet {
    let mut star = None;
    let (mut br, mut gzip) = (None, None);
    let bytes = header.as_bytes();
    let mut at = 0;
    while at <= bytes.len() {
        let rest = &bytes[at..];
        let item = &rest[..rest.iter().position(|&b| b == b',').unwrap_or(rest.len())];
        at += item.len() + 1;
        let (name, params) = match item.iter().position(|&b| b == b';') {
            Some(i) => (&item[..i], Some(&item[i + 1..])),
            None => (item, None),
        };
        let name = name.trim_ascii();
        // By length first: most names are none of these.
        let slot = match name.len() {
            2 if name.eq_ignore_ascii_case(b"br") => &mut br,
            4 if name.eq_ignore_ascii_case(b"gzip") => &mut gzip,
            6 if name.eq_ignore_ascii_case(b"x-gzip") => &mut gzip,
            1 if name == b"*" => &mut star,
            _ => continue,
        };
        *slot = Some(params.is_none_or(q_allows));
    }
    AcceptSet {
        br: br.or(star).unwrap_or(false),
        gzip: gzip.or(star).unwrap_or(false),
    }
}

/// Whether an item's parameters (`q=0.5`, `;`-separated) leave its
/// q-value above 0; the last `q` counts, one that is not a number is 0.
fn q_allows(params: &[u8]) -> bool {
    let mut q = 1.0f32;
    for p in params.split(|&b| b == b';') {
        let p = p.trim_ascii();
        if let Some(v) = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")) {
            q = std::str::from_utf8(v.trim_ascii())
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
        }
    }
    q > 0.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptSet {
    pub br: bool,
    pub gzip: bool,
}

impl AcceptSet {
    /// No encoding but identity.
    pub const NONE: AcceptSet = AcceptSet {
        br: false,
        gzip: false,
    };

    /// The best encoding among those available.
    pub fn choose(self, have_br: bool, have_gzip: bool) -> Encoding {
        if self.br && have_br {
            Encoding::Brotli
        } else if self.gzip && have_gzip {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

/// How hard to compress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Once per stored page (gzip 6, brotli 6): milliseconds per page.
    Stored,
    /// Once per static file version, off the request path (gzip 9,
    /// brotli 9).
    Static,
    /// On the fly, per response (gzip 4, brotli 4): far cheaper than the
    /// PHP that made the page.
    Fast,
}

impl Level {
    fn gzip(self) -> u32 {
        match self {
            Level::Stored => 6,
            Level::Static => 9,
            Level::Fast => 4,
        }
    }

    fn brotli(self) -> u32 {
        match self {
            Level::Stored => 6,
            Level::Static => 9,
            Level::Fast => 4,
        }
    }
}

/// Whether a media type compresses well: text, scripts, data formats,
/// SVG, icons and fonts that are not compressed already (WOFF and WOFF2
/// are).
pub fn is_compressible_type(content_type: &str) -> bool {
    const TYPES: [&str; 17] = [
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/javascript",
        "application/x-javascript",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/xhtml+xml",
        "application/wasm",
        "application/vnd.ms-fontobject",
        "image/svg+xml",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "font/ttf",
        "font/otf",
        "font/collection",
    ];
    // Asked of every answer: compared in place, nothing allocated.
    let mime = content_type.split(';').next().unwrap_or("").trim();
    mime.get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("text/"))
        || TYPES.iter().any(|t| mime.eq_ignore_ascii_case(t))
}

/// Whether a response's `Content-Type` compresses well.
pub fn is_compressible(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_compressible_type)
}

/// Whether a response says `Cache-Control: no-transform`: its bytes go as
/// they are, never re-encoded (compared in place, nothing allocated).
pub fn forbids_transform(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.as_bytes()
            .windows(12)
            .any(|w| w.eq_ignore_ascii_case(b"no-transform"))
    })
}

/// A strong ETag names one exact body; an encoded one is another, so its
/// tag becomes weak (as nginx does): it still revalidates (`If-None-Match`
/// compares weakly), and no cache treats the two bodies as one.
pub fn weaken_etag(h: &mut HeaderMap) {
    let Some(tag) = h.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
        return;
    };
    if tag.starts_with("W/") {
        return;
    }
    if let Ok(weak) = http::HeaderValue::from_str(&format!("W/{tag}")) {
        h.insert(header::ETAG, weak);
    }
}

/// `data` gzipped.
pub fn gzip(data: &[u8], level: Level) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::new(level.gzip()),
    );
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

/// `data` in brotli.
pub fn brotli(data: &[u8], level: Level) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 3);
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 16 * 1024, level.brotli(), 22);
        w.write_all(data).ok()?;
        w.flush().ok()?;
    }
    Some(out)
}

/// A body compressed as it arrives: each piece given is compressed and
/// flushed, so what the client has so far decodes to what PHP sent so far.
pub struct StreamEncoder {
    inner: Stream,
}

enum Stream {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl StreamEncoder {
    /// `None` for [`Encoding::Identity`].
    pub fn new(encoding: Encoding, level: Level) -> Option<StreamEncoder> {
        let inner = match encoding {
            Encoding::Identity => return None,
            Encoding::Gzip => Stream::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.gzip()),
            )),
            Encoding::Brotli => Stream::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                level.brotli(),
                22,
            ))),
        };
        Some(StreamEncoder { inner })
    }

    /// The compressed form of `data`, flushed.
    pub fn push(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        match &mut self.inner {
            Stream::Gzip(w) => {
                w.write_all(data)?;
                w.flush()?;
                Ok(Bytes::from(std::mem::take(w.get_mut())))
            }
            Stream::Brotli(w) => {
                w.write_all(data)?;
                w.flush()?;
                Ok(Bytes::from(std::mem::take(w.get_mut())))
            }
        }
    }

    /// The end of the stream.
    pub fn finish(self) -> std::io::Result<Bytes> {
        match self.inner {
            Stream::Gzip(w) => Ok(Bytes::from(w.finish()?)),
            Stream::Brotli(w) => Ok(Bytes::from(w.into_inner())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The straightforward reading of `Accept-Encoding` that [`accepted`]
    /// replaced (it allocated per item): its oracle.
    fn accepted_by_strings(header: Option<&str>) -> AcceptSet {
        let mut set = AcceptSet {
            br: false,
            gzip: false,
        };
        let Some(header) = header else { return set };
        let mut star = None;
        let (mut br, mut gzip) = (None, None);
        for item in header.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            for p in parts {
                if let Some(v) = p
                    .trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
                {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            let ok = q > 0.0;
            match name.as_str() {
                "br" => br = Some(ok),
                "gzip" | "x-gzip" => gzip = Some(ok),
                "*" => star = Some(ok),
                _ => {}
            }
        }
        set.br = br.or(star).unwrap_or(false);
        set.gzip = gzip.or(star).unwrap_or(false);
        set
    }

    proptest::proptest! {
        #[test]
        fn accept_encoding_is_read_as_the_string_reading_did(
            header in "(( |\\t)*(br|BR|gzip|GZip|x-gzip|\\*|deflate|zstd|identity|bra|g)( |\\t)*(;( )*(q|Q|x)=( )*(0|1|0\\.5|0\\.000|1\\.0|abc|-1|)( )*){0,2},?){0,5}"
        ) {
            let expected = accepted_by_strings(Some(&header));
            proptest::prop_assert_eq!(read_accepted(&header), expected);
            // Read, then remembered: the same answer both times.
            proptest::prop_assert_eq!(accepted(Some(&header)), expected);
            proptest::prop_assert_eq!(accepted(Some(&header)), expected);
        }

        #[test]
        // What `HeaderValue::to_str` lets through: visible ASCII, space, tab.
        fn any_accept_encoding_is_read_as_the_string_reading_did(header in "[\\t -~]{0,40}") {
            proptest::prop_assert_eq!(accepted(Some(&header)), accepted_by_strings(Some(&header)));
        }
    }

    #[test]
    fn browser_header_prefers_br() {
        let a = accepted(Some("gzip, deflate, br, zstd"));
        assert_eq!(a.choose(true, true), Encoding::Brotli);
        assert_eq!(a.choose(false, true), Encoding::Gzip);
        assert_eq!(a.choose(false, false), Encoding::Identity);
    }

    #[test]
    fn q_zero_refuses_and_star_covers() {
        assert_eq!(
            accepted(Some("br;q=0, gzip")).choose(true, true),
            Encoding::Gzip
        );
        assert_eq!(accepted(Some("*")).choose(true, true), Encoding::Brotli);
        assert_eq!(
            accepted(Some("*;q=0, gzip;q=0.5")).choose(true, true),
            Encoding::Gzip
        );
        assert_eq!(accepted(None).choose(true, true), Encoding::Identity);
        assert_eq!(
            accepted(Some("identity")).choose(true, true),
            Encoding::Identity
        );
    }
}

#[cfg(test)]
mod codec_tests {
    use super::*;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn unbrotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(data, 4096)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_stream_decodes_to_its_pieces_at_every_flush_and_at_the_end() {
        let pieces = [
            "<html><body>",
            &"<p>WordPress</p>".repeat(200),
            "</body></html>",
        ];
        let whole: String = pieces.concat();
        for enc in [Encoding::Gzip, Encoding::Brotli] {
            let mut s = StreamEncoder::new(enc, Level::Fast).unwrap();
            let mut out = Vec::new();
            for p in pieces {
                out.extend_from_slice(&s.push(p.as_bytes()).unwrap());
            }
            out.extend_from_slice(&s.finish().unwrap());
            let decoded = match enc {
                Encoding::Gzip => gunzip(&out),
                _ => unbrotli(&out),
            };
            assert_eq!(decoded, whole.as_bytes(), "{enc:?}");
            assert!(out.len() < whole.len() / 5, "{enc:?} compresses");
        }
        assert!(StreamEncoder::new(Encoding::Identity, Level::Fast).is_none());
    }

    #[test]
    fn compressible_types() {
        for t in [
            "text/css",
            "application/javascript",
            "image/svg+xml",
            "font/ttf",
            "application/json; charset=utf-8",
            "TEXT/HTML",
        ] {
            assert!(is_compressible_type(t), "{t}");
        }
        for t in [
            "image/png",
            "font/woff2",
            "application/zip",
            "video/mp4",
            "",
        ] {
            assert!(!is_compressible_type(t), "{t}");
        }
    }
}
