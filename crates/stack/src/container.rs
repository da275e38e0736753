//! `murakumo php-fpm --role public|admin`: the php container's entry point
//! in the runtime image (compose, Swarm, Kubernetes). On every start it
//! builds `wp-config.php` and the pool's php-fpm configuration from the
//! environment and the secret files, in the writable runtime directory
//! (tmpfs; the image's `wp-config.php` is a link to it), then becomes
//! php-fpm. Nothing in the image is written, so the root filesystem can be
//! read-only, and no secret is in the image or in an environment variable
//! of the container (php-fpm hands them to its workers through `env[]`,
//! in a 0600 file).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use murakumo_image as image;

use crate::{atomic, php_fpm, wordpress};

/// A pool of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRole {
    Public,
    Admin,
}

pub struct PhpFpmRequest {
    pub role: PoolRole,
    /// FastCGI address: `127.0.0.1:9000` beside the edge in a pod,
    /// `0.0.0.0:9000` as its own service.
    pub listen: String,
    /// Where the secret files are (the image's contract by default).
    pub secrets: PathBuf,
    /// The writable runtime directory.
    pub run: PathBuf,
    /// WordPress core.
    pub core: PathBuf,
    /// `wp-content` (the volume).
    pub content: PathBuf,
}

impl PhpFpmRequest {
    pub fn new(role: PoolRole, listen: String) -> Self {
        PhpFpmRequest {
            role,
            listen,
            secrets: image::SECRETS.into(),
            run: image::RUN.into(),
            core: image::CORE.into(),
            content: image::CONTENT.into(),
        }
    }
}

fn env(name: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => bail!("the environment variable {name} is not set; the rendered manifests set it (murakumo render)"),
    }
}

fn secret(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the secret {}; mount the site's secrets there (murakumo render puts them in its secrets/ directory)",
            path.display()
        )
    })?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    // The value goes on an `env[NAME] = value` line of php-fpm's ini file.
    if value.is_empty() || value.contains(['\n', '\r', '"', '\0']) {
        bail!(
            "the secret {} is empty or spans lines or holds a '\"'",
            path.display()
        );
    }
    Ok(value)
}

/// The files `php-fpm` needs: (wp-config.php, php-fpm.conf), for tests.
pub fn prepare(req: &PhpFpmRequest) -> anyhow::Result<(PathBuf, PathBuf)> {
    let db_host = env(image::ENV_DB_HOST)?;
    let db_name = env(image::ENV_DB_NAME)?;
    let db_user = env(image::ENV_DB_USER)?;
    let purge_url = std::env::var(image::ENV_PURGE_URL)
        .unwrap_or_else(|_| format!("http://127.0.0.1:{}/purge", image::OPS_PORT));
    let mut vars = php_fpm::wordpress_env_with(&purge_url, |name| secret(&req.secrets, name))?;
    // `deploy.redis`: WordPress's object cache on the stack's Redis.
    let redis = std::env::var(image::ENV_REDIS)
        .ok()
        .filter(|v| !v.trim().is_empty());
    if redis.is_some() {
        vars.push((
            "MURAKUMO_REDIS_PASSWORD".into(),
            secret(&req.secrets, image::REDIS_PASSWORD)?,
        ));
    }
    let tmp = req.run.join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if req.role == PoolRole::Admin {
        // A new, empty content volume gets WordPress's directories (never
        // anything in them). `themes` must exist: WordPress only looks up
        // the image's theme directory by name when it has two.
        for dir in ["themes", "plugins", "uploads"] {
            let path = req.content.join(dir);
            std::fs::create_dir_all(&path).with_context(|| {
                format!(
                    "creating {}; the admin role needs wp-content writable",
                    path.display()
                )
            })?;
        }
        // WordPress looks for the object-cache drop-in in wp-content only;
        // the admin role (which writes it) puts ours there, or takes it away.
        wordpress::object_cache_in(&req.content, redis.is_some())?;
    }
    let wp_config = req.run.join("wp-config.php");
    let text = wordpress::wp_config(&wordpress::WpConfig {
        object_cache: redis.as_deref().map(wordpress::php_string),
        generator: "`murakumo php-fpm`",
        db_name: wordpress::php_string(&db_name),
        db_user: wordpress::php_string(&db_user),
        db_host: wordpress::php_string(&db_host),
        core: wordpress::php_string(&req.core.display().to_string()),
        // The rendered edge configurations set `wp_cron`.
        cron_from_outside: true,
        mu_plugin_dir: Some(wordpress::php_string(image::MU_PLUGINS)),
        core_upgrade: wordpress::php_string(
            "roll out a newer murakumo image (docs/operations.md: roll out)",
        ),
    });
    atomic::write_file(&wp_config, &text, 0o640)?;
    let admin = req.role == PoolRole::Admin;
    let mut conf = php_fpm::pool_conf(
        &req.listen,
        admin,
        // The container's log is its stderr.
        "/proc/self/fd/2",
        &php_fpm::ini_quoted(&tmp),
    );
    for (k, v) in &vars {
        conf.push_str(&format!("env[{k}] = \"{v}\"\n"));
    }
    let conf_path = req.run.join("php-fpm.conf");
    atomic::write_file(&conf_path, &conf, 0o600)?;
    Ok((wp_config, conf_path))
}

/// Prepares, then runs php-fpm in the foreground until it exits, and
/// returns its exit code. Orchestrators stop a container with SIGTERM,
/// which php-fpm takes as "kill the workers now" (a request being served
/// is cut off: a POST lost, a 502 at the edge); so SIGTERM, SIGINT and
/// SIGQUIT reach php-fpm as SIGQUIT, its graceful stop (running requests
/// finish within `process_control_timeout`). SIGUSR1 and SIGUSR2 (reopen
/// logs, graceful reload) are passed on as they are.
///
/// A TCP listening socket is bound here and given to php-fpm (its
/// `FPM_SOCKETS` inheritance), so that on a stop it can be shut first:
/// php-fpm keeps listening while it finishes, and a connection an edge
/// opens then would wait in a queue no worker takes and be reset; shut,
/// the port refuses at once, which the edge takes as "try another member,
/// or wait for the restart" with nothing sent.
pub fn run(req: &PhpFpmRequest) -> anyhow::Result<i32> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (_, conf) = prepare(req)?;
    let program = ["php-fpm8.2", "php-fpm"]
        .into_iter()
        .find(|p| crate::prereq::which(p).is_some())
        .unwrap_or("php-fpm8.2");
    let stop = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    let usr2 = Arc::new(AtomicBool::new(false));
    use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    for (sig, flag) in [
        (SIGTERM, &stop),
        (SIGINT, &stop),
        (SIGQUIT, &stop),
        (SIGUSR1, &usr1),
        (SIGUSR2, &usr2),
    ] {
        signal_hook::flag::register(sig, flag.clone())
            .with_context(|| format!("handling signal {sig}"))?;
    }
    let listener = inherit_listener(&req.listen)?;
    let mut command = std::process::Command::new(program);
    if let Some((key, fd)) = &listener {
        use std::os::fd::AsRawFd;
        command.env("FPM_SOCKETS", format!("{key}={}", fd.as_raw_fd()));
    }
    let mut child = command
        .arg("--nodaemonize")
        .arg("--fpm-config")
        .arg(&conf)
        .arg("-d")
        .arg(format!(
            "opcache.lockfile_path={}",
            req.run.join("tmp").display()
        ))
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let pid = rustix::process::Pid::from_child(&child);
    let pass = |signal| {
        // php-fpm gone already: its exit is collected below.
        let _ = rustix::process::kill_process(pid, signal);
    };
    loop {
        if let Some(status) = child.try_wait().context("waiting for php-fpm")? {
            use std::os::unix::process::ExitStatusExt;
            return Ok(status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
        }
        if stop.swap(false, Ordering::SeqCst) {
            if let Some((_, fd)) = &listener {
                let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Read);
            }
            pass(rustix::process::Signal::QUIT);
        }
        if usr1.swap(false, Ordering::SeqCst) {
            pass(rustix::process::Signal::USR1);
        }
        if usr2.swap(false, Ordering::SeqCst) {
            pass(rustix::process::Signal::USR2);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// For an IPv4 `listen` address: a listening socket php-fpm inherits (not
/// close-on-exec), with the key `FPM_SOCKETS` names it by. Unix sockets
/// and IPv6 are left to php-fpm.
fn inherit_listener(listen: &str) -> anyhow::Result<Option<(String, std::os::fd::OwnedFd)>> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    // IPv4 only: php-fpm's name for an inherited IPv6 socket is not this
    // one's, and it would then bind the port itself (already taken).
    let Ok(addr @ std::net::SocketAddr::V4(_)) = listen.parse::<std::net::SocketAddr>() else {
        return Ok(None);
    };
    let family = AddressFamily::INET;
    let err = |e: rustix::io::Errno| anyhow::anyhow!("listening on {addr}: {e}");
    // Without CLOEXEC: php-fpm is to have it.
    let fd = rustix::net::socket(family, SocketType::STREAM, None).map_err(err)?;
    sockopt::set_socket_reuseaddr(&fd, true).map_err(err)?;
    rustix::net::bind(&fd, &addr).map_err(err)?;
    // php-fpm's own default backlog.
    rustix::net::listen(&fd, 511).map_err(err)?;
    // php-fpm names an inherited socket "ADDRESS:PORT", as inet_ntop
    // writes the address.
    Ok(Some((format!("{}:{}", addr.ip(), addr.port()), fd)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The php container with `MURAKUMO_REDIS` set: WordPress's object
    /// cache on that Redis (the drop-in put in wp-content by the admin
    /// role, the password from its secret file in the pool's environment);
    /// without it, no object cache and the drop-in taken away. One test:
    /// the environment is the process's.
    #[test]
    fn the_object_cache_follows_murakumo_redis() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        for name in image::php_secret_files()
            .into_iter()
            .chain([image::REDIS_PASSWORD.to_string()])
        {
            std::fs::write(secrets.join(&name), format!("{name}-value-1234\n")).unwrap();
        }
        let req = PhpFpmRequest {
            role: PoolRole::Admin,
            listen: "127.0.0.1:9000".into(),
            secrets,
            run: dir.path().join("run"),
            core: dir.path().join("core"),
            content: dir.path().join("content"),
        };
        std::env::set_var(image::ENV_DB_HOST, "db");
        std::env::set_var(image::ENV_DB_NAME, "wordpress");
        std::env::set_var(image::ENV_DB_USER, "wp");
        std::env::set_var(image::ENV_REDIS, "tcp://redis:6379");
        let (wp_config, conf) = prepare(&req).unwrap();
        let wp = std::fs::read_to_string(&wp_config).unwrap();
        assert!(
            wp.contains("define('MURAKUMO_REDIS', 'tcp://redis:6379');"),
            "{wp}"
        );
        let fpm = std::fs::read_to_string(&conf).unwrap();
        assert!(
            fpm.contains("env[MURAKUMO_REDIS_PASSWORD] = \"redis-password-value-1234\""),
            "{fpm}"
        );
        let drop_in = req.content.join("object-cache.php");
        assert!(std::fs::read_to_string(&drop_in)
            .unwrap()
            .contains("murakumo object cache"));

        std::env::remove_var(image::ENV_REDIS);
        let (wp_config, conf) = prepare(&req).unwrap();
        assert!(!std::fs::read_to_string(wp_config)
            .unwrap()
            .contains("MURAKUMO_REDIS"));
        assert!(!std::fs::read_to_string(conf).unwrap().contains("REDIS"));
        assert!(!drop_in.exists(), "the drop-in goes with the Redis");
    }
}
