//! One pass over a path's segments, for what the guards' rules ask of
//! them: the rules ask about segments a dozen ways, and a path is split
//! once per request, not once per question.

/// What a lowercased, normalised path's segments say.
#[derive(Debug, Default)]
pub struct Segments<'a> {
    pub lower: &'a str,
    /// The first segment (`""` for `/`).
    pub first: &'a str,
    /// The last segment; `""` for a folder (a path ending in `/`).
    pub name: &'a str,
    /// A segment is a dotfile or dot-directory (`.git`, `.env`), other than
    /// a leading `.well-known`.
    pub dotfile: bool,
    /// A segment starts with `wp-config`.
    pub wp_config: bool,
    /// A segment has `.php` in it.
    pub has_php: bool,
    /// A segment ends with `.php` (a script runs there, the rest its
    /// `PATH_INFO`).
    pub runs_php: bool,
    /// A segment has `.php` in it or ends with `.phtml` or `.phar`.
    pub php_like: bool,
    /// A segment is a version-control folder (`CVS`, `_darcs`).
    pub vcs: bool,
    /// A segment before the last has `backup` in it.
    pub backup_folder: bool,
}

fn has(segment: &str, needle: &[u8]) -> bool {
    segment
        .as_bytes()
        .windows(needle.len())
        .any(|w| w == needle)
}

impl<'a> Segments<'a> {
    pub fn of(lower: &'a str) -> Segments<'a> {
        let mut s = Segments {
            lower,
            ..Segments::default()
        };
        let mut first_seen = false;
        let mut previous_backup = false;
        for (i, seg) in lower.split('/').enumerate() {
            // Every segment but the last: a folder.
            s.backup_folder |= previous_backup;
            previous_backup = has(seg, b"backup");
            if i == 1 {
                s.first = seg;
            }
            s.name = seg;
            if seg.is_empty() {
                continue;
            }
            let leading = !first_seen;
            first_seen = true;
            s.dotfile |= seg.starts_with('.') && !(leading && seg == ".well-known");
            s.wp_config |= seg.starts_with("wp-config");
            let php = has(seg, b".php");
            s.has_php |= php;
            s.runs_php |= seg.ends_with(".php");
            s.php_like |= php || seg.ends_with(".phtml") || seg.ends_with(".phar");
            s.vcs |= seg == "cvs" || seg == "_darcs";
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_finds_what_the_rules_ask() {
        let s = Segments::of("/wp-content/backups/2024/db.sql.gz");
        assert_eq!((s.first, s.name), ("wp-content", "db.sql.gz"));
        assert!(s.backup_folder && !s.dotfile && !s.has_php);
        let s = Segments::of("/backup.zip");
        assert!(!s.backup_folder, "the file itself is no folder");
        let s = Segments::of("/.well-known/acme-challenge/x");
        assert!(!s.dotfile);
        let s = Segments::of("/a/.well-known/x");
        assert!(s.dotfile);
        let s = Segments::of("/index.php/feed/");
        assert_eq!((s.first, s.name), ("index.php", ""));
        assert!(s.runs_php && s.has_php && s.php_like);
        let s = Segments::of("/wp-content/uploads/x.phtml");
        assert!(s.php_like && !s.has_php && !s.runs_php);
        let s = Segments::of("/x/cvs/entries");
        assert!(s.vcs);
        let s = Segments::of("/wp-config-dir/");
        assert!(s.wp_config);
        let s = Segments::of("/");
        assert_eq!((s.first, s.name), ("", ""));
    }
}
