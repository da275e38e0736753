//! Who runs what. As root, every process of the stack runs under an
//! unprivileged system account: MariaDB as `mysql`, PHP as `www-data`, the
//! edge as `murakumo` (created on first use, like a package would), and the
//! files each may write or must read are given to that account. As an
//! ordinary user, everything runs as that user and no file changes owner.

use std::path::Path;

use anyhow::Context;

/// A system account, as read from `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The accounts the stack's processes run as.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// `None`: not root, everything runs as the current user.
    pub db: Option<Account>,
    pub web: Option<Account>,
    /// The edge's own account: not PHP's, so a compromised PHP process can
    /// neither signal nor trace the edge, nor read its secrets.
    pub edge: Option<Account>,
    /// Redis's (`up --redis`): Debian's `redis`, when installed.
    pub cache: Option<Account>,
}

/// The edge's system account.
pub const EDGE_ACCOUNT: &str = "murakumo";

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl Accounts {
    pub fn detect() -> anyhow::Result<Accounts> {
        if !is_root() {
            return Ok(Accounts {
                db: None,
                web: None,
                edge: None,
                cache: None,
            });
        }
        let mut passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
        if lookup(&passwd, EDGE_ACCOUNT).is_none() {
            create_system_account(EDGE_ACCOUNT)?;
            passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
        }
        let find = |name: &str, package: &str| {
            lookup(&passwd, name).with_context(|| {
                format!(
                    "running as root, the stack runs as the system account `{name}`, which does not exist \
                     (it comes with the Debian package {package})"
                )
            })
        };
        Ok(Accounts {
            db: Some(find("mysql", "mariadb-server")?),
            web: Some(find("www-data", "base-passwd")?),
            edge: Some(find(EDGE_ACCOUNT, "passwd")?),
            cache: lookup(&passwd, "redis"),
        })
    }

    /// The name MariaDB's `--user` takes, and `mariadb-install-db` gives an
    /// all-privilege unix-socket account to.
    pub fn db_user_name(&self) -> String {
        match &self.db {
            Some(a) => a.name.clone(),
            None => current_user_name(),
        }
    }
}

/// As root, the stack's accounts must be able to reach `dir`: every
/// existing ancestor must be searchable by others (a site under `/root`,
/// mode 0700, is not). Checked before anything is created.
pub fn check_reachable(dir: &Path, accounts: &Accounts) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if accounts.web.is_none() {
        return Ok(());
    }
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        if !meta.is_dir() {
            continue; // creating the directory fails, and says so
        }
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            anyhow::bail!(
                "{} is not searchable by other users (mode {:o}), so the accounts the stack runs as \
                 (mysql, www-data, {EDGE_ACCOUNT}) cannot reach {}; choose a directory elsewhere \
                 (e.g. /srv/murakumo/site) or run `chmod o+x {}`",
                ancestor.display(),
                mode & 0o777,
                dir.display(),
                ancestor.display()
            );
        }
    }
    Ok(())
}

/// Gives `path` (not recursively) to `account`; a no-op when `None`.
pub fn give(path: &Path, account: Option<&Account>) -> anyhow::Result<()> {
    if let Some(a) = account {
        std::os::unix::fs::chown(path, Some(a.uid), Some(a.gid))
            .with_context(|| format!("giving {} to {}", path.display(), a.name))?;
    }
    Ok(())
}

/// Gives a whole tree to `account`; a no-op when `None`. Symlinks are not followed.
pub fn give_tree(path: &Path, account: Option<&Account>) -> anyhow::Result<()> {
    let Some(a) = account else { return Ok(()) };
    std::os::unix::fs::lchown(path, Some(a.uid), Some(a.gid))
        .with_context(|| format!("giving {} to {}", path.display(), a.name))?;
    if path.symlink_metadata()?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            give_tree(&entry?.path(), account)?;
        }
    }
    Ok(())
}

/// Creates a system account with its own group, no home and no shell.
fn create_system_account(name: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home"])
        .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
        .args(["--comment", "murakumo edge", name])
        .output()
        .context("running useradd (Debian package passwd)")?;
    // Exit 9: it exists (created meanwhile by a concurrent `up`).
    if !out.status.success() && out.status.code() != Some(9) {
        anyhow::bail!(
            "creating the system account `{name}` for the edge: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    tracing::info!("created the system account `{name}` for the edge");
    Ok(())
}

fn lookup(passwd: &str, name: &str) -> Option<Account> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != name {
            return None;
        }
        let _password = f.next()?;
        Some(Account {
            name: name.to_string(),
            uid: f.next()?.parse().ok()?,
            gid: f.next()?.parse().ok()?,
        })
    })
}

/// The login name of this process's user: the database account that
/// unix-socket authentication lets this process administer as.
pub fn current_user_name() -> String {
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n";
        assert_eq!(
            lookup(passwd, "www-data"),
            Some(Account {
                name: "www-data".into(),
                uid: 33,
                gid: 33
            })
        );
        assert_eq!(lookup(passwd, "www"), None);
    }
}
