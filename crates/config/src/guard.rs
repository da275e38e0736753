//! `[site.guard]`: what the edge refuses before the disk or PHP see a
//! request. Every rule is on by default, as hardened WordPress stacks have
//! it; each can be turned off for a site that needs it.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Guard {
    /// Files that are never a page: archives outside the uploads (and in
    /// any `backup` folder), dumps and databases, logs and rotated logs,
    /// editor backups and swap files, VCS and build files
    /// (`composer.json`, `package.json`, …).
    pub deny_backups: bool,
    /// PHP runs only for WordPress's entry points: not the libraries in
    /// `wp-includes/` and `wp-admin/includes/` directly; `readme.html`,
    /// `license.txt` and plugin and theme readmes (which tell versions) are
    /// not served.
    pub entry_points_only: bool,
    /// Visitors who are not logged in cannot list the site's users: the
    /// REST `wp/v2/users` routes, `?author=N`, the users sitemap. WordPress
    /// is told too (the `murakumo-server` plugin refuses them for anyone it
    /// does not know), since a cookie alone proves nothing to the edge.
    pub hide_users: bool,
    /// `X-Content-Type-Options: nosniff` and `Referrer-Policy` on every
    /// answer, `X-Frame-Options: SAMEORIGIN` on the login and admin
    /// screens, each unless PHP sent its own.
    pub security_headers: bool,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            deny_backups: true,
            entry_points_only: true,
            hide_users: true,
            security_headers: true,
        }
    }
}
