//! The supervisor: runs the stack's processes (each in the write sandbox,
//! in a process group of its own so a terminal's Ctrl-C reaches only the
//! supervisor), restarts a php-fpm pool or the edge that dies, with
//! backoff, and never restarts MariaDB (a crash loop over a damaged data
//! directory makes things worse): it reports it loudly instead. It runs
//! WordPress's cron every minute, forwards SIGHUP to the edge (reload), and
//! on SIGINT/SIGTERM stops everything in reverse order: the edge first (no
//! new requests), then the pools, then MariaDB, shut down cleanly.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rustix::process::Signal;

use crate::accounts::Accounts;
use crate::layout::{Layout, Role};
use crate::prereq::Programs;
use crate::site_config::SiteSettings;
use crate::{mariadb, php_fpm, probe, process, redis, wordpress};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long before dying starts again from the first backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
const CRON_EVERY: Duration = Duration::from_secs(60);
/// A process's log is rotated (one old copy kept) beyond this size.
const LOG_LIMIT: u64 = 64 * 1024 * 1024;

/// Signals the supervisor acts on, set from signal handlers.
#[derive(Clone)]
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
}

impl Signals {
    pub fn register() -> anyhow::Result<Signals> {
        let s = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            reload: Arc::new(AtomicBool::new(false)),
        };
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, s.stop.clone())
                .context("installing signal handlers")?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, s.reload.clone())
            .context("installing signal handlers")?;
        Ok(s)
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Everything needed to start the stack's processes.
pub struct Stack {
    pub layout: Layout,
    pub programs: Programs,
    pub accounts: Accounts,
    pub settings: SiteSettings,
    /// WordPress's environment (secrets), for the PHP CLI (cron).
    pub env: Vec<(String, String)>,
    /// This binary: the edge and the sandbox are subcommands of it.
    pub exe: PathBuf,
}

struct Supervised {
    role: Role,
    child: Option<Child>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

/// The running processes, in start order.
pub struct Running {
    procs: Vec<Supervised>,
    cron: Option<Child>,
    next_cron: Instant,
}

impl Stack {
    fn command(&self, role: Role) -> Command {
        let (program, args, writable): (PathBuf, Vec<String>, Vec<PathBuf>) = match role {
            Role::Mariadb => (
                self.programs.mariadbd.clone(),
                mariadb::server_args(&self.layout, &self.accounts),
                mariadb::writable(&self.layout),
            ),
            Role::Redis => (
                self.programs.redis_server.clone(),
                redis::args(&self.layout),
                redis::writable(&self.layout),
            ),
            Role::PhpPublic | Role::PhpAdmin => (
                self.programs.php_fpm.clone(),
                php_fpm::args(&self.layout, role),
                php_fpm::writable(&self.layout, role),
            ),
            // The edge writes no file: logs go to the descriptor it inherits.
            Role::Edge => (
                self.exe.clone(),
                vec![
                    "serve".into(),
                    "--config".into(),
                    self.layout.config().display().to_string(),
                ],
                Vec::new(),
            ),
        };
        let mut cmd = Command::new(&self.exe);
        let account = match role {
            Role::Edge => self.edge_account(),
            Role::Redis => self.accounts.cache.as_ref(),
            _ => None,
        };
        if let Some(a) = account {
            // As root, std also drops supplementary groups when it sets the uid.
            cmd.uid(a.uid).gid(a.gid);
        }
        cmd.arg("sandbox");
        for w in writable {
            cmd.arg("--allow-write").arg(w);
        }
        cmd.arg("--").arg(program).args(args);
        cmd
    }

    /// The account the edge runs as: its own, unless it must bind a
    /// privileged port (then it stays root, which the log says).
    fn edge_account(&self) -> Option<&crate::accounts::Account> {
        let edge = self.accounts.edge.as_ref()?;
        let privileged = self.settings.listen.port() < 1024
            || self.settings.ops_listen.port() < 1024
            || self.settings.tls_listen.is_some_and(|a| a.port() < 1024);
        if privileged {
            tracing::warn!("the edge listens on a port below 1024, so it runs as root");
            return None;
        }
        Some(edge)
    }

    /// Starts one process, its output appended to its log.
    pub fn spawn(&self, role: Role) -> anyhow::Result<Child> {
        let stale = match role {
            Role::PhpPublic | Role::PhpAdmin => Some(self.layout.php_socket(role)),
            Role::Redis => Some(self.layout.redis_socket()),
            _ => None,
        };
        if let Some(sock) = stale {
            if sock.exists() {
                std::fs::remove_file(&sock)
                    .with_context(|| format!("removing the stale {}", sock.display()))?;
            }
        }
        let log_path = self.layout.log_of(role);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = self
            .command(role)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", role.name()))?;
        process::write_pid(&self.layout.pid_file(role), child.id())
            .with_context(|| format!("writing {}", self.layout.pid_file(role).display()))?;
        Ok(child)
    }

    /// What `role` is ready means, as the user reads it.
    pub fn waits_for(&self, role: Role) -> String {
        match role {
            Role::Mariadb => format!("its socket {}", self.layout.mariadb_socket().display()),
            Role::Redis => format!("its socket {}", self.layout.redis_socket().display()),
            Role::PhpPublic | Role::PhpAdmin => {
                format!("{}", self.layout.php_socket(role).display())
            }
            Role::Edge => self.settings.ops_url("/readyz"),
        }
    }

    fn is_ready(&self, role: Role) -> bool {
        match role {
            Role::Mariadb => mariadb::answers(&self.layout),
            Role::Redis => redis::answers(&self.layout),
            Role::PhpPublic | Role::PhpAdmin => {
                std::os::unix::net::UnixStream::connect(self.layout.php_socket(role)).is_ok()
            }
            Role::Edge => {
                probe::http_status(self.settings.ops_listen, "/readyz", Duration::from_secs(2))
                    == Some(200)
            }
        }
    }

    /// Waits until `role` is ready, failing if it exits or takes too long.
    pub fn wait_ready(
        &self,
        role: Role,
        child: &mut Child,
        signals: &Signals,
    ) -> anyhow::Result<()> {
        let limit = match role {
            Role::Mariadb => Duration::from_secs(120),
            _ => Duration::from_secs(60),
        };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited ({status}) while starting; its log {} ends with:\n{}",
                    role.name(),
                    self.layout.log_of(role).display(),
                    log_tail(&self.layout.log_of(role), 8)
                );
            }
            if self.is_ready(role) {
                return Ok(());
            }
            if signals.stopping() {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                bail!(
                    "{} was not ready after {}s; see {}",
                    role.name(),
                    limit.as_secs(),
                    self.layout.log_of(role).display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Running {
    pub fn new() -> Running {
        Running {
            procs: Vec::new(),
            cron: None,
            next_cron: Instant::now() + CRON_EVERY,
        }
    }

    /// Adopts a started process.
    pub fn add(&mut self, role: Role, child: Child) {
        self.procs.push(Supervised {
            role,
            child: Some(child),
            started: Instant::now(),
            backoff: FIRST_BACKOFF,
            restart_at: None,
        });
    }

    /// Supervises until SIGINT/SIGTERM.
    pub fn supervise(&mut self, stack: &Stack, signals: &Signals) {
        while !signals.stopping() {
            std::thread::sleep(Duration::from_millis(200));
            if signals.reload.swap(false, Ordering::Relaxed) {
                self.forward_reload();
            }
            for p in &mut self.procs {
                p.tick(stack);
            }
            self.cron_tick(stack);
        }
        tracing::info!("stop requested");
    }

    fn forward_reload(&self) {
        for p in &self.procs {
            if let (Role::Edge, Some(child)) = (p.role, &p.child) {
                tracing::info!("reloading the edge's configuration (SIGHUP)");
                process::signal(child.id() as i32, Signal::HUP);
            }
        }
    }

    /// Runs `wp-cron.php` every minute, one run at a time.
    fn cron_tick(&mut self, stack: &Stack) {
        if let Some(child) = &mut self.cron {
            if let Ok(None) = child.try_wait() {
                return;
            }
            self.cron = None;
        }
        if Instant::now() < self.next_cron {
            return;
        }
        self.next_cron = Instant::now() + CRON_EVERY;
        rotate_logs(&stack.layout);
        let log = File::options()
            .create(true)
            .append(true)
            .open(stack.layout.log("cron"));
        let Ok(log) = log else { return };
        let Ok(log2) = log.try_clone() else { return };
        // In the admin pool's sandbox: cron jobs may update plugins.
        let mut cmd = Command::new(&stack.exe);
        cmd.arg("sandbox");
        for w in php_fpm::writable(&stack.layout, Role::PhpAdmin) {
            cmd.arg("--allow-write").arg(w);
        }
        cmd.arg("--").arg(&stack.programs.php);
        wordpress::with_php_env(&mut cmd, &stack.accounts, &stack.env);
        let spawned = cmd
            .arg(stack.layout.core().join("wp-cron.php"))
            .current_dir(stack.layout.core())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn();
        match spawned {
            Ok(child) => self.cron = Some(child),
            Err(e) => tracing::warn!(error = %e, "cannot run wp-cron.php"),
        }
    }

    /// Stops everything, newest first.
    pub fn stop_all(&mut self, stack: &Stack) {
        if let Some(mut cron) = self.cron.take() {
            let _ = cron.kill();
            let _ = cron.wait();
        }
        while let Some(mut p) = self.procs.pop() {
            if let Some(child) = p.child.take() {
                stop_child(stack, p.role, child);
            }
            let _ = std::fs::remove_file(stack.layout.pid_file(p.role));
        }
    }
}

impl Default for Running {
    fn default() -> Self {
        Running::new()
    }
}

impl Supervised {
    fn tick(&mut self, stack: &Stack) {
        let now = Instant::now();
        if let Some(child) = &mut self.child {
            let Ok(Some(status)) = child.try_wait() else {
                return;
            };
            // A php-fpm master killed outright leaves its workers serving
            // the old socket: end the whole process group.
            process::kill_group(child.id() as i32);
            self.child = None;
            self.exited(stack, status);
            return;
        }
        let Some(at) = self.restart_at else { return };
        if now < at {
            return;
        }
        match stack.spawn(self.role) {
            Ok(child) => {
                tracing::info!(process = self.role.name(), pid = child.id(), "restarted");
                self.child = Some(child);
                self.started = now;
                self.restart_at = None;
            }
            Err(e) => {
                tracing::error!(process = self.role.name(), error = %format!("{e:#}"), "restart failed");
                self.restart_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    fn exited(&mut self, stack: &Stack, status: ExitStatus) {
        let log = stack.layout.log_of(self.role);
        if self.role == Role::Mariadb {
            tracing::error!(
                "MariaDB EXITED UNEXPECTEDLY ({status}). It is not restarted automatically: a crash \
                 loop can damage a data directory further. Read {}, then run `murakumo down` and \
                 `murakumo up` for {}",
                log.display(),
                stack.layout.dir().display()
            );
            return;
        }
        if self.started.elapsed() >= HEALTHY_RUN {
            self.backoff = FIRST_BACKOFF;
        }
        tracing::warn!(
            process = self.role.name(),
            %status,
            restart_in = ?self.backoff,
            log = %log.display(),
            "process exited; restarting"
        );
        self.restart_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// Keeps each process's log below [`LOG_LIMIT`] (checked once a minute).
fn rotate_logs(layout: &crate::layout::Layout) {
    let mut logs: Vec<PathBuf> = Role::ALL.iter().map(|r| layout.log_of(*r)).collect();
    logs.push(layout.log("cron"));
    logs.push(layout.supervisor_log());
    for log in logs {
        match crate::logs::rotate_if_larger(&log, LOG_LIMIT) {
            Ok(true) => tracing::info!(log = %log.display(), "rotated (previous part in .1)"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "log rotation failed"),
        }
    }
}

/// How each process is asked to stop, and how long it may take.
fn stop_plan(role: Role) -> (Signal, Duration) {
    match role {
        // The edge drains in-flight requests within its `grace`.
        Role::Edge => (Signal::TERM, Duration::from_secs(20)),
        // A cache with nothing to save.
        Role::Redis => (Signal::TERM, Duration::from_secs(10)),
        // SIGQUIT: php-fpm finishes running requests.
        Role::PhpPublic | Role::PhpAdmin => (Signal::QUIT, Duration::from_secs(20)),
        // SIGTERM: MariaDB's normal shutdown (flushes InnoDB). Long: never kill a database early.
        Role::Mariadb => (Signal::TERM, Duration::from_secs(300)),
    }
}

/// Asks one process to stop and waits (killing it only past its time).
pub fn stop_child(stack: &Stack, role: Role, mut child: Child) {
    let (sig, limit) = stop_plan(role);
    process::signal(child.id() as i32, sig);
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                tracing::info!(process = role.name(), %status, "stopped");
                process::kill_group(child.id() as i32);
                return;
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => break,
        }
    }
    tracing::error!(
        process = role.name(),
        "did not stop within {}s; killing it (see {})",
        limit.as_secs(),
        stack.layout.log_of(role).display()
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `n` lines of a log, for error messages.
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
