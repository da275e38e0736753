//! One real php-fpm master with one pool, on a unix socket in the test's
//! temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;

/// One php-fpm master with one pool.
pub struct PhpFpm {
    pub socket: PathBuf,
    pub access_log: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl PhpFpm {
    pub fn start(dir: &Path, name: &str, env: &[(&str, String)]) -> PhpFpm {
        PhpFpm::start_sized(dir, name, env, 4, "")
    }

    /// A pool of `children` static workers; `extra` is appended to the pool.
    pub fn start_sized(
        dir: &Path,
        name: &str,
        env: &[(&str, String)],
        children: usize,
        extra: &str,
    ) -> PhpFpm {
        let socket = dir.join(format!("{name}.sock"));
        let access_log = dir.join(format!("{name}-access.log"));
        let conf = dir.join(format!("{name}-fpm.conf"));
        let mut text = format!(
            "[global]\nerror_log = {dir}/{name}-fpm.log\ndaemonize = no\npid = {dir}/{name}-fpm.pid\n\n[{name}]\nlisten = {sock}\npm = static\npm.max_children = {children}\naccess.log = {access}\naccess.format = \"%m %r%Q%q %s uri=%{{REQUEST_URI}}e;\"\ncatch_workers_output = yes\ndecorate_workers_output = no\nclear_env = yes\nphp_admin_value[memory_limit] = 256M\n",
            dir = dir.display(),
            sock = socket.display(),
            access = access_log.display(),
            children = children,
        );
        for (k, v) in env {
            text.push_str(&format!("env[{k}] = {v}\n"));
        }
        text.push_str(extra);
        std::fs::write(&conf, text).unwrap();
        let mut fpm = PhpFpm {
            socket,
            access_log,
            conf,
            log: dir.join(format!("{name}-fpm.out")),
            proc: None,
        };
        fpm.boot();
        fpm
    }

    pub fn boot(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new(program("php-fpm8.2"));
        if is_root() {
            cmd.arg("-R");
        }
        cmd.arg("-F").arg("-y").arg(&self.conf);
        self.proc = Some(Proc::spawn("php-fpm", &mut cmd, &self.log));
        let sock = self.socket.clone();
        wait_until("php-fpm socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("QUIT");
            assert!(
                p.wait_exit(Duration::from_secs(20)).is_some(),
                "php-fpm did not stop"
            );
        }
    }

    /// Kills php-fpm at once (SIGKILL to the master, workers included), as a
    /// crash or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            // Workers first listed, then the master killed (so it cannot
            // replace them), then the workers, which hold the socket too.
            let out = Command::new("pgrep")
                .args(["-P", &p.pid().to_string()])
                .output()
                .expect("pgrep (procps)");
            p.signal("KILL");
            for worker in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", worker]).status();
            }
            let _ = p.wait_exit(Duration::from_secs(10));
        }
    }

    /// Sends a signal to the php-fpm master ("USR2": graceful reload).
    pub fn signal(&self, sig: &str) {
        if let Some(p) = &self.proc {
            p.signal(sig);
        }
    }

    /// Requests whose method and script (`GET /index.php`, not the URI)
    /// contain `needle`.
    pub fn requests_for(&self, needle: &str) -> usize {
        self.log_lines()
            .iter()
            .filter(|l| l.split(" uri=").next().unwrap_or("").contains(needle))
            .count()
    }

    /// Requests PHP was given with exactly this `REQUEST_URI`.
    pub fn requests_with_uri(&self, request_uri: &str) -> usize {
        let needle = format!(" uri={request_uri};");
        self.log_lines()
            .iter()
            .filter(|l| l.contains(&needle))
            .count()
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.stop();
    }
}
