//! One pass over a path's segments, for what the guards' rules ask of
//! them: the rules ask about segments a dozen ways, and a path is split
//! once per request, not once per question.

/// What a lowercased, normalised path's segments say.
#[derive(Debug, Default, PartialEq)]
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

/// Whether `needle` is in `segment`: its first byte looked for, the rest
/// compared only there (a segment is short; most bytes are no candidate).
fn has(segment: &str, needle: &[u8]) -> bool {
    let bytes = segment.as_bytes();
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    bytes.len() >= needle.len()
        && bytes[..=bytes.len() - needle.len()]
            .iter()
            .enumerate()
            .any(|(i, &b)| b == first && bytes[i + 1..].starts_with(rest))
}

impl<'a> Segments<'a> {
    /// Every request's path goes through here (assets too): one walk over
    /// its bytes, no string searcher (`split('/')` cost a hundred
    /// instructions a segment).
    pub fn of(lower: &'a str) -> Segments<'a> {
        let mut s = Segments {
            lower,
            ..Segments::default()
        };
        let bytes = lower.as_bytes();
        let mut first_seen = false;
        let mut previous_backup = false;
        let mut start = 0;
        for i in 0.. {
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(bytes.len(), |p| start + p);
            s.segment(i, &lower[start..end], &mut first_seen, &mut previous_backup);
            if end == bytes.len() {
                break;
            }
            start = end + 1;
        }
        s
    }

    /// What segment `i` of the path says.
    fn segment(
        &mut self,
        i: usize,
        seg: &'a str,
        first_seen: &mut bool,
        previous_backup: &mut bool,
    ) {
        // Every segment but the last: a folder.
        self.backup_folder |= *previous_backup;
        *previous_backup = has(seg, b"backup");
        if i == 1 {
            self.first = seg;
        }
        self.name = seg;
        if seg.is_empty() {
            return;
        }
        let leading = !*first_seen;
        *first_seen = true;
        self.dotfile |= seg.starts_with('.') && !(leading && seg == ".well-known");
        self.wp_config |= seg.starts_with("wp-config");
        let php = has(seg, b".php");
        self.has_php |= php;
        self.runs_php |= seg.ends_with(".php");
        self.php_like |= php || seg.ends_with(".phtml") || seg.ends_with(".phar");
        self.vcs |= seg == "cvs" || seg == "_darcs";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reading by `split('/')` and windows that [`Segments::of`]
    /// replaced: its oracle.
    fn by_split(lower: &str) -> Segments<'_> {
        let has =
            |seg: &str, needle: &[u8]| seg.as_bytes().windows(needle.len()).any(|w| w == needle);
        let mut s = Segments {
            lower,
            ..Segments::default()
        };
        let mut first_seen = false;
        let mut previous_backup = false;
        for (i, seg) in lower.split('/').enumerate() {
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

    proptest::proptest! {
        #[test]
        fn one_walk_reads_a_path_as_splitting_did(
            path in "(/(backup|backups|\\.well-known|\\.git|wp-config|x\\.php|a\\.phtml|b\\.phar|cvs|_darcs|\\.php|php|b|\\.|[a-z.]{0,6})){0,6}/?"
        ) {
            proptest::prop_assert_eq!(Segments::of(&path), by_split(&path));
        }

        #[test]
        fn any_path_is_read_as_splitting_did(path in "[/a-z.pbhu_-]{0,30}") {
            proptest::prop_assert_eq!(Segments::of(&path), by_split(&path));
        }
    }

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
