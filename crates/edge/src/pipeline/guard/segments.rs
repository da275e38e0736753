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

impl<'a> Segments<'a> {
    /// Every request's path goes through here (assets too): one walk over
    /// its bytes that finds the segments and what is in them at once
    /// (`split('/')` ran a string searcher per segment, and each question
    /// walked the segment again: some 700 instructions more for an asset's
    /// path).
    pub fn of(lower: &'a str) -> Segments<'a> {
        let mut s = Segments {
            lower,
            ..Segments::default()
        };
        let bytes = lower.as_bytes();
        let mut walk = Walk::default();
        let (mut start, mut index) = (0, 0);
        // Neither needle holds a `/`: a match lies inside one segment.
        let (mut php, mut backup) = (false, false);
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'/' => {
                    s.segment(index, &lower[start..i], php, backup, &mut walk);
                    (start, index) = (i + 1, index + 1);
                    (php, backup) = (false, false);
                }
                b'.' => php |= bytes[i..].starts_with(b".php"),
                b'b' => backup |= bytes[i..].starts_with(b"backup"),
                _ => {}
            }
        }
        s.segment(index, &lower[start..], php, backup, &mut walk);
        s
    }

    /// What segment `i` of the path says; `php` and `backup`: it holds
    /// `.php`, `backup`.
    fn segment(&mut self, i: usize, seg: &'a str, php: bool, backup: bool, walk: &mut Walk) {
        // Every segment but the last: a folder.
        self.backup_folder |= walk.previous_backup;
        walk.previous_backup = backup;
        if i == 1 {
            self.first = seg;
        }
        self.name = seg;
        if seg.is_empty() {
            return;
        }
        let leading = !walk.first_seen;
        walk.first_seen = true;
        self.dotfile |= seg.starts_with('.') && !(leading && seg == ".well-known");
        self.wp_config |= seg.starts_with("wp-config");
        self.has_php |= php;
        self.runs_php |= seg.ends_with(".php");
        self.php_like |= php || seg.ends_with(".phtml") || seg.ends_with(".phar");
        self.vcs |= seg == "cvs" || seg == "_darcs";
    }
}

/// What the walk carries from one segment to the next.
#[derive(Default)]
struct Walk {
    first_seen: bool,
    previous_backup: bool,
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
