//! `murakumo up`, `down` and `status` for one site directory.
//!
//! `up` checks everything it can before creating anything (programs,
//! ports, the directory), then provisions what is missing, starts the
//! processes in order, waits for each, and supervises them. Every step is
//! idempotent: on an existing directory `up` starts what is stopped and
//! changes nothing else. `--detach` runs the same steps in a background
//! supervisor whose progress the command echoes until the site is ready.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use rustix::process::Signal;

use crate::accounts::Accounts;
use crate::layout::{Layout, Role};
use crate::lock::{self, SupervisorLock};
use crate::prereq::Programs;
use crate::progress::{Progress, READY_LINE};
use crate::site_config::{self, SiteSettings};
use crate::supervisor::{Running, Signals, Stack};
use crate::{mariadb, php_fpm, probe, process, secrets, wordpress};

/// What the user asked `up` for.
#[derive(Debug, Clone)]
pub struct UpRequest {
    pub dir: PathBuf,
    /// `None`: keep what the directory's `murakumo.toml` says (or the default).
    pub port: Option<u16>,
    pub ops_port: Option<u16>,
    pub bind: Option<IpAddr>,
    pub host: Option<String>,
    /// Serve HTTPS (self-signed) on this port, redirecting plain HTTP.
    pub https_port: Option<u16>,
    pub title: String,
    pub admin_email: String,
    pub wordpress: PathBuf,
    pub mode: UpMode,
    /// Run a private Redis: WordPress's object cache and the edge's shared
    /// page cache.
    pub redis: bool,
}

/// How `up` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpMode {
    /// Supervises in the foreground; Ctrl-C stops everything.
    Foreground,
    /// Starts a background supervisor and returns once the site is ready.
    Detach,
    /// Is that background supervisor.
    Supervisor,
}

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_OPS_PORT: u16 = 9090;
pub const DEFAULT_HTTPS_PORT: u16 = 8443;
const STEPS: usize = 5;

/// Makes `dir` absolute without requiring it to exist.
pub fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
    Ok(abs)
}

impl UpRequest {
    /// The settings to run with: the directory's own, checked against the
    /// flags, or the flags (and defaults) for a new directory.
    fn settings(&self, layout: &Layout) -> anyhow::Result<SiteSettings> {
        let bind = self.bind.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        if !layout.config().exists() {
            return Ok(SiteSettings {
                listen: SocketAddr::new(bind, self.port.unwrap_or(DEFAULT_PORT)),
                ops_listen: SocketAddr::new(
                    IpAddr::from([127, 0, 0, 1]),
                    self.ops_port.unwrap_or(DEFAULT_OPS_PORT),
                ),
                host: self.host.clone().unwrap_or_else(|| "localhost".into()),
                tls_listen: self.https_port.map(|p| SocketAddr::new(bind, p)),
                redis: self.redis,
            });
        }
        let have = site_config::load(layout)?;
        let file = layout.config();
        let conflict = |flag: &str, key: &str, value: String| {
            anyhow::anyhow!(
                "{}: already sets `{key}` = {value}; `{flag}` applies only to a new site. \
                 Edit the file (then run `murakumo up` again) or leave out {flag}",
                file.display()
            )
        };
        if self.port.is_some_and(|p| p != have.listen.port())
            || self.bind.is_some_and(|b| b != have.listen.ip())
        {
            return Err(conflict(
                "--port/--bind",
                "server.listen",
                have.listen.to_string(),
            ));
        }
        if self.ops_port.is_some_and(|p| p != have.ops_listen.port()) {
            return Err(conflict(
                "--ops-port",
                "server.ops_listen",
                have.ops_listen.to_string(),
            ));
        }
        if self
            .https_port
            .is_some_and(|p| have.tls_listen.map(|a| a.port()) != Some(p))
        {
            return Err(conflict(
                "--https/--https-port",
                "server.tls_listen",
                have.tls_listen
                    .map_or_else(|| "(none)".to_string(), |a| a.to_string()),
            ));
        }
        if self.host.as_ref().is_some_and(|h| *h != have.host) {
            return Err(conflict("--host", "site[0].hosts[0]", have.host.clone()));
        }
        if self.redis && !have.redis {
            bail!(
                "{}: this site runs without Redis, and `--redis` applies only to a new site. \
                 To turn it on, add to the file (after the [server] keys):\n\n\
                 [server.shared_cache]\nredis = \"{}\"\npassword_file = \"{}\"\n\n\
                 then run `murakumo up` again",
                file.display(),
                crate::redis::address(layout),
                layout.secret(crate::secrets::REDIS_PASSWORD).display()
            );
        }
        Ok(have)
    }
}

/// `murakumo up`.
pub fn up(req: &UpRequest, exe: &Path) -> anyhow::Result<()> {
    let layout = Layout::new(absolute(&req.dir)?);
    // A site with its core copied no longer needs the package it came from.
    let core_source = if layout.core().join("wp-settings.php").is_file() {
        layout.core()
    } else {
        req.wordpress.clone()
    };
    let wants_redis = req.redis
        || (layout.config().exists() && site_config::load(&layout).is_ok_and(|s| s.redis));
    let programs = Programs::find_with(&core_source, wants_redis)?;
    // The background supervisor of `up --detach`: the command that started
    // it checked the ports and created the directory.
    let background = req.mode == UpMode::Supervisor;
    if !background {
        if let Some(pid) = running_supervisor(&layout) {
            let settings = site_config::load(&layout)?;
            println!(
                "murakumo is already running for {} (supervisor pid {pid}); nothing to do.",
                layout.dir().display()
            );
            print_urls(&layout, &settings);
            return Ok(());
        }
    }
    let accounts = Accounts::detect()?;
    let settings = req.settings(&layout)?;
    if !background {
        let mut addrs = vec![
            ("--port", settings.listen),
            ("--ops-port", settings.ops_listen),
        ];
        if let Some(tls) = settings.tls_listen {
            addrs.push(("--https-port", tls));
        }
        for (what, addr) in addrs {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                bail!("cannot listen on {addr}: {e}; another program holds it? Choose another port with {what}");
            }
        }
        crate::accounts::check_reachable(layout.dir(), &accounts)?;
        create_dir(&layout)?;
        if req.mode == UpMode::Detach {
            return up_detached(req, &layout, exe);
        }
    }
    let stack = Stack {
        layout,
        programs,
        accounts,
        settings,
        env: Vec::new(),
        exe: exe.to_path_buf(),
    };
    run_supervisor(req, stack, background)
}

/// Creates the directory skeleton, saying clearly when it cannot.
fn create_dir(layout: &Layout) -> anyhow::Result<()> {
    for dir in [
        layout.dir().to_path_buf(),
        layout.run(),
        layout.logs(),
        layout.dir().join("tmp"),
    ] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the site directory {}", dir.display()))?;
    }
    // Probe writability now, not halfway through provisioning.
    let probe = layout.run().join(".writable");
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write in {}", layout.dir().display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn running_supervisor(layout: &Layout) -> Option<u32> {
    if !layout.supervisor_pid().exists() {
        return None;
    }
    lock::holder(layout)
}

/// Starts the supervisor in the background and echoes its progress until
/// the site is ready (or it fails).
fn up_detached(req: &UpRequest, layout: &Layout, exe: &Path) -> anyhow::Result<()> {
    let log_path = layout.supervisor_log();
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("up")
        .arg("--dir")
        .arg(layout.dir())
        .arg("--supervisor");
    if let Some(p) = req.port {
        cmd.arg("--port").arg(p.to_string());
    }
    if let Some(p) = req.ops_port {
        cmd.arg("--ops-port").arg(p.to_string());
    }
    if let Some(b) = req.bind {
        cmd.arg("--bind").arg(b.to_string());
    }
    if let Some(h) = &req.host {
        cmd.arg("--host").arg(h);
    }
    if let Some(p) = req.https_port {
        cmd.arg("--https-port").arg(p.to_string());
    }
    cmd.arg("--title").arg(&req.title);
    cmd.arg("--admin-email").arg(&req.admin_email);
    cmd.arg("--wordpress").arg(&req.wordpress);
    if req.redis {
        cmd.arg("--redis");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().context("starting the supervisor")?;
    let stdout = child.stdout.take().context("the supervisor's output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the supervisor's progress")?;
        if line == READY_LINE {
            return Ok(());
        }
        println!("{line}");
    }
    let status = child.wait()?;
    bail!(
        "murakumo up failed ({status}); the supervisor's log: {}",
        log_path.display()
    )
}

/// The supervisor: provisions, starts, supervises, stops. `piped`: running
/// detached, its stdout a pipe to the waiting `up`.
pub fn run_supervisor(req: &UpRequest, mut stack: Stack, piped: bool) -> anyhow::Result<()> {
    let signals = Signals::register()?;
    let layout = stack.layout.clone();
    let _lock = match SupervisorLock::acquire(&layout)? {
        Ok(lock) => lock,
        Err(pid) => bail!(
            "another murakumo supervisor (pid {}) runs {}",
            pid.map_or("?".into(), |p| p.to_string()),
            layout.dir().display()
        ),
    };
    let steps = STEPS + usize::from(stack.settings.redis);
    let mut progress = Progress::new(Box::new(std::io::stdout()), steps);
    progress.say(&format!("murakumo up: {}", layout.dir().display()));
    let mut running = Running::new();
    let result = start(req, &mut stack, &mut running, &mut progress, &signals);
    let installed_now = match result {
        Ok(installed_now) => installed_now,
        Err(e) => {
            let step = progress.failed_step().unwrap_or_else(|| "starting".into());
            running.stop_all(&stack);
            let message = format!("{step} failed: {e:#}");
            progress.say(&format!("error: {message}"));
            bail!("{message}");
        }
    };
    print_summary(&mut progress, &stack, installed_now);
    if piped {
        progress.ready();
        progress.detach();
        // Nothing more goes to the pipe: the waiting `up` has exited.
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = rustix::stdio::dup2_stdout(&null);
        }
    } else {
        progress.say("Ctrl-C stops everything.");
    }
    running.supervise(&stack, &signals);
    if !piped {
        println!("\nstopping...");
    }
    running.stop_all(&stack);
    if !piped {
        println!("stopped.");
    }
    Ok(())
}

/// The steps of `up`. Returns whether WordPress was installed now.
fn start(
    req: &UpRequest,
    stack: &mut Stack,
    running: &mut Running,
    progress: &mut Progress,
    signals: &Signals,
) -> anyhow::Result<bool> {
    let layout = stack.layout.clone();
    progress.begin(
        "site directory: secrets, configuration, WordPress core and content",
        None,
    );
    stop_leftovers(&layout);
    let new_secrets = secrets::ensure(&layout, &stack.accounts)?;
    if !layout.config().exists() {
        crate::atomic::write_file(
            &layout.config(),
            &site_config::render(&layout, &stack.settings),
            0o644,
        )?;
    }
    let new_core = wordpress::install_core(&layout, &req.wordpress)?;
    wordpress::ensure_content(&layout, &req.wordpress, &stack.accounts)?;
    let redis = stack.settings.redis;
    wordpress::object_cache(&layout, redis)?;
    wordpress::write_wp_config(&layout, redis)?;
    let ops = stack.settings.ops_url("");
    stack.env = php_fpm::wordpress_env(&layout, &ops, redis)?;
    progress.done(if new_core || new_secrets {
        "created"
    } else {
        "ok, kept as it was"
    });

    progress.begin("MariaDB", Some(&stack.waits_for(Role::Mariadb)));
    mariadb::prepare_dirs(&layout, &stack.accounts)?;
    let fresh = mariadb::init(&layout, &stack.programs, &stack.accounts).with_context(|| {
        format!(
            "initialising the data directory; see {}",
            layout.log("mariadb-install").display()
        )
    })?;
    start_role(stack, running, Role::Mariadb, signals)?;
    mariadb::ensure_database(
        &layout,
        &stack.programs,
        &secrets::read(&layout, secrets::DB_PASSWORD)?,
    )?;
    progress.done(if fresh {
        "new data directory, database and user created"
    } else {
        "running"
    });

    if redis {
        progress.begin(
            "Redis: object cache and shared page cache, on a unix socket",
            Some(&stack.waits_for(Role::Redis)),
        );
        crate::redis::prepare(&layout, &stack.accounts)?;
        start_role(stack, running, Role::Redis, signals)?;
        progress.done("running");
    }

    progress.begin(
        "php-fpm pools: public (writes uploads only) and admin",
        Some(&format!(
            "{} and {}",
            stack.waits_for(Role::PhpPublic),
            stack.waits_for(Role::PhpAdmin)
        )),
    );
    for role in [Role::PhpPublic, Role::PhpAdmin] {
        php_fpm::prepare(&layout, role, &stack.accounts, &stack.env)?;
        start_role(stack, running, role, signals)?;
    }
    progress.done("running");

    progress.begin("WordPress", None);
    let installed_now = wordpress::install(
        &layout,
        &stack.programs,
        &stack.accounts,
        &stack.env,
        &stack.settings.home_url(),
        &req.title,
        &req.admin_email,
    )?;
    progress.done(if installed_now {
        "installed, pretty permalinks on"
    } else {
        "already installed"
    });

    progress.begin("edge", Some(&stack.waits_for(Role::Edge)));
    start_role(stack, running, Role::Edge, signals)?;
    progress.done("ready");
    Ok(installed_now)
}

fn start_role(
    stack: &Stack,
    running: &mut Running,
    role: Role,
    signals: &Signals,
) -> anyhow::Result<()> {
    let mut child = stack.spawn(role)?;
    let ready = stack.wait_ready(role, &mut child, signals);
    running.add(role, child);
    ready
}

fn print_summary(progress: &mut Progress, stack: &Stack, installed_now: bool) {
    let home = stack.settings.home_url();
    let password_file = stack.layout.secret(secrets::ADMIN_PASSWORD);
    progress.say("");
    progress.say(&format!("  site:   {home}/"));
    progress.say(&format!("  admin:  {home}/wp-admin/   user: admin"));
    if installed_now {
        if let Ok(pw) = secrets::read(&stack.layout, secrets::ADMIN_PASSWORD) {
            progress.say(&format!(
                "          password: {pw}   (shown once; kept in {})",
                password_file.display()
            ));
        }
    } else {
        progress.say(&format!(
            "          password in {}",
            password_file.display()
        ));
    }
    progress.say(&format!(
        "  health: {}   metrics: {}",
        stack.settings.ops_url("/readyz"),
        stack.settings.ops_url("/metrics")
    ));
    progress.say(&format!("  logs:   {}/", stack.layout.logs().display()));
    progress.say(&format!(
        "  stop:   murakumo down --dir {}",
        stack.layout.dir().display()
    ));
    progress.say("");
}

fn print_urls(layout: &Layout, settings: &SiteSettings) {
    let home = settings.home_url();
    println!("  site:   {home}/");
    println!(
        "  admin:  {home}/wp-admin/   user: admin, password in {}",
        layout.secret(secrets::ADMIN_PASSWORD).display()
    );
    println!("  status: murakumo status --dir {}", layout.dir().display());
}

/// Processes of an earlier run whose supervisor is gone (killed, say):
/// stopped before starting new ones, so two MariaDBs never share `db/`.
fn stop_leftovers(layout: &Layout) {
    for role in Role::ALL.iter().rev() {
        let pid_file = layout.pid_file(*role);
        if let Some(pid) = process::live_pid(&pid_file, layout.dir()) {
            tracing::warn!(
                process = role.name(),
                pid,
                "stopping a process left from an earlier run"
            );
            let sig = if matches!(role, Role::PhpPublic | Role::PhpAdmin) {
                Signal::QUIT
            } else {
                Signal::TERM
            };
            process::signal(pid, sig);
            if !process::wait_gone(pid, layout.dir(), Duration::from_secs(120)) {
                process::signal(pid, Signal::KILL);
                process::wait_gone(pid, layout.dir(), Duration::from_secs(5));
            }
        }
        let _ = std::fs::remove_file(pid_file);
    }
}

/// `murakumo down`: stops the supervisor (which stops everything in order)
/// and waits until it has.
pub fn down(dir: &Path) -> anyhow::Result<()> {
    let layout = Layout::new(absolute(dir)?);
    if !layout.dir().is_dir() {
        bail!("{} does not exist: no site to stop", layout.dir().display());
    }
    match running_supervisor(&layout) {
        Some(pid) if pid > 0 => {
            println!(
                "stopping {} (supervisor pid {pid})...",
                layout.dir().display()
            );
            process::signal(pid as i32, Signal::TERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(400);
            while running_supervisor(&layout).is_some() {
                if std::time::Instant::now() > deadline {
                    bail!(
                        "the supervisor (pid {pid}) did not stop; see {}",
                        layout.supervisor_log().display()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            println!("stopped.");
        }
        _ => {
            stop_leftovers(&layout);
            println!("{}: not running.", layout.dir().display());
        }
    }
    Ok(())
}

/// `murakumo status`: each process, its pid and health, and the URL.
/// Returns the exit code: 0 all up and ready, 1 degraded, 3 stopped.
pub fn status(dir: &Path) -> anyhow::Result<u8> {
    let layout = Layout::new(absolute(dir)?);
    if !layout.config().exists() {
        bail!(
            "{}: no murakumo site here (no murakumo.toml); create one with `murakumo up --dir {}`",
            layout.dir().display(),
            layout.dir().display()
        );
    }
    let settings = site_config::load(&layout)?;
    let supervisor = running_supervisor(&layout);
    println!("{}", layout.dir().display());
    match supervisor {
        Some(pid) => println!("  {:<11} running   pid {pid}", "supervisor"),
        None => println!("  {:<11} stopped", "supervisor"),
    }
    let mut all_up = supervisor.is_some();
    for role in Role::ALL {
        if role == Role::Redis && !settings.redis {
            continue;
        }
        let pid = process::read_pid(&layout.pid_file(role));
        let alive = pid.is_some_and(|p| process::is_ours(p, layout.dir()));
        let state = match (pid, alive) {
            (Some(p), true) => format!("running   pid {p}"),
            (Some(p), false) if supervisor.is_some() => {
                format!(
                    "DOWN      (pid {p} gone; see {})",
                    layout.log_of(role).display()
                )
            }
            _ => "stopped".to_string(),
        };
        all_up &= alive;
        println!("  {:<11} {state}", role.name());
    }
    let ready = probe::http_status(settings.ops_listen, "/readyz", Duration::from_secs(3));
    let health = match ready {
        Some(200) => "ready".to_string(),
        Some(code) => format!("NOT READY ({code} from {})", settings.ops_url("/readyz")),
        None => format!("no answer from {}", settings.ops_url("/readyz")),
    };
    println!("  {:<11} {health}", "health");
    println!("  {:<11} {}/", "site", settings.home_url());
    Ok(if supervisor.is_none() {
        3
    } else if all_up && ready == Some(200) {
        0
    } else {
        1
    })
}
