//! `murakumo upgrade`: WordPress core replaced while the site serves. The
//! new core is copied beside the old one; WordPress's database upgrade runs
//! from it there (a core that does not load, or an upgrade that fails,
//! stops everything before the site sees the new core); then it is swapped
//! in with one atomic rename (`renameat2(RENAME_EXCHANGE)`: at every
//! instant the core path holds one whole core), the php-fpm pools reload,
//! and the page cache is purged. The old core stays as `wordpress.previous`
//! until the next upgrade.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};

use crate::accounts::Accounts;
use crate::control::absolute;
use crate::layout::{Layout, Role};
use crate::prereq::Programs;
use crate::{php_fpm, process, secrets, site_config, wordpress};

const UPGRADER: &str = include_str!("php/upgrade.php");

/// What an upgrade did.
pub struct Upgraded {
    pub from: String,
    pub to: String,
    /// `db_version` before and after.
    pub db: (String, String),
    /// Whether the page cache was purged (the edge may be stopped).
    pub purged: bool,
}

/// `murakumo upgrade --dir DIR [--wordpress SOURCE]`.
pub fn upgrade(dir: &Path, source: &Path) -> anyhow::Result<Option<Upgraded>> {
    let layout = Layout::new(absolute(dir)?);
    let core = layout.core();
    if !layout.config().exists() || !core.join("wp-settings.php").is_file() {
        bail!(
            "{}: no murakumo site here (no murakumo.toml or wordpress/)",
            layout.dir().display()
        );
    }
    let from = wordpress::version(&core).unwrap_or_else(|| "unknown".into());
    let Some(to) = wordpress::version(source).filter(|_| source.join("wp-settings.php").is_file())
    else {
        bail!(
            "{}: no WordPress core here (no wp-settings.php or wp-includes/version.php); give --wordpress the directory of the new core",
            source.display()
        );
    };
    if to == from && same_tree(source, &core) {
        return Ok(None);
    }
    if !crate::mariadb::answers(&layout) {
        bail!(
            "the site's database does not answer ({}); start the site with `murakumo up --dir {}` first",
            layout.mariadb_socket().display(),
            layout.dir().display()
        );
    }
    let next = sibling(&core, "next");
    let _ = std::fs::remove_dir_all(&next);
    wordpress::build_core(source, &next)?;
    let db = match migrate(&layout, &next) {
        Ok(db) => db,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&next);
            return Err(e.context(format!(
                "upgrading WordPress {from} to {to} failed; WordPress {from} serves as before"
            )));
        }
    };
    exchange(&next, &core)?;
    // `next` now holds the old core. The pools start over on the new one
    // (no PHP cached from the old core runs beside the new).
    reload_pools(&layout);
    let previous = sibling(&core, "previous");
    let _ = std::fs::remove_dir_all(&previous);
    std::fs::rename(&next, &previous)
        .with_context(|| format!("keeping the old core as {}", previous.display()))?;
    let purged = purge(&layout);
    Ok(Some(Upgraded {
        from,
        to,
        db,
        purged,
    }))
}

/// A graceful reload of the php-fpm pools (SIGUSR2): requests in progress
/// finish, new ones wait on the socket, fresh workers start with an empty
/// opcache. Returns once the old workers are gone (at most 15 s), so no
/// PHP compiled from the old core answers after it.
fn reload_pools(layout: &Layout) {
    let mut old = Vec::new();
    for role in [Role::PhpPublic, Role::PhpAdmin] {
        if let Some(pid) = process::live_pid(&layout.pid_file(role), layout.dir()) {
            old.extend(process::children(pid));
            process::signal(pid, rustix::process::Signal::USR2);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while old.iter().any(|&pid| process::is_alive(pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `wordpress` → `wordpress.NAME`, beside it.
fn sibling(core: &Path, name: &str) -> PathBuf {
    let mut p = core.as_os_str().to_owned();
    p.push(".");
    p.push(name);
    PathBuf::from(p)
}

/// Swaps two directories in one step: no instant without a core.
fn exchange(a: &Path, b: &Path) -> anyhow::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .with_context(|| format!("swapping {} and {}", a.display(), b.display()))
}

/// Whether two cores hold the same version file (a re-run with the same
/// source is a no-op).
fn same_tree(a: &Path, b: &Path) -> bool {
    let version = |p: &Path| std::fs::read(p.join("wp-includes/version.php")).ok();
    version(a).is_some() && version(a) == version(b)
}

/// WordPress's database upgrade, run as the admin pool would run it, by
/// the core in `core`.
fn migrate(layout: &Layout, core: &Path) -> anyhow::Result<(String, String)> {
    let settings = site_config::load(layout)?;
    let programs = Programs::find(&layout.core())?;
    let accounts = Accounts::detect()?;
    let env = php_fpm::wordpress_env(layout, &settings.ops_url(""), settings.redis)?;
    let work = layout.tmp("php-admin");
    let script = work.join("upgrade.php");
    crate::atomic::write_file(&script, UPGRADER, 0o644)?;
    let out = wordpress::php_command(&programs, &accounts, &env)
        .arg(&script)
        .arg(layout.wp_config())
        .arg(settings.home_url())
        .arg(core)
        .current_dir(&work)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", programs.php.display()))?;
    let _ = std::fs::remove_file(&script);
    let log = layout.log("wordpress-upgrade");
    let _ = std::fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat());
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.trim();
        bail!(
            "the database upgrade failed ({}): {}; see {}",
            out.status,
            if said.is_empty() { "no message" } else { said },
            log.display()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace().skip(1);
    let before = words.next().unwrap_or("?").to_string();
    let after = words.next().unwrap_or("?").to_string();
    Ok((before, after))
}

/// Every cached page was rendered by the old core: the site's cache is
/// purged. A stopped edge has nothing cached. True when the edge said 200.
fn purge(layout: &Layout) -> bool {
    let Ok(settings) = site_config::load(layout) else {
        return false;
    };
    let Ok(token) = secrets::read(layout, secrets::PURGE_TOKEN) else {
        return false;
    };
    let ops = settings.ops_listen;
    let request = format!(
        "POST /purge?all=1&reason=core%20upgraded HTTP/1.1\r\nHost: {ops}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect_timeout(&ops, std::time::Duration::from_secs(2))
    else {
        return false;
    };
    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut answer = Vec::new();
    c.write_all(request.as_bytes()).is_ok()
        && c.read_to_end(&mut answer).is_ok()
        && answer.starts_with(b"HTTP/1.1 200")
}
