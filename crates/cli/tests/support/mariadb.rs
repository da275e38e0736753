//! A private MariaDB on a unix socket in the test's temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;

/// A private MariaDB on a unix socket, no TCP.
pub struct Mariadb {
    pub socket: PathBuf,
    tmpdir: PathBuf,
    datadir: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Mariadb {
    pub fn start(dir: &Path) -> Mariadb {
        let datadir = dir.join("db");
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let user = if is_root() {
            "root".to_string()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        // A private tmpdir: concurrent bootstraps in a shared /tmp collide
        // on their temporary tables.
        let tmpdir = dir.join("db-tmp");
        std::fs::create_dir_all(&tmpdir).unwrap();
        let out = Command::new(program("mariadb-install-db"))
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg(format!("--user={user}"))
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = Mariadb {
            socket: run.join("mysqld.sock"),
            tmpdir,
            datadir,
            log: dir.join("mariadb.log"),
            proc: None,
        };
        db.boot();
        db
    }

    fn boot(&mut self) {
        let user = if is_root() {
            "root".to_string()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        let mut cmd = Command::new(program("mariadbd"));
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.datadir.display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--tmpdir={}", self.tmpdir.display()))
            .arg(format!(
                "--pid-file={}",
                self.datadir.join("mariadb.pid").display()
            ))
            .arg(format!("--user={user}"))
            .args([
                "--skip-networking",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=2",
            ]);
        self.proc = Some(Proc::spawn("mariadbd", &mut cmd, &self.log));
        let sock = self.socket.clone();
        wait_until(
            "MariaDB to accept connections",
            Duration::from_secs(60),
            || {
                Command::new("mariadb")
                    .arg("-S")
                    .arg(&sock)
                    .args(["-e", "SELECT 1"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            },
        );
    }

    pub fn sql(&self, q: &str) {
        let out = Command::new("mariadb")
            .arg("-S")
            .arg(&self.socket)
            .args(["-e", q])
            .output()
            .expect("mariadb client");
        assert!(
            out.status.success(),
            "SQL {q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A clean shutdown (SIGTERM, then wait).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("TERM");
            assert!(
                p.wait_exit(Duration::from_secs(60)).is_some(),
                "MariaDB did not stop"
            );
        }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.stop();
    }
}
