//! Which PHP may run, and which of WordPress's own files may be read. A
//! WordPress site is entered through a few scripts (`index.php`,
//! `wp-login.php`, `wp-admin/*.php`, `wp-cron.php`, …); the libraries under
//! `wp-includes/` and `wp-admin/includes/` are loaded by those and are not
//! meant to run by themselves (run directly, some print paths or errors).
//! The readmes tell the versions of core, plugins and themes to anyone
//! looking for a known hole.

/// WordPress's entry points at the top of the document root: the scripts a
/// browser, a feed reader or a pingback is sent to. Any other script there
/// (`wp-load.php`, `wp-settings.php`, a forgotten `phpinfo.php` or
/// `adminer.php`) does not run.
const ROOT_ENTRY_POINTS: [&str; 10] = [
    "index.php",
    "wp-login.php",
    "wp-cron.php",
    "wp-comments-post.php",
    "wp-signup.php",
    "wp-activate.php",
    "wp-trackback.php",
    "wp-links-opml.php",
    "wp-mail.php",
    "xmlrpc.php",
];

/// Scripts under `wp-includes/` that are entry points.
const INCLUDES_ENTRY_POINTS: [&str; 2] = [
    "/wp-includes/js/tinymce/wp-tinymce.php",
    "/wp-includes/ms-files.php",
];

/// Files that tell versions.
const VERSION_FILES: [&str; 8] = [
    "readme.html",
    "readme.txt",
    "readme.md",
    "license.txt",
    "licence.txt",
    "changelog.txt",
    "changelog.md",
    "changes.txt",
];

use super::segments::Segments;

/// Why a lowercased, normalised path may not be run or read, if it may not.
pub fn refused(seg: &Segments<'_>) -> Option<&'static str> {
    let lower = seg.lower;
    if VERSION_FILES.contains(&seg.name) {
        return Some("version file");
    }
    let library = ["/wp-includes/", "/wp-admin/includes/"]
        .iter()
        .any(|dir| lower.starts_with(dir));
    if library && seg.runs_php && !INCLUDES_ENTRY_POINTS.iter().any(|e| runs(lower, e)) {
        return Some("php library run directly");
    }
    // A theme's PHP is templates and parts, run by WordPress only.
    if lower.starts_with("/wp-content/themes/") && seg.runs_php {
        return Some("theme php run directly");
    }
    // Must-use plugins and drop-ins (`object-cache.php`, `advanced-cache.php`,
    // `db.php` at the top of wp-content) are loaded by WordPress only; run
    // directly they answer an empty page.
    let drop_in = lower
        .strip_prefix("/wp-content/")
        .is_some_and(|rest| rest.split('/').next().is_some_and(|f| f.ends_with(".php")));
    if seg.runs_php && (drop_in || lower.starts_with("/wp-content/mu-plugins/")) {
        return Some("must-use plugin or drop-in run directly");
    }
    let first = seg.first;
    if first.ends_with(".php") && !ROOT_ENTRY_POINTS.contains(&first) {
        return Some("not a WordPress entry point");
    }
    None
}

fn runs(lower: &str, script: &str) -> bool {
    lower
        .strip_prefix(script)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_at(path: &str) -> bool {
        let lower = path.to_ascii_lowercase();
        refused(&Segments::of(&lower)).is_some()
    }

    #[test]
    fn libraries_and_version_files_are_refused() {
        for p in [
            "/readme.html",
            "/license.txt",
            "/wp-content/plugins/akismet/readme.txt",
            "/wp-content/themes/twentytwentythree/readme.txt",
            "/wp-includes/version.php",
            "/wp-includes/rss-functions.php",
            "/wp-includes/blocks/index.php/x",
            "/wp-admin/includes/admin.php",
            "/WP-INCLUDES/Version.PHP",
            "/phpinfo.php",
            "/phpinfo.php/x",
            "/wp-load.php",
            "/wp-settings.php",
            "/wp-blog-header.php",
            "/adminer.php",
            "/wp-content/themes/twentytwentythree/patterns/footer-default.php",
            "/wp-content/themes/x/functions.php",
            "/wp-content/object-cache.php",
            "/wp-content/advanced-cache.php",
            "/wp-content/db.php/x",
            "/wp-content/mu-plugins/murakumo-purge.php",
            "/wp-content/mu-plugins/sub/loader.php",
        ] {
            assert!(refused_at(p), "{p} must be refused");
        }
    }

    #[test]
    fn entry_points_and_assets_are_not() {
        for p in [
            "/",
            "/index.php",
            "/wp-login.php",
            "/wp-cron.php",
            "/wp-admin/",
            "/wp-admin/post.php",
            "/wp-admin/admin-ajax.php",
            "/wp-admin/network/sites.php",
            "/wp-includes/js/tinymce/wp-tinymce.php",
            "/wp-includes/css/dist/block-library/style.min.css",
            "/wp-includes/js/jquery/jquery.min.js",
            "/wp-comments-post.php",
            "/xmlrpc.php",
            "/index.php/2024/05/hello/",
            "/wp-content/plugins/akismet/akismet.php",
            "/wp-content/themes/x/style.css",
            "/wp-content/mu-plugins/helper/script.js",
            "/wp-content/uploads/2024/05/photo.jpg",
        ] {
            assert!(!refused_at(p), "{p} must be allowed");
        }
    }
}
