//! Files that are never a page: configuration and dotfiles (always), and
//! with `deny_backups` what a backup, a deploy or an editor leaves in a
//! document root: archives, dumps and databases, logs and rotated logs,
//! editor backups and swap files, VCS and build files.

use super::segments::Segments;
use crate::pipeline::asset::is_asset;

/// Why a file (its lowercased path's segments) is refused, if it is.
pub fn refused(seg: &Segments<'_>, deny_backups: bool) -> Option<&'static str> {
    let name = seg.name;
    // `wp-config.php`, `wp-config.php.bak`, `wp-config-sample.php`,
    // `wp-config~`; not a post slug such as `wp-config-explained`.
    if name.starts_with("wp-config") && name.contains(['.', '~', '#']) {
        return Some("configuration");
    }
    if !deny_backups {
        return None;
    }
    if seg.vcs {
        return Some("version control");
    }
    // A folder (`/`, `/2024/05/`): every other rule is about a file's name.
    if name.is_empty() || is_plain_asset(name) {
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
    if is_key_or_credentials(name) {
        return Some("keys or credentials");
    }
    // The media library takes archives (a download offered in a post);
    // anywhere else, or in a folder named like a backup, they are backups.
    let in_uploads = seg.lower.starts_with("/wp-content/uploads/");
    if is_archive(name) && (!in_uploads || seg.backup_folder) {
        return Some("archive");
    }
    None
}

/// An asset by its extension ([`is_asset`]), with nothing in its name that
/// any rule below looks for: no rule can refuse it, and most requests are
/// for such files. (Each rule's suffixes are other extensions; the names
/// they list are not of these types but three build scripts, checked
/// here.)
fn is_plain_asset(name: &str) -> bool {
    is_asset(name)
        && !name.starts_with(['#', 'e', 'a'])
        && !has_php_dot(name)
        && !is_build_file(name)
}

/// The part of `name` after its last dot (`None` without one).
fn extension(name: &str) -> Option<&str> {
    name.rsplit_once('.').map(|(_, ext)| ext)
}

/// Compression a dump or a log may carry.
fn is_compression(ext: &str) -> bool {
    matches!(ext, "gz" | "bz2" | "xz" | "zst" | "zip")
}

/// `name` without one compression suffix.
fn uncompressed(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((base, ext)) if is_compression(ext) => base,
        _ => name,
    }
}

// The suffix lists below are extensions (one dot), matched on the last
// one: a `match` on it, not a scan of every suffix. `.tar.gz` and its kin
// are archives by their last extension.

fn is_archive(name: &str) -> bool {
    extension(name).is_some_and(|ext| {
        matches!(
            ext,
            "zip"
                | "tar"
                | "tgz"
                | "tbz"
                | "tbz2"
                | "txz"
                | "7z"
                | "rar"
                | "gz"
                | "bz2"
                | "xz"
                | "zst"
                | "lz"
                | "lz4"
                | "lzma"
                | "war"
                | "jar"
                | "iso"
                | "cab"
                | "dmg"
        )
    })
}

fn is_dump(name: &str) -> bool {
    // SQLite's side files; a numbered copy (`x.sql.1`).
    let name = uncompressed(name);
    let name = ["-wal", "-shm", "-journal"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    let name = strip_number(name);
    extension(name).is_some_and(|ext| {
        matches!(
            ext,
            "sql"
                | "mysql"
                | "dump"
                | "sqlite"
                | "sqlite3"
                | "sqlitedb"
                | "db"
                | "db3"
                | "mdb"
                | "bson"
                | "wpress"
                | "rdb"
                | "mdf"
                | "ldf"
                | "frm"
                | "ibd"
                | "myd"
                | "myi"
                | "dbf"
                | "accdb"
        )
    })
}

/// `x.1` → `x`: a numbered copy or rotation.
fn strip_number(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

/// `debug.log`, `php_errors.log.1`, `access.log.2.gz`, `debug.log-20240101`,
/// `error_log`, `access_log`.
fn is_log(name: &str) -> bool {
    let name = uncompressed(name);
    for bare in ["error_log", "access_log"] {
        let rest = name.strip_prefix(bare);
        if rest.is_some_and(|r| r.is_empty() || r.starts_with(['.', '-'])) {
            return true;
        }
    }
    // Rotated: `.log` then `.N` or `-DATE`.
    let name = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let name = name.strip_suffix(['.', '-']).unwrap_or(name);
    name.ends_with(".log")
}

fn is_editor_leftover(name: &str) -> bool {
    // A copy of a script under another name (`index.php.1`,
    // `wp-login.php.txt`): served as text, it shows the code.
    (name.starts_with('#') && name.ends_with('#'))
        || name.ends_with('~')
        || has_php_dot(name)
        || extension(name).is_some_and(|ext| {
            matches!(
                ext,
                "bak"
                    | "backup"
                    | "old"
                    | "orig"
                    | "save"
                    | "swp"
                    | "swo"
                    | "swn"
                    | "tmp"
                    | "kate-swp"
                    | "copy"
                    | "rej"
            )
        })
}

/// `.php.` in a name: a script's copy.
fn has_php_dot(name: &str) -> bool {
    let b = name.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'.' && b[i..].starts_with(b".php."))
}

fn is_build_file(name: &str) -> bool {
    const NAMES: [&str; 31] = [
        "gemfile",
        "gemfile.lock",
        "rakefile",
        "vagrantfile",
        "procfile",
        "webpack.config.js",
        "tsconfig.json",
        "bower.json",
        "compose.yaml",
        "compose.yml",
        "composer.phar",
        "wp-cli.yml",
        "wp-cli.local.yml",
        "web.config",
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

/// Private keys, certificates' keys, and files that hold credentials.
fn is_key_or_credentials(name: &str) -> bool {
    const NAMES: [&str; 9] = [
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "sftp-config.json",
        "auth.json",
        "credentials.json",
        "secrets.json",
        "known_hosts",
    ];
    NAMES.contains(&name)
        || extension(name)
            .is_some_and(|ext| matches!(ext, "pem" | "key" | "p12" | "pfx" | "keystore" | "ppk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_at(path: &str) -> bool {
        let lower = path.to_ascii_lowercase();
        refused(&Segments::of(&lower), true).is_some()
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
            "/debug.log-20240101",
            "/access_log",
            "/db.sqlite-wal",
            "/db.sqlite-journal",
            "/x.mysql",
            "/x.sqlitedb",
            "/x.sql.1",
            "/dump.rdb",
            "/x.mdf",
            "/CVS/Entries",
            "/_darcs/prefs/boring",
            "/Gemfile",
            "/webpack.config.js",
            "/compose.yaml",
            "/composer.phar",
            "/wp-cli.yml",
            "/x.war",
            "/x.tar.lz4",
            "/x.copy",
            "/index.php.1",
            "/id_rsa",
            "/server.pem",
            "/private.key",
            "/sftp-config.json",
            "/auth.json",
            "/web.config",
        ] {
            assert!(refused_at(p), "{p} must be refused");
        }
    }

    #[test]
    fn assets_named_like_leftovers_are_still_refused() {
        for p in [
            "/gulpfile.js",
            "/webpack.config.js",
            "/wp-content/themes/x/gruntfile.js",
            "/index.php.js",
            "/error_log.css",
            "/access_log.png",
            "/index.php.pdf",
            "/x.sql.mp4~",
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
        assert!(refused(&Segments::of("/wp-config.php"), false).is_some());
        assert!(refused(&Segments::of("/backup.zip"), false).is_none());
    }
}
