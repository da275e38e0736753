//! A real redis-server on a free loopback port, with a password, in the
//! test's temp dir; nothing saved to disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;

/// The test server's password (a test checks it never reaches a log).
pub const PASSWORD: &str = "test-redis-secret";

pub struct Redis {
    pub port: u16,
    pub password_file: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Redis {
    pub fn start(dir: &Path) -> Redis {
        let port = free_port();
        let password = PASSWORD;
        let password_file = dir.join("redis-password");
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        let conf = dir.join("redis.conf");
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {port}\nrequirepass {password}\nsave \"\"\nappendonly no\ndir {dir}\nmaxmemory 64mb\nmaxmemory-policy allkeys-lru\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let mut redis = Redis {
            port,
            password_file,
            conf,
            log: dir.join("redis.log"),
            proc: None,
        };
        redis.boot();
        redis
    }

    /// Starts (again) on the same port.
    pub fn boot(&mut self) {
        let mut cmd = Command::new(program("redis-server"));
        cmd.arg(&self.conf);
        self.proc = Some(Proc::spawn("redis-server", &mut cmd, &self.log));
        let port = self.port;
        wait_until("redis-server", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Kills it at once (SIGKILL): what a crash looks like to the edges.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            p.wait_exit(Duration::from_secs(5));
        }
    }

    /// Sends a signal ("STOP": it hangs, "CONT": it goes on).
    pub fn signal(&self, sig: &str) {
        if let Some(p) = &self.proc {
            p.signal(sig);
        }
    }

    /// `[server.shared_cache]` for this server.
    pub fn section(&self) -> String {
        format!(
            "[server.shared_cache]\nredis = \"redis://127.0.0.1:{}/0\"\npassword_file = \"{}\"\n",
            self.port,
            self.password_file.display()
        )
    }

    /// Runs redis-cli with the password (from the environment, not argv).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .env("REDISCLI_AUTH", PASSWORD)
            .output()
            .expect("redis-cli is not installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
