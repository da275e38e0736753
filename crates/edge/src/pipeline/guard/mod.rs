//! Guards, on by default, applied to the normalised path before anything is
//! served: files that must never leave the server ([`files`]), which PHP may
//! run and which of WordPress's own files may be read ([`scripts`]), PHP
//! where uploads live, `xmlrpc.php`, who the users are ([`users`]), and the
//! admin area (its own pool, optional IP allowlist). `[site.guard]` turns
//! each group off.

mod files;
mod scripts;
mod segments;
mod users;

use std::borrow::Cow;
use std::net::IpAddr;

use self::segments::Segments;
use super::context::Context;
use crate::response::{plain, Body, Refusal};
use crate::site::{GuardOptions, Site};
use http::{HeaderMap, StatusCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it; `admin` routes PHP to the admin pool.
    Allow { admin: bool },
    Deny {
        status: StatusCode,
        reason: &'static str,
    },
}

/// What of a request the guards judge.
pub struct Asked<'a> {
    /// The normalised path.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

fn deny(status: StatusCode, reason: &'static str) -> Verdict {
    Verdict::Deny { status, reason }
}

/// Whether a normalised path runs `script` (e.g. "/xmlrpc.php"): the
/// script itself, or the script with PATH_INFO after it
/// ("/xmlrpc.php/anything" runs xmlrpc.php too).
pub fn runs_script(path: &str, script: &str) -> bool {
    path.strip_prefix(script)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a normalised path is in the admin area. `admin-ajax.php` serves
/// anonymous front-end requests and stays public.
pub fn is_admin_path(path: &str) -> bool {
    if runs_script(path, "/wp-login.php") {
        return true;
    }
    (path.starts_with("/wp-admin/") || path == "/wp-admin") && path != "/wp-admin/admin-ajax.php"
}

/// A guard's refusal: its status and no more (what was refused, and why,
/// is for the log only).
#[derive(Debug)]
pub struct Denied(StatusCode);

impl Refusal for Denied {
    fn response(self) -> http::Response<Body> {
        plain(self.0, self.0.canonical_reason().unwrap_or("refused"))
    }
}

/// The guard step: whether the request may go on, and if so whether its
/// PHP runs on the admin pool (told to the outcome too: the admin screens
/// get frame protection).
pub fn admit(ctx: &mut Context<'_>, site: &Site, path: &str) -> Result<bool, Denied> {
    let asked = Asked {
        path,
        query: ctx.req.uri.query(),
        headers: &ctx.req.headers,
    };
    match check(&asked, &site.guard, ctx.conn.remote.ip()) {
        Verdict::Allow { admin } => {
            ctx.outcome.admin = admin;
            Ok(admin)
        }
        Verdict::Deny { status, reason } => {
            tracing::debug!(site = %site.name, path, reason, "guard refused");
            Err(Denied(status))
        }
    }
}

/// Judges a request for a client.
pub fn check(asked: &Asked<'_>, opts: &GuardOptions, client: IpAddr) -> Verdict {
    let path = asked.path;
    let rules = &opts.rules;
    // Most paths are lowercase already: no copy for them.
    let lower: Cow<'_, str> = if path.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(path.to_ascii_lowercase())
    } else {
        Cow::Borrowed(path)
    };
    let lower = &*lower;
    let seg = Segments::of(lower);
    // Dotfiles and dot-directories (.git, .env, .htaccess), except the
    // well-known URIs (ACME challenges, security.txt).
    if seg.dotfile {
        return deny(StatusCode::NOT_FOUND, "dotfile");
    }
    // No PHP runs under a `wp-config*` name, not as the script of a
    // PATH_INFO (`/wp-config-sample.php/x`), not in a folder so named
    // (`/wp-config-dir/index.php`). A post slug (`/wp-config-explained/`)
    // names no script.
    if seg.wp_config && seg.has_php {
        return deny(StatusCode::FORBIDDEN, "configuration");
    }
    if let Some(reason) = files::refused(&seg, rules.deny_backups) {
        return deny(StatusCode::FORBIDDEN, reason);
    }
    if rules.entry_points_only {
        if let Some(reason) = scripts::refused(&seg) {
            return deny(StatusCode::NOT_FOUND, reason);
        }
    }
    if lower.starts_with("/wp-content/uploads/") && seg.php_like {
        return deny(StatusCode::FORBIDDEN, "php in uploads");
    }
    if runs_script(lower, "/xmlrpc.php") && !opts.xmlrpc {
        return deny(StatusCode::FORBIDDEN, "xmlrpc disabled");
    }
    if rules.hide_users {
        if let Some(reason) = users::refused(lower, asked.query, asked.headers) {
            return deny(StatusCode::NOT_FOUND, reason);
        }
    }
    if is_admin_path(path) {
        if let Some(allow) = &opts.admin_allow {
            let client = match client {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(client),
                v4 => v4,
            };
            if !allow.iter().any(|net| net.contains(&client)) {
                return deny(StatusCode::FORBIDDEN, "admin not allowed from this address");
            }
        }
        return Verdict::Allow { admin: true };
    }
    Verdict::Allow { admin: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn at(path: &str, opts: &GuardOptions, client: &str) -> Verdict {
        let headers = HeaderMap::new();
        let asked = Asked {
            path,
            query: None,
            headers: &headers,
        };
        check(&asked, opts, ip(client))
    }

    fn denied(path: &str) -> bool {
        matches!(
            at(path, &GuardOptions::default(), "127.0.0.1"),
            Verdict::Deny { .. }
        )
    }

    #[test]
    fn secrets_and_dotfiles() {
        for p in [
            "/.git/config",
            "/.env",
            "/wp-content/.htaccess",
            "/wp-config.php",
            "/wp-config.php.bak",
            "/wp-config.old",
            "/wp-config-sample.php/x",
            "/wp-config.php/",
            "/wp-config-dir/index.php",
            "/wp-content/plugins/wp-config-editor/x.php",
            "/dump.sql",
            "/backup/db.sql.gz",
            "/wp-content/debug.log",
            "/index.php~",
            "/WP-CONFIG.PHP",
        ] {
            assert!(denied(p), "{p} must be denied");
        }
        for p in [
            "/",
            "/index.php",
            "/.well-known/acme-challenge/x",
            "/wp-content/themes/x/style.css",
            "/2024/05/hello/",
            "/wp-config-explained/",
            "/wp-config-explained",
        ] {
            assert!(!denied(p), "{p} must be allowed");
        }
    }

    #[test]
    fn php_in_uploads() {
        assert!(denied("/wp-content/uploads/2024/evil.php"));
        assert!(denied("/wp-content/uploads/evil.php/x.jpg"));
        assert!(denied("/wp-content/uploads/evil.PHP"));
        assert!(denied("/wp-content/uploads/a.phtml"));
        assert!(!denied("/wp-content/uploads/2024/photo.jpg"));
    }

    #[test]
    fn xmlrpc_off_unless_enabled() {
        assert!(denied("/xmlrpc.php"));
        // With PATH_INFO it still runs xmlrpc.php.
        assert!(denied("/xmlrpc.php/"));
        assert!(denied("/xmlrpc.php/x"));
        assert!(!denied("/xmlrpc-guide/"));
        let on = GuardOptions {
            xmlrpc: true,
            ..Default::default()
        };
        assert_eq!(
            at("/xmlrpc.php", &on, "1.2.3.4"),
            Verdict::Allow { admin: false }
        );
    }

    #[test]
    fn admin_paths_and_allowlist() {
        let opts = GuardOptions {
            admin_allow: Some(vec!["10.0.0.0/8".parse().unwrap()]),
            ..Default::default()
        };
        assert_eq!(
            at("/wp-admin/", &opts, "10.1.2.3"),
            Verdict::Allow { admin: true }
        );
        assert_eq!(
            at("/wp-login.php", &opts, "::ffff:10.1.2.3"),
            Verdict::Allow { admin: true }
        );
        assert!(matches!(
            at("/wp-admin/options.php", &opts, "8.8.8.8"),
            Verdict::Deny {
                status: StatusCode::FORBIDDEN,
                ..
            }
        ));
        assert!(matches!(
            at("/wp-login.php", &opts, "8.8.8.8"),
            Verdict::Deny { .. }
        ));
        // PATH_INFO after the script does not take it out of the admin area.
        assert!(matches!(
            at("/wp-login.php/x", &opts, "8.8.8.8"),
            Verdict::Deny { .. }
        ));
        assert_eq!(
            at("/wp-admin/admin-ajax.php", &opts, "8.8.8.8"),
            Verdict::Allow { admin: false }
        );
        assert_eq!(at("/", &opts, "8.8.8.8"), Verdict::Allow { admin: false });
        assert_eq!(
            at("/wp-admin/", &GuardOptions::default(), "8.8.8.8"),
            Verdict::Allow { admin: true }
        );
    }
}
