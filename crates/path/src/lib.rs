//! Request path normalisation, done once before routing, guards and the
//! cache key, so that no encoding trick (`%2e%2e`, `%2f`, `//`, `\`, NUL,
//! overlong UTF-8) reaches a denied file or splits a cache entry.
//!
//! Its own crate, with no dependency but `thiserror`: the edge's pipeline
//! and purge orders use it, and its fuzz target builds it alone (not the
//! whole edge with sanitizers).

use std::borrow::Cow;

/// Why a path was refused (always answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path does not start with '/'")]
    NotAbsolute,
    #[error("bad percent-encoding")]
    BadEscape,
    #[error("path is not valid UTF-8")]
    NotUtf8,
    #[error("control character or NUL in path")]
    Control,
    #[error("backslash in path")]
    Backslash,
    #[error("path climbs above the document root")]
    AboveRoot,
}

/// Decodes and normalises the path of a request target: percent-decoded,
/// `.` and empty segments removed, `..` resolved, a trailing `/` kept;
/// borrowed when `raw` is already all that (most requests' paths).
pub fn normalise(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    normalise_slow(raw).map(Cow::Owned)
}

/// The full decode-and-resolve path.
fn normalise_slow(raw: &str) -> Result<String, PathError> {
    let decoded = percent_decode_strict(raw.as_bytes())?;
    let text = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    if text.chars().any(|c| c.is_control()) {
        return Err(PathError::Control);
    }
    if text.contains('\\') {
        return Err(PathError::Backslash);
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(text.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    let trailing = text.ends_with('/') || text.ends_with("/.") || text.ends_with("/..");
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

/// Already normal: printable ASCII without escapes, backslashes, empty,
/// `.` or `..` segments (most requests; the slow path handles the rest).
fn is_canonical(raw: &str) -> bool {
    // One pass over the bytes (this runs for every request): each byte
    // printable and no escape or backslash, each segment but a last empty
    // one neither empty nor `.` nor `..`.
    let b = raw.as_bytes();
    let mut start = 1;
    for i in 1..=b.len() {
        let end = i == b.len();
        let c = if end { b'/' } else { b[i] };
        if !end && (!c.is_ascii_graphic() || c == b'%' || c == b'\\') {
            return false;
        }
        if c == b'/' {
            let seg = &b[start..i];
            if (seg.is_empty() && !end) || seg == b"." || seg == b".." {
                return false;
            }
            start = i + 1;
        }
    }
    true
}

fn percent_decode_strict(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = raw
                .get(i + 1)
                .copied()
                .and_then(hex)
                .ok_or(PathError::BadEscape)?;
            let lo = raw
                .get(i + 2)
                .copied()
                .and_then(hex)
                .ok_or(PathError::BadEscape)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normal_forms() {
        assert_eq!(normalise("/").unwrap(), "/");
        assert_eq!(normalise("/a//b/./c/").unwrap(), "/a/b/c/");
        assert_eq!(normalise("/a/b/../c").unwrap(), "/a/c");
        assert_eq!(normalise("/a%2fb").unwrap(), "/a/b");
        assert_eq!(
            normalise("/wp-content/%2e%2e/wp-config.php").unwrap(),
            "/wp-config.php"
        );
        assert_eq!(normalise("/caf%C3%A9/").unwrap(), "/café/");
        assert_eq!(normalise("/a/..").unwrap(), "/");
    }

    #[test]
    fn tricks_are_refused() {
        assert_eq!(normalise("/../etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(normalise("/%2e%2e/x"), Err(PathError::AboveRoot));
        assert_eq!(normalise("/index.php%00.jpg"), Err(PathError::Control));
        assert_eq!(normalise("/index.php%0a"), Err(PathError::Control));
        assert_eq!(
            normalise("/a%5c..%5cwp-config.php"),
            Err(PathError::Backslash)
        );
        assert_eq!(normalise("/%c0%ae%c0%ae/x"), Err(PathError::NotUtf8)); // overlong '.'
        assert_eq!(normalise("/%zz"), Err(PathError::BadEscape));
        assert_eq!(normalise("/%4"), Err(PathError::BadEscape));
        assert_eq!(normalise("x"), Err(PathError::NotAbsolute));
    }

    proptest! {
        /// The fast path only takes paths the full path leaves unchanged.
        #[test]
        fn fast_path_agrees_with_the_full_path(raw in "/[a-z./%\\\\]{0,30}") {
            if is_canonical(&raw) {
                prop_assert_eq!(normalise_slow(&raw), Ok(raw.clone()));
            }
        }

        /// A normalised path is a fixed point, absolute, and holds no `..`,
        /// `//` or NUL, whatever the input.
        #[test]
        fn normalised_paths_are_canonical(raw in "/[a-z%./\\\\0-9A-F]{0,40}") {
            if let Ok(p) = normalise(&raw) {
                prop_assert!(p.starts_with('/'));
                prop_assert!(!p.contains("//"));
                prop_assert!(!p.split('/').any(|s| s == ".." || s == "."));
                prop_assert!(!p.contains('\0'));
                let escaped = p.replace('%', "%25");
                prop_assert_eq!(normalise(&escaped).unwrap(), p);
            }
        }
    }
}
