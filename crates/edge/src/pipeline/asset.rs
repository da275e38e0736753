//! Browser assets, told by their extension (styles, scripts, images,
//! fonts, media): such a path is a file or a 404, never a page WordPress
//! renders. The pipeline asks the disk before the page cache for them, and
//! the guards' leftover rules, whose suffixes are all other extensions,
//! pass their names by.

/// Whether a path (or a file name) names a browser asset, by the extension
/// of its last segment, in any case. `robots.txt` and sitemaps are pages
/// WordPress makes: not assets.
pub fn is_asset(path: &str) -> bool {
    // The extension: after the last `.` of the last segment.
    let b = path.as_bytes();
    let Some(dot) = b.iter().rposition(|&c| c == b'.' || c == b'/') else {
        return false;
    };
    if b[dot] == b'/' {
        return false;
    }
    let ext = &path[dot + 1..];
    // Lowercased on the stack: this runs for every request.
    let mut lower = [0u8; 5];
    if ext.len() > lower.len() {
        return false;
    }
    lower[..ext.len()].copy_from_slice(ext.as_bytes());
    lower.make_ascii_lowercase();
    matches!(
        &lower[..ext.len()],
        b"css"
            | b"js"
            | b"mjs"
            | b"map"
            | b"png"
            | b"jpg"
            | b"jpeg"
            | b"gif"
            | b"webp"
            | b"avif"
            | b"svg"
            | b"ico"
            | b"bmp"
            | b"woff"
            | b"woff2"
            | b"ttf"
            | b"otf"
            | b"eot"
            | b"mp4"
            | b"webm"
            | b"ogg"
            | b"mp3"
            | b"wav"
            | b"pdf"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_told_by_their_extension() {
        for p in [
            "/a.css",
            "/wp-includes/js/jquery/jquery.min.js",
            "/x/LOGO.PNG",
            "/f.woff2",
        ] {
            assert!(is_asset(p), "{p}");
        }
        for p in [
            "/",
            "/robots.txt",
            "/wp-sitemap.xml",
            "/index.php",
            "/a.css/",
            "/js",
            "/a.jsx",
            "/a.woff22",
        ] {
            assert!(!is_asset(p), "{p}");
        }
    }
}
