//! WordPress in a site directory: core copied once (from Debian's package
//! or `--wordpress DIR`) and never written to afterwards, `content/` kept
//! apart (core's `wp-content` is a symlink to it), a `wp-config.php`
//! generated on every start that takes its secrets from the environment,
//! the one-time install, and our must-use purge plugin.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::accounts::{self, Accounts};
use crate::layout::Layout;
use crate::mariadb;
use crate::prereq::Programs;
use crate::secrets;

const INSTALLER: &str = include_str!("php/install.php");
/// Our must-use plugins, written into `wp-content/mu-plugins/`.
const MU_PLUGINS: [(&str, &str); 2] = [
    (
        "murakumo-purge.php",
        include_str!("../../../wordpress/mu-plugins/murakumo-purge.php"),
    ),
    (
        "murakumo-server.php",
        include_str!("../../../wordpress/mu-plugins/murakumo-server.php"),
    ),
];

/// Top-level entries of a WordPress tree that are not core.
const NOT_CORE: [&str; 3] = ["wp-content", "wp-config.php", ".htaccess"];

/// Copies core unless present. Built beside its place and renamed in.
pub fn install_core(layout: &Layout, source: &Path) -> anyhow::Result<bool> {
    let core = layout.core();
    if core.join("wp-settings.php").is_file() {
        return Ok(false);
    }
    if core.exists() {
        bail!(
            "{} exists but holds no WordPress (no wp-settings.php); move it away and run `murakumo up` again",
            core.display()
        );
    }
    build_core(source, &core)?;
    Ok(true)
}

/// A copy of core from `source` at `dest` (built beside it and renamed
/// in), its `wp-content` a link to the site's `content/`.
pub fn build_core(source: &Path, dest: &Path) -> anyhow::Result<()> {
    crate::atomic::create_dir(dest, |partial| {
        copy_tree(source, partial, &NOT_CORE)?;
        std::os::unix::fs::symlink("../content", partial.join("wp-content"))
            .context("linking wordpress/wp-content to content/")
    })
}

/// `$wp_version` from core's `wp-includes/version.php`.
pub fn version(core: &Path) -> Option<String> {
    let text = std::fs::read_to_string(core.join("wp-includes/version.php")).ok()?;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("$wp_version"))?;
    Some(line.split('\'').nth(1)?.to_string())
}

/// Creates `content/` from the source's `wp-content` (themes, plugins)
/// unless present; makes sure uploads and mu-plugins exist; as root, gives
/// it to the web account (the admin pool installs plugins and themes).
pub fn ensure_content(layout: &Layout, source: &Path, accounts: &Accounts) -> anyhow::Result<()> {
    let content = layout.content();
    if !content.is_dir() {
        let seed = source.join("wp-content");
        crate::atomic::create_dir(&content, |partial| {
            if seed.is_dir() {
                copy_tree(&seed, partial, &[])
            } else {
                Ok(std::fs::create_dir_all(partial)?)
            }
        })?;
        accounts::give_tree(&content, accounts.web.as_ref())?;
    }
    for dir in [layout.uploads(), layout.mu_plugins()] {
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            accounts::give(&dir, accounts.web.as_ref())?;
        }
    }
    // Ours, so rewritten on every start (an upgrade of murakumo upgrades them).
    for (name, text) in MU_PLUGINS {
        crate::atomic::write_file(&layout.mu_plugins().join(name), text, 0o644)?;
    }
    Ok(())
}

/// PHP source of a single-quoted string literal.
pub fn php_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `wp-config.php`, one level above core (WordPress looks there), so it is
/// outside the document root and survives replacing core. No secret is in
/// it: they come from the pools' environment.
pub fn render_wp_config(layout: &Layout, redis: bool) -> String {
    let path = |p: &Path| php_string(&p.display().to_string());
    wp_config(&WpConfig {
        generator: "`murakumo up`",
        db_name: php_string(mariadb::DATABASE),
        db_user: php_string(mariadb::USER),
        db_host: format!("'localhost:' . {}", path(&layout.mariadb_socket())),
        core: path(&layout.core()),
        cron_from_outside: true,
        mu_plugin_dir: None,
        core_upgrade: php_string(&format!(
            "run murakumo upgrade --dir {} (after apt upgrade wordpress)",
            layout.dir().display()
        )),
        object_cache: redis.then(|| php_string(&crate::redis::address(layout))),
    })
}

/// What differs between the `wp-config.php` of `murakumo up` and of the
/// container image: PHP expressions for the database coordinates and core.
pub struct WpConfig<'a> {
    pub generator: &'a str,
    pub db_name: String,
    pub db_user: String,
    pub db_host: String,
    pub core: String,
    /// WordPress's cron is run on a clock from outside (the supervisor of
    /// `up`, the edge's `wp_cron` in containers), not by page views.
    pub cron_from_outside: bool,
    /// A must-use plugins directory outside wp-content (a PHP literal): the
    /// runtime image's own, so its plugins come with the image.
    pub mu_plugin_dir: Option<String>,
    /// How core is updated here (a PHP literal), for Site Health: WordPress
    /// cannot update a read-only core itself.
    pub core_upgrade: String,
    /// The object cache's Redis (a PHP literal, `MURAKUMO_REDIS`), its
    /// password from the environment (`MURAKUMO_REDIS_PASSWORD`).
    pub object_cache: Option<String>,
}

pub fn wp_config(c: &WpConfig) -> String {
    let mut salts = String::new();
    for salt in secrets::WP_SALTS {
        salts.push_str(&format!(
            "define('{salt}', murakumo_env('MURAKUMO_WP_{salt}'));\n"
        ));
    }
    let cron = if c.cron_from_outside {
        "// murakumo runs wp-cron.php every minute; no loopback request per page view.\ndefine('DISABLE_WP_CRON', true);\n"
    } else {
        ""
    };
    let mu_plugins = match &c.mu_plugin_dir {
        Some(dir) => format!("define('WPMU_PLUGIN_DIR', {dir});\n"),
        None => String::new(),
    };
    let object_cache = match &c.object_cache {
        Some(address) => format!(
            "// The object cache (wp-content/object-cache.php) on murakumo's Redis.\ndefine('MURAKUMO_REDIS', {address});\ndefine('MURAKUMO_REDIS_PASSWORD', (string) getenv('MURAKUMO_REDIS_PASSWORD'));\n"
        ),
        None => String::new(),
    };
    format!(
        r#"<?php
// Generated by {generator} on every start; changes here are overwritten.
// Secrets come from the environment (the php-fpm pools' env[], 0600).
function murakumo_env($name) {{
    $value = getenv($name);
    if (!is_string($value) || $value === '') {{
        error_log("murakumo: the environment variable $name is not set");
        if (!headers_sent()) {{ http_response_code(500); }}
        exit(1);
    }}
    return $value;
}}
define('DB_NAME', {db_name});
define('DB_USER', {db_user});
define('DB_PASSWORD', murakumo_env('MURAKUMO_DB_PASSWORD'));
define('DB_HOST', {db_host});
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}$table_prefix = 'wp_';
// Core is read-only and replaced by murakumo as a whole; plugins and themes
// are installed from the admin, but never edited in place.
define('WP_AUTO_UPDATE_CORE', false);
define('MURAKUMO_CORE_UPGRADE', {core_upgrade});
define('DISALLOW_FILE_EDIT', true);
define('FS_METHOD', 'direct');
{cron}{mu_plugins}{object_cache}if (!defined('ABSPATH')) {{
    define('ABSPATH', {core} . '/');
}}
require_once ABSPATH . 'wp-settings.php';
"#,
        generator = c.generator,
        db_name = c.db_name,
        db_user = c.db_user,
        db_host = c.db_host,
        core = c.core,
        core_upgrade = c.core_upgrade,
    )
}

pub fn write_wp_config(layout: &Layout, redis: bool) -> anyhow::Result<()> {
    crate::atomic::write_file(&layout.wp_config(), &render_wp_config(layout, redis), 0o644)
}

/// Our object-cache drop-in, with `up --redis`; without, removed (when it
/// is ours), so Site Health never reports a cache that is not there.
pub fn object_cache(layout: &Layout, redis: bool) -> anyhow::Result<()> {
    object_cache_in(&layout.content(), redis)
}

/// [`object_cache`] in the `wp-content` directory `content`.
pub fn object_cache_in(content: &Path, redis: bool) -> anyhow::Result<()> {
    let path = content.join("object-cache.php");
    if redis {
        return crate::atomic::write_file(&path, OBJECT_CACHE, 0o644);
    }
    let ours = std::fs::read_to_string(&path).is_ok_and(|t| t.contains(OBJECT_CACHE_MARK));
    if ours {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// The object-cache drop-in (`wordpress/object-cache.php`).
pub const OBJECT_CACHE: &str = include_str!("../../../wordpress/object-cache.php");
const OBJECT_CACHE_MARK: &str = "Plugin Name: murakumo object cache";

/// A PHP CLI command with WordPress's environment, run as the web account.
pub fn php_command(programs: &Programs, accounts: &Accounts, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(&programs.php);
    with_php_env(&mut cmd, accounts, env);
    cmd
}

/// Gives `cmd` WordPress's environment (only it) and the web account.
pub fn with_php_env(cmd: &mut Command, accounts: &Accounts, env: &[(String, String)]) {
    use std::os::unix::process::CommandExt;
    cmd.env_clear().env("PATH", "/usr/bin:/bin");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(web) = &accounts.web {
        // As root, std also drops supplementary groups when it sets the uid.
        cmd.uid(web.uid).gid(web.gid);
    }
}

/// Installs WordPress unless installed. Returns whether it installed now.
pub fn install(
    layout: &Layout,
    programs: &Programs,
    accounts: &Accounts,
    env: &[(String, String)],
    home: &str,
    title: &str,
    admin_email: &str,
) -> anyhow::Result<bool> {
    let script = layout.tmp("php-admin").join("install.php");
    crate::atomic::write_file(&script, INSTALLER, 0o644)?;
    let out = php_command(programs, accounts, env)
        .env(
            "MURAKUMO_ADMIN_PASSWORD",
            secrets::read(layout, secrets::ADMIN_PASSWORD)?,
        )
        .arg(&script)
        .arg(layout.wp_config())
        .args([home, title, admin_email])
        .current_dir(layout.tmp("php-admin"))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", programs.php.display()))?;
    let _ = std::fs::remove_file(&script);
    let log = layout.log("wordpress-install");
    let _ = std::fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat());
    if !out.status.success() {
        bail!(
            "installing WordPress failed ({}): {}; see {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            log.display()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "installed")
}

/// Copies a tree, following symlinks (Debian's core links to its own
/// packaged libraries), skipping the named top-level entries.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let Ok(meta) = std::fs::metadata(&src) else {
            // A dangling symlink in the source: nothing to copy.
            continue;
        };
        if meta.is_dir() {
            copy_tree(&src, &dst, &[])?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}
