//! Files that are never a page: configuration and dotfiles (always), and
//! with `deny_backups` what a backup, a deploy or an editor leaves in a
//! document root: archives, dumps and databases, logs and rotated logs,
//! editor backups and swap files, VCS and build files.

/// Why a file (its lowercased path and name) is refused, if it is.
pub fn refused(lower_path: &str, name: &str, deny_backups: bool) -> Option<&'static str> {
    // `wp-config.php`, `wp-config.php.bak`, `wp-config-sample.php`,
    // `wp-config~`; not a post slug such as `wp-config-explained`.
    if name.starts_with("wp-config") && name.contains(['.', '~', '#']) {
        return Some("configuration");
    }
    if !deny_backups {
        return None;
    }
    if is_dump(name) {
        return Some("dump or database");
    }
    if is_log(name) {
        return Some("log");
    }
    if is_editor_leftover(name) {
        return Some("editor backup");
    }
    if is_build_file(name) {
        return Some("build file");
    }
    // The media library takes archives (a download offered in a post);
    // anywhere else, or in a folder named like a backup, they are backups.
    let in_uploads = lower_path.starts_with("/wp-content/uploads/");
    let backup_folder = lower_path
        .split('/')
        .rev()
        .skip(1)
        .any(|s| s.contains("backup"));
    if is_archive(name) && (!in_uploads || backup_folder) {
        return Some("archive");
    }
    None
}

/// Compression suffixes a dump or a log may carry.
const COMPRESSED: [&str; 5] = [".gz", ".bz2", ".xz", ".zst", ".zip"];

/// `name` without one compression suffix.
fn uncompressed(name: &str) -> &str {
    COMPRESSED
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

fn is_archive(name: &str) -> bool {
    const SUFFIXES: [&str; 16] = [
        ".zip", ".tar", ".tgz", ".tbz", ".tbz2", ".txz", ".tar.gz", ".tar.bz2", ".tar.xz",
        ".tar.zst", ".7z", ".rar", ".gz", ".bz2", ".xz", ".zst",
    ];
    SUFFIXES.iter().any(|s| name.ends_with(s))
}

fn is_dump(name: &str) -> bool {
    const SUFFIXES: [&str; 9] = [
        ".sql", ".dump", ".sqlite", ".sqlite3", ".db", ".db3", ".mdb", ".bson", ".wpress",
    ];
    let name = uncompressed(name);
    SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `debug.log`, `php_errors.log.1`, `access.log.2.gz`, `error_log`.
fn is_log(name: &str) -> bool {
    let name = uncompressed(name);
    if name == "error_log" || name.starts_with("error_log.") {
        return true;
    }
    // Rotated: `.log` then `.N`.
    let name = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let name = name.strip_suffix('.').unwrap_or(name);
    name.ends_with(".log")
}

fn is_editor_leftover(name: &str) -> bool {
    const SUFFIXES: [&str; 12] = [
        ".bak",
        ".backup",
        ".old",
        ".orig",
        ".save",
        ".swp",
        ".swo",
        ".swn",
        ".tmp",
        ".un~",
        ".kate-swp",
        "~",
    ];
    (name.starts_with('#') && name.ends_with('#')) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

fn is_build_file(name: &str) -> bool {
    const NAMES: [&str; 17] = [
        "composer.json",
        "composer.lock",
        "package.json",
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "gulpfile.js",
        "gruntfile.js",
        "phpunit.xml",
        "phpunit.xml.dist",
        "phpcs.xml",
        "phpcs.xml.dist",
        "makefile",
        "dockerfile",
        "docker-compose.yml",
        "docker-compose.yaml",
        "installed.json",
    ];
    NAMES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_at(path: &str) -> bool {
        let lower = path.to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or("").to_string();
        refused(&lower, &name, true).is_some()
    }

    #[test]
    fn what_backups_deploys_and_editors_leave_is_refused() {
        for p in [
            "/site.tar.gz",
            "/backup.zip",
            "/db.sql.xz",
            "/db.sql.bz2",
            "/dump.sqlite3",
            "/wordpress.db",
            "/error_log",
            "/wp-content/debug.log.1",
            "/php_errors.log.1",
            "/access.log.2.gz",
            "/composer.json",
            "/wp-content/plugins/x/package.json",
            "/vendor/composer/installed.json",
            "/index.php.save",
            "/.index.php.swp",
            "/#index.php#",
            "/style.css~",
            "/wp-content/uploads/backwpup-123-backups/site.zip",
            "/wp-content/uploads/2024/05/db.sql.gz",
            "/wp-content/ai1wm-backups/site.wpress",
        ] {
            assert!(refused_at(p), "{p} must be refused");
        }
    }

    #[test]
    fn pages_media_and_assets_are_not() {
        for p in [
            "/",
            "/2024/05/my-backup-strategy/",
            "/wp-content/uploads/2024/05/slides.zip",
            "/wp-content/uploads/2024/05/photo.jpg",
            "/wp-content/themes/x/style.css",
            "/wp-content/themes/x/theme.json",
            "/wp-includes/js/jquery/jquery.min.js",
            "/catalog/",
            "/blog.html",
        ] {
            assert!(!refused_at(p), "{p} must be served");
        }
    }

    #[test]
    fn configuration_is_refused_even_with_backups_allowed() {
        assert!(refused("/wp-config.php", "wp-config.php", false).is_some());
        assert!(refused("/backup.zip", "backup.zip", false).is_none());
    }
}
