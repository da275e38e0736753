//! `murakumo backup` and `murakumo restore`: one `.tar.zst` holding a
//! consistent snapshot of a site: the database (`mariadb-dump
//! --single-transaction`, so a running site keeps serving), `content/`,
//! `murakumo.toml` and a manifest; the secrets only when asked. Core is not
//! in it: it comes from the WordPress package, and the manifest records its
//! version.
//!
//! Both write beside their target and rename into place (backup), or build
//! the new directory and remove it again on any failure (restore), so a
//! failure never leaves something half-made that looks whole.

use std::path::{Path, PathBuf};
use std::process::Child;

use anyhow::{bail, Context};

use crate::accounts::Accounts;
use crate::control::absolute;
use crate::layout::{Layout, Role};
use crate::prereq::Programs;
use crate::site_config::{self, SiteSettings};
use crate::supervisor::{Signals, Stack};
use crate::{mariadb, secrets, supervisor, wordpress};

const MANIFEST: &str = "murakumo-backup.txt";
const DUMP: &str = "db.sql";

/// `murakumo backup`.
pub fn backup(dir: &Path, out: &Path, with_secrets: bool, exe: &Path) -> anyhow::Result<()> {
    let layout = Layout::new(absolute(dir)?);
    if !layout.config().exists() || !layout.db().is_dir() {
        bail!(
            "{}: no murakumo site here (no murakumo.toml or db/)",
            layout.dir().display()
        );
    }
    let stack = Stack {
        layout: layout.clone(),
        programs: Programs::find(&layout.core())?,
        accounts: Accounts::detect()?,
        settings: site_config::load(&layout)?,
        env: Vec::new(),
        exe: exe.to_path_buf(),
    };
    let staging = layout.tmp("backup");
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let dump = staging.join(DUMP);
    {
        let _db = DatabaseSession::open(&stack)?;
        mariadb::dump(&layout, &stack.programs, &dump)?;
    }
    let manifest = format!(
        "murakumo {}\nsite {}\nwordpress {}\nsecrets {}\n",
        env!("CARGO_PKG_VERSION"),
        layout.dir().display(),
        wordpress::version(&layout.core()).unwrap_or_else(|| "unknown".into()),
        if with_secrets {
            "included"
        } else {
            "not included"
        },
    );
    let partial = out.with_extension("partial");
    let written = write_archive(&layout, &partial, &manifest, &dump, with_secrets);
    let _ = std::fs::remove_file(&dump);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, out).with_context(|| format!("creating {}", out.display()))?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({:.1} MB; secrets {})",
        layout.dir().display(),
        out.display(),
        size as f64 / 1e6,
        if with_secrets {
            "included: keep it safe"
        } else {
            "not included"
        }
    );
    Ok(())
}

fn write_archive(
    layout: &Layout,
    path: &Path,
    manifest: &str,
    dump: &Path,
    with_secrets: bool,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // The dump holds users' e-mail addresses and password hashes: owner only.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let encoder = zstd::Encoder::new(file, 9).context("starting compression")?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    let context = || format!("writing {}", path.display());
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, manifest.as_bytes())
        .with_context(context)?;
    tar.append_path_with_name(layout.config(), "murakumo.toml")
        .with_context(context)?;
    tar.append_path_with_name(dump, DUMP)
        .with_context(context)?;
    tar.append_dir_all("content", layout.content())
        .with_context(context)?;
    if with_secrets {
        tar.append_dir_all("secrets", layout.secrets())
            .with_context(context)?;
    }
    let encoder = tar.into_inner().with_context(context)?;
    let file = encoder.finish().with_context(context)?;
    file.sync_all().with_context(context)?;
    Ok(())
}

/// What `restore` is asked for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub dir: PathBuf,
    pub archive: PathBuf,
    pub port: Option<u16>,
    pub ops_port: Option<u16>,
    pub wordpress: PathBuf,
}

/// `murakumo restore`: a new site directory from a backup.
pub fn restore(req: &RestoreRequest, exe: &Path) -> anyhow::Result<()> {
    let layout = Layout::new(absolute(&req.dir)?);
    if layout.dir().exists()
        && std::fs::read_dir(layout.dir())
            .with_context(|| format!("reading {}", layout.dir().display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; restore into a new directory (a site is never overwritten)",
            layout.dir().display()
        );
    }
    let programs = Programs::find(&req.wordpress)?;
    let accounts = Accounts::detect()?;
    crate::accounts::check_reachable(layout.dir(), &accounts)?;
    let existed = layout.dir().exists();
    let result = restore_into(req, &layout, &programs, &accounts, exe);
    if result.is_err() {
        // Leave nothing that the next `up` or `restore` would take for a site.
        if existed {
            if let Ok(entries) = std::fs::read_dir(layout.dir()) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_dir_all(e.path())
                        .or_else(|_| std::fs::remove_file(e.path()));
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(layout.dir());
        }
    }
    result
}

fn restore_into(
    req: &RestoreRequest,
    layout: &Layout,
    programs: &Programs,
    accounts: &Accounts,
    exe: &Path,
) -> anyhow::Result<()> {
    for dir in [layout.dir().to_path_buf(), layout.run(), layout.logs()] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let staging = layout.tmp("restore");
    std::fs::create_dir_all(&staging)?;
    let file = std::fs::File::open(&req.archive)
        .with_context(|| format!("opening {}", req.archive.display()))?;
    let decoder = zstd::Decoder::new(file).context("reading the archive")?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(true);
    // `unpack` refuses entries that would land outside `staging`.
    archive.unpack(&staging).with_context(|| {
        format!(
            "unpacking {} (is it a murakumo backup?)",
            req.archive.display()
        )
    })?;
    let manifest = std::fs::read_to_string(staging.join(MANIFEST)).with_context(|| {
        format!(
            "{} is not a murakumo backup (no {MANIFEST})",
            req.archive.display()
        )
    })?;
    let old_dir = manifest
        .lines()
        .find_map(|l| l.strip_prefix("site "))
        .context("the backup's manifest names no site directory")?
        .to_string();

    // The configuration, moved to this directory and these ports.
    let old_config = std::fs::read_to_string(staging.join("murakumo.toml"))
        .context("the backup has no murakumo.toml")?;
    let old = site_config::load(&Layout::new(staging.clone()))
        .context("reading the backed-up murakumo.toml")?;
    let new = SiteSettings {
        listen: std::net::SocketAddr::new(old.listen.ip(), req.port.unwrap_or(old.listen.port())),
        ops_listen: std::net::SocketAddr::new(
            old.ops_listen.ip(),
            req.ops_port.unwrap_or(old.ops_listen.port()),
        ),
        host: old.host.clone(),
        tls_listen: old.tls_listen,
        // Only MariaDB runs for a restore; the next `up` reads the rest.
        redis: false,
    };
    let config = old_config
        .replace(&old_dir, &layout.dir().display().to_string())
        .replace(
            &format!("\"{}\"", old.listen),
            &format!("\"{}\"", new.listen),
        )
        .replace(
            &format!("\"{}\"", old.ops_listen),
            &format!("\"{}\"", new.ops_listen),
        );
    std::fs::write(layout.config(), config)
        .with_context(|| format!("writing {}", layout.config().display()))?;

    // Secrets: the backed-up ones, or new ones.
    let secrets_included = staging.join("secrets").is_dir();
    if secrets_included {
        std::fs::rename(staging.join("secrets"), layout.secrets())?;
    }
    secrets::ensure(layout, accounts)?;

    std::fs::rename(staging.join("content"), layout.content())
        .context("the backup has no content/")?;
    wordpress::install_core(layout, &req.wordpress)?;
    wordpress::ensure_content(layout, &req.wordpress, accounts)?;
    crate::accounts::give_tree(&layout.content(), accounts.web.as_ref())?;
    // The next `up` writes them as the restored murakumo.toml says.
    wordpress::write_wp_config(layout, false)?;

    mariadb::prepare_dirs(layout, accounts)?;
    mariadb::init(layout, programs, accounts)?;
    {
        let stack = Stack {
            layout: layout.clone(),
            programs: programs.clone(),
            accounts: accounts.clone(),
            settings: new.clone(),
            env: Vec::new(),
            exe: exe.to_path_buf(),
        };
        let _db = DatabaseSession::open(&stack)?;
        mariadb::ensure_database(
            layout,
            programs,
            &secrets::read(layout, secrets::DB_PASSWORD)?,
        )?;
        mariadb::import(layout, programs, &staging.join(DUMP))?;
        let home = mariadb::sql_string(&new.home_url());
        let mut sql = format!(
            "UPDATE `{db}`.wp_options SET option_value = {home} WHERE option_name IN ('home', 'siteurl');\n",
            db = mariadb::DATABASE
        );
        if !secrets_included {
            // New secrets, so the admin gets the new password (WordPress
            // accepts an MD5 hash once and rehashes it at the next login).
            let pw = mariadb::sql_string(&secrets::read(layout, secrets::ADMIN_PASSWORD)?);
            sql.push_str(&format!(
                "UPDATE `{db}`.wp_users SET user_pass = MD5({pw}) WHERE user_login = 'admin';\n",
                db = mariadb::DATABASE
            ));
        }
        mariadb::admin_sql(layout, programs, &sql)
            .context("pointing the restored site at its URL")?;
    }
    std::fs::remove_dir_all(&staging).ok();
    println!(
        "restored {} into {}",
        req.archive.display(),
        layout.dir().display()
    );
    if !secrets_included {
        println!(
            "  new secrets were generated; the admin's password is now the one in {}",
            layout.secret(secrets::ADMIN_PASSWORD).display()
        );
    }
    println!(
        "  start it with: murakumo up --dir {}",
        layout.dir().display()
    );
    Ok(())
}

/// The site's MariaDB for the length of a backup or restore: the running
/// one, or one started for the purpose as `up` starts it (sandboxed, under
/// its account) and shut down cleanly.
struct DatabaseSession<'a> {
    stack: &'a Stack,
    started: Option<Child>,
}

impl<'a> DatabaseSession<'a> {
    fn open(stack: &'a Stack) -> anyhow::Result<DatabaseSession<'a>> {
        let layout = &stack.layout;
        if mariadb::answers(layout) {
            return Ok(DatabaseSession {
                stack,
                started: None,
            });
        }
        if crate::lock::holder(layout).is_some() {
            bail!(
                "the site runs but its MariaDB does not answer on {}; see `murakumo status`",
                layout.mariadb_socket().display()
            );
        }
        mariadb::prepare_dirs(layout, &stack.accounts)?;
        let mut child = stack.spawn(Role::Mariadb)?;
        if let Err(e) = stack.wait_ready(Role::Mariadb, &mut child, &Signals::register()?) {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(layout.pid_file(Role::Mariadb));
            return Err(e);
        }
        Ok(DatabaseSession {
            stack,
            started: Some(child),
        })
    }
}

impl Drop for DatabaseSession<'_> {
    fn drop(&mut self) {
        if let Some(child) = self.started.take() {
            supervisor::stop_child(self.stack, Role::Mariadb, child);
            let _ = std::fs::remove_file(self.stack.layout.pid_file(Role::Mariadb));
        }
    }
}
