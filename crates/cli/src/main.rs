//! The `murakumo` command line: `serve` runs the edge, `check` validates a
//! configuration.

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Check { config } => check(config),
        Command::Serve { config } => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(serve(config)),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
