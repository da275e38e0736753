//! An entry as bytes, for the shared tier: what one edge stored, every
//! other edge can read back and serve (status, headers, the identity, gzip
//! and brotli bodies, tags, and its times as wall-clock milliseconds, since
//! an `Instant` means nothing to another process).
//!
//! The format is ours and versioned by its first four bytes; [`decode`]
//! takes bytes from the network and refuses anything it cannot read whole
//! (never a panic, never a partial entry). Bodies are slices of the input,
//! not copies.
//!
//! ```text
//! "MKE1" status:u16 stored:u64 fresh:u64 stale:u64     (unix ms, little-endian)
//! tags: u32 count (u32::MAX: untagged), each u16 length + bytes
//! headers: u32 count, each u16 name length + name, u32 value length + value
//! identity: u32 length + bytes; gzip, br: u8 present + (u32 length + bytes)
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::store::Entry;
use crate::tags::Tags;

const MAGIC: &[u8; 4] = b"MKE1";
const UNTAGGED: u32 = u32::MAX;

/// Why bytes are not an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Not this format (another version, or not an entry at all).
    Format,
    /// Ends before the entry does.
    Truncated,
    /// A field that cannot be what it says (a status, a header, a tag).
    Invalid(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Format => f.write_str("not a stored page of this version"),
            WireError::Truncated => f.write_str("a stored page cut short"),
            WireError::Invalid(what) => write!(f, "a stored page with a bad {what}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Milliseconds since the epoch of an instant, `now` being `wall`.
fn wall_ms(at: Instant, now: Instant, wall: SystemTime) -> u64 {
    let wall = if at >= now {
        wall + (at - now)
    } else {
        wall.checked_sub(now - at).unwrap_or(UNIX_EPOCH)
    };
    wall.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The instant of a wall-clock time, `now` being `wall`.
fn instant_of(ms: u64, now: Instant, wall: SystemTime) -> Instant {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    match at.duration_since(wall) {
        Ok(ahead) => now.checked_add(ahead).unwrap_or(now),
        Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    wall_ms(Instant::now(), Instant::now(), SystemTime::now())
}

/// The entry as bytes.
pub fn encode(entry: &Entry) -> Bytes {
    encode_at(entry, Instant::now(), SystemTime::now())
}

fn encode_at(entry: &Entry, now: Instant, wall: SystemTime) -> Bytes {
    let bodies = entry.identity.len()
        + entry.gzip.as_ref().map_or(0, Bytes::len)
        + entry.br.as_ref().map_or(0, Bytes::len);
    let mut out = BytesMut::with_capacity(bodies + 1024);
    out.put_slice(MAGIC);
    out.put_u16_le(entry.status.as_u16());
    for at in [entry.stored_at, entry.fresh_until, entry.stale_until] {
        out.put_u64_le(wall_ms(at, now, wall));
    }
    match &entry.tags {
        None => out.put_u32_le(UNTAGGED),
        Some(tags) => {
            out.put_u32_le(tags.len() as u32);
            for tag in tags.iter() {
                // At most MAX_TAG_LEN bytes (Tags' own rule).
                out.put_u16_le(tag.len() as u16);
                out.put_slice(tag.as_bytes());
            }
        }
    }
    out.put_u32_le(entry.headers.len() as u32);
    for (name, value) in &entry.headers {
        out.put_u16_le(name.as_str().len() as u16);
        out.put_slice(name.as_str().as_bytes());
        out.put_u32_le(value.len() as u32);
        out.put_slice(value.as_bytes());
    }
    out.put_u32_le(entry.identity.len() as u32);
    out.put_slice(&entry.identity);
    for form in [&entry.gzip, &entry.br] {
        match form {
            None => out.put_u8(0),
            Some(b) => {
                out.put_u8(1);
                out.put_u32_le(b.len() as u32);
                out.put_slice(b);
            }
        }
    }
    out.freeze()
}

/// The entry these bytes hold, its times on this process's clock. Its
/// ready heads are not built ([`Entry::decorated`] does that).
pub fn decode(bytes: &Bytes) -> Result<Entry, WireError> {
    decode_at(bytes, Instant::now(), SystemTime::now())
}

fn decode_at(bytes: &Bytes, now: Instant, wall: SystemTime) -> Result<Entry, WireError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != &MAGIC[..] {
        return Err(WireError::Format);
    }
    let status = StatusCode::from_u16(r.u16()?).map_err(|_| WireError::Invalid("status"))?;
    let mut times = [now; 3];
    for t in &mut times {
        *t = instant_of(r.u64()?, now, wall);
    }
    let [stored_at, fresh_until, stale_until] = times;
    let tags = match r.u32()? {
        UNTAGGED => None,
        n => {
            let mut list = Vec::new();
            for _ in 0..n {
                let len = r.u16()? as usize;
                let tag =
                    std::str::from_utf8(r.take(len)?).map_err(|_| WireError::Invalid("tag"))?;
                list.push(tag);
            }
            // A label this edge would not keep is not trusted from another.
            Some(Tags::parse(list).ok_or(WireError::Invalid("tag"))?)
        }
    };
    let count = r.u32()?;
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        let len = r.u16()? as usize;
        let name =
            HeaderName::from_bytes(r.take(len)?).map_err(|_| WireError::Invalid("header"))?;
        let len = r.u32()? as usize;
        let value =
            HeaderValue::from_bytes(r.take(len)?).map_err(|_| WireError::Invalid("header"))?;
        headers.append(name, value);
    }
    let identity = r.body()?;
    let gzip = r.optional_body()?;
    let br = r.optional_body()?;
    if r.at != bytes.len() {
        return Err(WireError::Invalid("length"));
    }
    Ok(Entry::stored(
        status,
        headers,
        [identity, gzip.unwrap_or_default(), br.unwrap_or_default()],
        [stored_at, fresh_until, stale_until],
        tags,
    ))
}

struct Reader<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).ok_or(WireError::Truncated)?;
        let bytes: &'a [u8] = self.bytes;
        let s = bytes.get(self.at..end).ok_or(WireError::Truncated)?;
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_le_bytes)
    }

    fn body(&mut self) -> Result<Bytes, WireError> {
        let len = self.u32()? as usize;
        let start = self.at;
        self.take(len)?;
        Ok(self.bytes.slice(start..start + len))
    }

    fn optional_body(&mut self) -> Result<Option<Bytes>, WireError> {
        match self.array::<1>()? {
            [0] => Ok(None),
            [1] => self.body().map(Some),
            _ => Err(WireError::Invalid("body flag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;
    use proptest::prelude::*;

    fn entry(body: &str, tags: Option<&str>) -> Entry {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        h.append(
            "link",
            HeaderValue::from_static("<https://a/>; rel=shortlink"),
        );
        h.append(
            "link",
            HeaderValue::from_static("<https://a/wp-json/>; rel=api"),
        );
        if let Some(t) = tags {
            h.insert(crate::tags::TAGS_HEADER, HeaderValue::from_str(t).unwrap());
        }
        let tags = Tags::take(&mut h);
        Entry::build(
            StatusCode::OK,
            h,
            Bytes::from(body.to_string()),
            Duration::from_secs(60),
            Duration::from_secs(600),
            tags,
        )
    }

    fn same(a: &Entry, b: &Entry) {
        assert_eq!(a.status, b.status);
        assert_eq!(a.headers, b.headers);
        assert_eq!(a.identity, b.identity);
        assert_eq!(a.gzip, b.gzip);
        assert_eq!(a.br, b.br);
        assert_eq!(a.tags, b.tags);
    }

    #[test]
    fn an_entry_comes_back_whole_with_its_times() {
        let e = entry(&"<p>hello</p>".repeat(300), Some("p:1 q:post t:7"));
        assert!(e.gzip.is_some() && e.br.is_some());
        let now = Instant::now();
        let wall = SystemTime::now();
        let bytes = encode_at(&e, now, wall);
        // Another process, 5 s later on both clocks.
        let later = now + Duration::from_secs(5);
        let back = decode_at(&bytes, later, wall + Duration::from_secs(5)).unwrap();
        same(&e, &back);
        let close = |a: Instant, b: Instant| {
            let d = if a > b { a - b } else { b - a };
            assert!(d < Duration::from_millis(2), "{d:?}");
        };
        close(back.stored_at, e.stored_at);
        close(back.fresh_until, e.fresh_until);
        close(back.stale_until, e.stale_until);
        // Untagged, uncompressed.
        let e = entry("tiny", None);
        let back = decode(&encode(&e)).unwrap();
        same(&e, &back);
        assert!(back.gzip.is_none() && back.tags.is_none());
    }

    #[test]
    fn what_is_not_an_entry_is_refused() {
        let bytes = encode(&entry(&"x".repeat(2000), Some("p:1")));
        assert_eq!(
            decode(&Bytes::from_static(b"MKE2")).unwrap_err(),
            WireError::Format
        );
        for cut in [0, 3, 4, 10, 40, bytes.len() - 1] {
            assert!(decode(&bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(&Bytes::from(longer)).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut v = MAGIC.to_vec();
            v.extend(data);
            let _ = decode(&Bytes::from(v));
        }

        #[test]
        fn any_page_round_trips(body in ".{0,3000}", tags in proptest::option::of("[a-z]:[0-9]{1,4}( [a-z]:[0-9]{1,4}){0,5}")) {
            let e = entry(&body, tags.as_deref());
            let back = decode(&encode(&e)).unwrap();
            prop_assert_eq!(&e.headers, &back.headers);
            prop_assert_eq!(&e.identity, &back.identity);
            prop_assert_eq!(&e.br, &back.br);
            prop_assert_eq!(&e.tags, &back.tags);
        }
    }
}
