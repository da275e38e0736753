//! The site's private MariaDB: a data directory initialised once with
//! `mariadb-install-db`, served on a unix socket only (`--skip-networking`),
//! a `wordpress` database and a least-privilege `wp` user, and the dump and
//! import that backups use. Administration goes through the `mariadb` client
//! over the socket with unix-socket authentication: no root password exists.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::accounts::{self, Accounts};
use crate::layout::Layout;
use crate::prereq::Programs;

pub const DATABASE: &str = "wordpress";
pub const USER: &str = "wp";

/// What WordPress needs, and no more: no GRANT, FILE, PROCESS, SUPER.
const PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, \
     CREATE TEMPORARY TABLES, LOCK TABLES, REFERENCES";

/// Initialises the data directory unless it exists ([`prepare_dirs`] first). The new directory is
/// built beside its final place and renamed in, so a failed initialisation
/// never leaves a half-made `db/` that the next `up` would trust.
pub fn init(layout: &Layout, programs: &Programs, accounts: &Accounts) -> anyhow::Result<bool> {
    let db = layout.db();
    if db.join("mysql").is_dir() {
        return Ok(false);
    }
    if db.exists() {
        bail!(
            "{} exists but holds no MariaDB data directory; move it away and run `murakumo up` again",
            db.display()
        );
    }
    let log = layout.log("mariadb-install");
    crate::atomic::create_dir(&db, |partial| {
        let out = Command::new(&programs.mariadb_install_db)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", partial.display()))
            .arg(format!("--tmpdir={}", layout.tmp("mariadb").display()))
            .arg(format!("--user={}", accounts.db_user_name()))
            .args(["--auth-root-authentication-method=socket", "--skip-test-db"])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", programs.mariadb_install_db.display()))?;
        std::fs::write(&log, [out.stdout, out.stderr].concat())
            .with_context(|| format!("writing {}", log.display()))?;
        if !out.status.success() {
            bail!(
                "mariadb-install-db failed ({}); see {}",
                out.status,
                log.display()
            );
        }
        Ok(())
    })?;
    Ok(true)
}

/// The directories MariaDB writes, owned by its account.
pub fn prepare_dirs(layout: &Layout, accounts: &Accounts) -> anyhow::Result<()> {
    for dir in [layout.mariadb_run(), layout.tmp("mariadb")] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        accounts::give(&dir, accounts.db.as_ref())?;
    }
    Ok(())
}

/// The server's command line (started by the supervisor, in the sandbox).
pub fn server_args(layout: &Layout, accounts: &Accounts) -> Vec<String> {
    let mut args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", layout.db().display()),
        format!("--tmpdir={}", layout.tmp("mariadb").display()),
        format!("--socket={}", layout.mariadb_socket().display()),
        format!(
            "--pid-file={}",
            layout.mariadb_run().join("mariadbd.pid").display()
        ),
        "--skip-networking".into(),
        "--skip-name-resolve".into(),
        "--character-set-server=utf8mb4".into(),
        "--collation-server=utf8mb4_unicode_ci".into(),
        // A small site on a small machine; raise it in a bigger one.
        "--innodb-buffer-pool-size=128M".into(),
        "--max-connections=100".into(),
    ];
    if accounts.db.is_some() {
        args.push(format!("--user={}", accounts.db_user_name()));
    }
    args
}

/// Where a stack's MariaDB may write.
pub fn writable(layout: &Layout) -> Vec<std::path::PathBuf> {
    // Its log is the descriptor the supervisor opened for it.
    vec![layout.db(), layout.tmp("mariadb"), layout.mariadb_run()]
}

/// Whether the server answers on its socket.
pub fn answers(layout: &Layout) -> bool {
    std::os::unix::net::UnixStream::connect(layout.mariadb_socket()).is_ok()
}

/// A client program (`mariadb`, `mariadb-dump`) connected as the database
/// administrator: this process's user, by unix-socket authentication.
fn client(program: &Path, layout: &Layout) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("--no-defaults")
        .arg(format!("--socket={}", layout.mariadb_socket().display()))
        .arg(format!("--user={}", accounts::current_user_name()));
    cmd
}

/// Runs SQL as the database administrator.
/// The SQL goes through stdin, so passwords never appear in `ps`.
pub fn admin_sql(layout: &Layout, programs: &Programs, sql: &str) -> anyhow::Result<String> {
    let mut child = client(&programs.mariadb, layout)
        .args(["--batch", "--skip-column-names"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", programs.mariadb.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(sql.as_bytes())
            .context("sending SQL to mariadb")?;
    }
    let out = child.wait_with_output().context("waiting for mariadb")?;
    if !out.status.success() {
        bail!(
            "SQL failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A quoted SQL string literal (MariaDB escapes with backslashes too).
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Creates the database and WordPress's user, and (re)sets its password
/// from the secret, so a changed secret takes effect on the next start.
pub fn ensure_database(layout: &Layout, programs: &Programs, password: &str) -> anyhow::Result<()> {
    let password = sql_string(password);
    let sql = format!(
        "CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n\
         CREATE USER IF NOT EXISTS '{USER}'@'localhost' IDENTIFIED BY {password};\n\
         ALTER USER '{USER}'@'localhost' IDENTIFIED BY {password};\n\
         GRANT {PRIVILEGES} ON `{DATABASE}`.* TO '{USER}'@'localhost';\n"
    );
    admin_sql(layout, programs, &sql).context("creating the database and its user")?;
    Ok(())
}

/// Writes a consistent dump of the site's database to `out`.
pub fn dump(layout: &Layout, programs: &Programs, out: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let status = client(&programs.mariadb_dump, layout)
        .args([
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--hex-blob",
        ])
        .args(["--default-character-set=utf8mb4", DATABASE])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {}", programs.mariadb_dump.display()))?;
    if !status.status.success() {
        bail!(
            "mariadb-dump failed: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        );
    }
    Ok(())
}

/// Loads a dump into the site's (empty) database.
pub fn import(layout: &Layout, programs: &Programs, dump: &Path) -> anyhow::Result<()> {
    let input = std::fs::File::open(dump).with_context(|| format!("opening {}", dump.display()))?;
    let out = client(&programs.mariadb, layout)
        .arg(DATABASE)
        .stdin(input)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {}", programs.mariadb.display()))?;
    if !out.status.success() {
        bail!(
            "loading the database dump failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sql_string;

    #[test]
    fn sql_strings_are_quoted_and_escaped() {
        assert_eq!(sql_string("abc"), "'abc'");
        assert_eq!(sql_string("it's"), "'it\\'s'");
        assert_eq!(sql_string("a\\' OR 1=1 --"), "'a\\\\\\' OR 1=1 --'");
    }
}
