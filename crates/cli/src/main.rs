//! The `murakumo` command line: `serve` runs the edge, `check` validates a
//! configuration, `up`/`down`/`status`/`backup`/`restore` run a whole site
//! on this machine, `render` writes it out for compose, Swarm or
//! Kubernetes; `php-fpm` and `probe` serve the container image.

mod probe;

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
    /// Write the site as manifests for docker compose, Swarm or Kubernetes.
    ///
    /// Reads murakumo.toml (its [deploy] section; the options below override
    /// single keys) and writes files to read, diff and commit into OUT.
    /// Secret files are generated once in OUT (never overwritten, never to
    /// be committed).
    Render(RenderArgs),
    /// Container image: write wp-config.php and php-fpm's configuration
    /// from the environment and secret files, then run php-fpm (SIGTERM
    /// stops it gracefully: running requests finish).
    #[command(name = "php-fpm")]
    PhpFpm {
        /// Which pool: public (visitors) or admin (/wp-admin, wp-login.php).
        #[arg(long, value_enum)]
        role: RoleArg,
        /// FastCGI address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
    },
    /// Container image: the Redis of `deploy.redis` (its password from its
    /// secret file), then run redis-server.
    Redis,
    /// Hold a node's public ports and hand every connection to a local edge
    /// (those with `server.handoff` set to SOCKET), so edges are replaced
    /// without a refused connection. A second keeper started on the same
    /// SOCKET takes the ports over from the first, which then idles until
    /// stopped. Started as root (ports below 1024), it runs as --user once
    /// they are bound.
    Portkeeper {
        /// Plain-HTTP address to hold (repeatable).
        #[arg(long, value_name = "ADDR", required_unless_present = "https")]
        http: Vec<std::net::SocketAddr>,
        /// Address whose connections are TLS, for the edges to terminate (repeatable).
        #[arg(long, value_name = "ADDR")]
        https: Vec<std::net::SocketAddr>,
        /// The hand-off socket the edges connect to.
        #[arg(long, default_value = murakumo_image::HANDOFF_SOCKET)]
        socket: PathBuf,
        /// The uid (and gid) to run as after binding, when started as root (0: stay root).
        #[arg(long, default_value_t = murakumo_image::UID)]
        user: u32,
    },
    /// Health check for containers: `http://HOST:PORT/PATH` must answer 2xx,
    /// `tcp:HOST:PORT` must accept a connection (within 3 s). Exit 0 or 1.
    Probe {
        /// What to probe.
        target: String,
    },
    #[command(flatten)]
    Stack(StackCommand),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Public,
    Admin,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TargetArg {
    /// docker compose, one host (compose.yaml).
    Compose,
    /// A Swarm stack (stack.yaml).
    Swarm,
    /// Kubernetes, a kustomize tree (kubectl apply -k OUT).
    K8s,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DbArg {
    Bundled,
    External,
    Galera,
}

#[derive(clap::Args)]
struct RenderArgs {
    /// What to render for.
    #[arg(value_enum)]
    target: TargetArg,
    /// Path to murakumo.toml.
    #[arg(short, long, default_value = "murakumo.toml")]
    config: PathBuf,
    /// Directory to write (created if missing).
    #[arg(short, long)]
    out: PathBuf,
    /// The site to render, when the configuration has several.
    #[arg(long)]
    site: Option<String>,
    /// The runtime image (deploy.image).
    #[arg(long)]
    image: Option<String>,
    /// Namespace / stack / project name (deploy.namespace).
    #[arg(long)]
    namespace: Option<String>,
    /// Public replicas (deploy.replicas).
    #[arg(long)]
    replicas: Option<u32>,
    /// Admin replicas (deploy.admin_replicas).
    #[arg(long)]
    admin_replicas: Option<u32>,
    /// Storage class of the shared content volume (deploy.storage_class).
    #[arg(long)]
    storage_class: Option<String>,
    /// The database: bundled, external or galera (deploy.db.kind).
    #[arg(long, value_enum)]
    db: Option<DbArg>,
    /// External database host[:port] (deploy.db.host).
    #[arg(long)]
    db_host: Option<String>,
    /// Galera nodes, odd, at least 3 (deploy.db.galera_size).
    #[arg(long)]
    galera_size: Option<u32>,
    /// Kubernetes: a LoadBalancer Service on the edges instead of an Ingress.
    #[arg(long)]
    edge_ingress: bool,
    /// Add a Redis service (deploy.redis): the object cache and the page
    /// cache the edges share, on every target.
    #[arg(long)]
    redis: bool,
    /// Kubernetes: use this existing Secret instead of secrets/ files.
    #[arg(long)]
    existing_secret: Option<String>,
    /// Label value of the public nodes (deploy.public_nodes).
    #[arg(long)]
    public_nodes: Option<String>,
    /// Label value of the admin nodes (deploy.admin_nodes).
    #[arg(long)]
    admin_nodes: Option<String>,
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
        /// Run a private Redis (new sites): WordPress's object cache (Site
        /// Health's persistent object cache) and the edge's shared page cache.
        #[arg(long)]
        redis: bool,
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
    /// Replace WordPress core while the site serves, then run WordPress's
    /// database upgrade and purge the page cache.
    ///
    /// The new core is copied beside the old one and swapped in at once; if
    /// the database upgrade fails, the old core is put back and keeps
    /// serving. The old core stays in wordpress.previous. Take a `murakumo
    /// backup` first.
    Upgrade {
        #[command(flatten)]
        site: SiteDir,
        /// The new core (default: Debian's package, after `apt upgrade wordpress`).
        #[arg(long, default_value = murakumo_stack::DEBIAN_WORDPRESS)]
        wordpress: PathBuf,
        /// First write a backup (as `murakumo backup`) to this .tar.zst.
        #[arg(long, value_name = "OUT")]
        backup: Option<PathBuf>,
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

/// `murakumo portkeeper`: the ports are bound (and root left) before the
/// runtime starts any thread.
fn portkeeper(opts: murakumo_handoff::keeper::Options) -> anyhow::Result<()> {
    let _flush_logs_on_exit = init_logs(LogFormat::Text);
    let prepared = murakumo_handoff::keeper::prepare(&opts)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(murakumo_handoff::keeper::run(prepared, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term.as_mut() {
            Ok(term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }))?;
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
            redis,
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
                redis,
            };
            murakumo_stack::up(&req, &exe).map(|()| ExitCode::SUCCESS)
        }
        StackCommand::Down { site } => murakumo_stack::down(&site.dir).map(|()| ExitCode::SUCCESS),
        StackCommand::Upgrade {
            site,
            wordpress,
            backup,
        } => {
            if let Some(out) = &backup {
                murakumo_stack::backup::backup(&site.dir, out, false, &exe)?;
            }
            match murakumo_stack::upgrade::upgrade(&site.dir, &wordpress)? {
                None => println!(
                    "WordPress in {} is already the one in {}; nothing to do",
                    site.dir.display(),
                    wordpress.display()
                ),
                Some(u) => println!(
                    "WordPress {} → {} (database {} → {}); {}; the old core is in wordpress.previous",
                    u.from,
                    u.to,
                    u.db.0,
                    u.db.1,
                    if u.purged {
                        "page cache purged"
                    } else {
                        "the edge did not answer the purge: restart it (`murakumo down` and `up`) to drop old pages"
                    }
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
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

fn render(args: RenderArgs) -> anyhow::Result<()> {
    use murakumo_render::Target;
    let target = match args.target {
        TargetArg::Compose => Target::Compose,
        TargetArg::Swarm => Target::Swarm,
        TargetArg::K8s => Target::K8s,
    };
    let overrides = murakumo_render::Overrides {
        site: args.site,
        image: args.image,
        namespace: args.namespace,
        replicas: args.replicas,
        admin_replicas: args.admin_replicas,
        storage_class: args.storage_class,
        db: args.db.map(|d| match d {
            DbArg::Bundled => murakumo_config::DbKind::Bundled,
            DbArg::External => murakumo_config::DbKind::External,
            DbArg::Galera => murakumo_config::DbKind::Galera,
        }),
        db_host: args.db_host,
        galera_size: args.galera_size,
        edge_ingress: args.edge_ingress,
        redis: args.redis,
        existing_secret: args.existing_secret,
        public_nodes: args.public_nodes,
        admin_nodes: args.admin_nodes,
    };
    let files = murakumo_render::render(target, &args.config, &overrides)?;
    let created = murakumo_render::write(target, &args.out, &files)?;
    for f in &files {
        println!("wrote {}", args.out.join(&f.path).display());
    }
    let secrets = args.out.join(murakumo_render::secrets_dir(target));
    if created.files.is_empty() {
        println!("kept the secrets in {}", secrets.display());
    } else {
        println!(
            "created {} secret files in {} (0600; do not commit them)",
            created.files.len(),
            secrets.display()
        );
    }
    if let Some(note) = created.ownership_note {
        eprintln!("note: {note}");
    }
    Ok(())
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
        Command::Render(args) => render(args).map(|()| ExitCode::SUCCESS),
        Command::Probe { target } => probe::probe(&target).map(|()| ExitCode::SUCCESS),
        Command::Portkeeper {
            http,
            https,
            socket,
            user,
        } => portkeeper(murakumo_handoff::keeper::Options {
            http,
            https,
            socket,
            user,
        })
        .map(|()| ExitCode::SUCCESS),
        Command::PhpFpm { role, listen } => {
            let role = match role {
                RoleArg::Public => murakumo_stack::container::PoolRole::Public,
                RoleArg::Admin => murakumo_stack::container::PoolRole::Admin,
            };
            let req = murakumo_stack::container::PhpFpmRequest::new(role, listen);
            murakumo_stack::container::run(&req)
                .map(|code| ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Redis => Err(murakumo_stack::redis::container_exec()),
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
