//! The `murakumo` command line: `serve` runs the edge, `check` validates a
//! configuration, `up`/`down`/`status`/`backup`/`restore` run a whole site
//! on this machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use murakumo_config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "murakumo",
    version,
    about = "Run WordPress fast and safely: the edge in front of php-fpm, with a WordPress-aware page cache"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the sites of a configuration (HTTP listeners + ops listener).
    Serve {
        /// Path to murakumo.toml.
        #[arg(short, long, default_value = "murakumo.toml")]
        config: PathBuf,
    },
    /// Validate a configuration and exit non-zero, naming the problem, if it is bad.
    Check {
        /// Path to murakumo.toml.
        #[arg(short, long, default_value = "murakumo.toml")]
        config: PathBuf,
    },
    #[command(flatten)]
    Stack(StackCommand),
}

/// The commands that run a whole site on this machine.
#[derive(Subcommand)]
enum StackCommand {
    /// Run a whole WordPress site here: MariaDB, php-fpm, WordPress and the edge.
    ///
    /// Creates DIR on first use; afterwards starts what is stopped and changes
    /// nothing else. Runs in the foreground (Ctrl-C stops everything) unless
    /// --detach.
    Up {
        #[command(flatten)]
        site: SiteDir,
        #[command(flatten)]
        ports: Ports,
        /// Address to listen on (new sites; default 127.0.0.1, this machine only).
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
        /// Host name of the site's URL (new sites; default localhost).
        #[arg(long)]
        host: Option<String>,
        /// Serve HTTPS with a self-signed certificate and redirect HTTP to it
        /// (new sites; port 8443 unless --https-port).
        #[arg(long)]
        https: bool,
        /// Port of the HTTPS listener (implies --https).
        #[arg(long)]
        https_port: Option<u16>,
        /// Site title (used when WordPress is installed).
        #[arg(long, default_value = "murakumo")]
        title: String,
        /// The admin's e-mail address (used when WordPress is installed).
        #[arg(long, default_value = "admin@example.com")]
        admin_email: String,
        /// WordPress core to copy (default: Debian's package).
        #[arg(long, default_value = murakumo_stack::DEBIAN_WORDPRESS)]
        wordpress: PathBuf,
        /// Return once the site is ready, leaving it running in the background.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Internal: the background supervisor of `up --detach`.
        #[arg(long, hide = true)]
        supervisor: bool,
    },
    /// Stop a site cleanly (MariaDB shut down properly).
    Down {
        #[command(flatten)]
        site: SiteDir,
    },
    /// Show each process of a site, its pid and health, and the URL.
    ///
    /// Exits 0 when everything runs and the site is ready, 1 when degraded,
    /// 3 when stopped.
    Status {
        #[command(flatten)]
        site: SiteDir,
    },
    /// Write a consistent snapshot of a site (database, content, configuration).
    Backup {
        #[command(flatten)]
        site: SiteDir,
        /// Also include the secrets (passwords, salts, tokens). Keep such a file safe.
        #[arg(long)]
        with_secrets: bool,
        /// The archive to write (.tar.zst).
        out: PathBuf,
    },
    /// Create a site directory from a backup; then `murakumo up` runs it.
    Restore {
        #[command(flatten)]
        site: SiteDir,
        #[command(flatten)]
        ports: Ports,
        /// WordPress core to copy (default: Debian's package).
        #[arg(long, default_value = murakumo_stack::DEBIAN_WORDPRESS)]
        wordpress: PathBuf,
        /// The archive to read (.tar.zst).
        archive: PathBuf,
    },
    /// Internal: run a program that may write only beneath the given paths.
    #[command(hide = true)]
    Sandbox {
        #[arg(long = "allow-write")]
        allow_write: Vec<PathBuf>,
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

/// Ports of a new (or restored) site; an existing site keeps its own.
#[derive(clap::Args)]
struct Ports {
    /// Public port (default 8080, or the backed-up site's).
    #[arg(long)]
    port: Option<u16>,
    /// Port of the ops listener: health, metrics, purge (default 9090, or the backed-up site's).
    #[arg(long)]
    ops_port: Option<u16>,
}

#[derive(clap::Args)]
struct SiteDir {
    /// The site directory.
    #[arg(long, default_value = "murakumo-site")]
    dir: PathBuf,
}

/// Logs to stderr through a background writer thread, so that the access
/// log never makes a request wait on a `write`. Nothing is dropped: when the
/// buffer is full, logging waits. Keep the guard until exit (it flushes).
fn init_logs(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MURAKUMO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    guard
}

fn check(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let mut warnings = Vec::new();
    for (i, site) in config.site.iter().enumerate() {
        if !site.root.is_dir() {
            warnings.push(format!(
                "{}: `site[{i}].root`: {} is not a directory (yet)",
                path.display(),
                site.root.display()
            ));
        }
    }
    // Building the state also reads the purge token and the DB password.
    murakumo_edge::Edge::new(config.clone(), path.to_path_buf())
        .with_context(|| format!("{}", path.display()))?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let names: Vec<&str> = config.site.iter().map(|s| s.name.as_str()).collect();
    println!(
        "{}: ok ({} site{}: {})",
        path.display(),
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    Ok(())
}

async fn serve(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let _flush_logs_on_exit = init_logs(config.server.log_format);
    let edge = Arc::new(murakumo_edge::Edge::new(config, path.to_path_buf())?);
    tracing::info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), "murakumo starting");
    murakumo_edge::run(edge).await?;
    Ok(())
}

/// Logs of the stack commands: plain lines on stderr (a supervisor's
/// stderr is its log file).
fn init_stack_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MURAKUMO_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,murakumo_stack::supervisor=info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn stack_command(command: StackCommand) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the murakumo binary")?;
    match command {
        StackCommand::Up {
            site,
            ports,
            bind,
            host,
            https,
            https_port,
            title,
            admin_email,
            wordpress,
            detach,
            supervisor,
        } => {
            let req = murakumo_stack::UpRequest {
                dir: site.dir,
                port: ports.port,
                ops_port: ports.ops_port,
                bind,
                host,
                https_port: https_port.or(https.then_some(murakumo_stack::DEFAULT_HTTPS_PORT)),
                title,
                admin_email,
                wordpress,
                mode: match (supervisor, detach) {
                    (true, _) => murakumo_stack::UpMode::Supervisor,
                    (false, true) => murakumo_stack::UpMode::Detach,
                    (false, false) => murakumo_stack::UpMode::Foreground,
                },
            };
            murakumo_stack::up(&req, &exe).map(|()| ExitCode::SUCCESS)
        }
        StackCommand::Down { site } => murakumo_stack::down(&site.dir).map(|()| ExitCode::SUCCESS),
        StackCommand::Status { site } => murakumo_stack::status(&site.dir).map(ExitCode::from),
        StackCommand::Backup {
            site,
            with_secrets,
            out,
        } => murakumo_stack::backup::backup(&site.dir, &out, with_secrets, &exe)
            .map(|()| ExitCode::SUCCESS),
        StackCommand::Restore {
            site,
            ports,
            wordpress,
            archive,
        } => {
            let req = murakumo_stack::backup::RestoreRequest {
                dir: site.dir,
                archive,
                port: ports.port,
                ops_port: ports.ops_port,
                wordpress,
            };
            murakumo_stack::backup::restore(&req, &exe).map(|()| ExitCode::SUCCESS)
        }
        StackCommand::Sandbox {
            allow_write,
            command,
        } => {
            let (program, args) = command.split_first().context("no program to run")?;
            Err(murakumo_stack::sandbox::exec(&allow_write, program, args))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check(&config).map(|()| ExitCode::SUCCESS),
        Command::Serve { config } => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(serve(&config)).map(|()| ExitCode::SUCCESS),
            Err(e) => Err(e.into()),
        },
        Command::Stack(command) => {
            init_stack_logs();
            stack_command(command)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
