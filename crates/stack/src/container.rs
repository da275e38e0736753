//! `murakumo php-fpm --role public|admin`: the php container's entry point
//! in the runtime image (compose, Swarm, Kubernetes). On every start it
//! builds `wp-config.php` and the pool's php-fpm configuration from the
//! environment and the secret files, in the writable runtime directory
//! (tmpfs; the image's `wp-config.php` is a link to it), then becomes
//! php-fpm. Nothing in the image is written, so the root filesystem can be
//! read-only, and no secret is in the image or in an environment variable
//! of the container (php-fpm hands them to its workers through `env[]`,
//! in a 0600 file).

use std::os::unix::process::CommandExt;
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

/// Prepares, then replaces this process with php-fpm (returns only on error).
pub fn exec(req: &PhpFpmRequest) -> anyhow::Error {
    let conf = match prepare(req) {
        Ok((_, conf)) => conf,
        Err(e) => return e,
    };
    let program = ["php-fpm8.2", "php-fpm"]
        .into_iter()
        .find(|p| crate::prereq::which(p).is_some())
        .unwrap_or("php-fpm8.2");
    let err = std::process::Command::new(program)
        .arg("--nodaemonize")
        .arg("--fpm-config")
        .arg(&conf)
        .arg("-d")
        .arg(format!(
            "opcache.lockfile_path={}",
            req.run.join("tmp").display()
        ))
        .exec();
    anyhow::anyhow!("running {program}: {err}")
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
