//! Finding the programs a stack runs, and saying exactly which Debian
//! packages to install when one is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The programs of a local stack, found on this machine.
#[derive(Debug, Clone)]
pub struct Programs {
    pub mariadbd: PathBuf,
    pub mariadb_install_db: PathBuf,
    pub mariadb: PathBuf,
    pub mariadb_dump: PathBuf,
    pub php_fpm: PathBuf,
    pub php: PathBuf,
    /// `up --redis` only (empty otherwise).
    pub redis_server: PathBuf,
}

/// What is missing, as the user should read it.
#[derive(Debug)]
pub struct Missing {
    pub what: Vec<String>,
    pub packages: Vec<&'static str>,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "missing prerequisites:")?;
        for w in &self.what {
            writeln!(f, "  - {w}")?;
        }
        if self.packages.is_empty() {
            return Ok(());
        }
        write!(
            f,
            "install them with:\n  sudo apt-get install -y {}\n(or run scripts/install-deps from the murakumo repository)",
            self.packages.join(" ")
        )
    }
}

impl std::error::Error for Missing {}

/// Looks `name` up in `PATH`, then in the sbin directories that an ordinary
/// user's `PATH` lacks on Debian (php-fpm and mariadbd live there).
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl Programs {
    /// Finds every program, or lists everything missing at once.
    pub fn find(wordpress: &Path) -> Result<Programs, Missing> {
        Programs::find_with(wordpress, false)
    }

    /// [`Programs::find`], with Redis and PHP's Redis extension when
    /// `redis` (`up --redis`).
    pub fn find_with(wordpress: &Path, redis: bool) -> Result<Programs, Missing> {
        let mut missing = Missing {
            what: Vec::new(),
            packages: Vec::new(),
        };
        let mut need = |names: &[&str], package: &'static str| -> PathBuf {
            match names.iter().find_map(|n| which(n)) {
                Some(p) => p,
                None => {
                    missing
                        .what
                        .push(format!("program `{}` (Debian package {package})", names[0]));
                    if !missing.packages.contains(&package) {
                        missing.packages.push(package);
                    }
                    PathBuf::new()
                }
            }
        };
        let programs = Programs {
            mariadbd: need(&["mariadbd"], "mariadb-server"),
            mariadb_install_db: need(&["mariadb-install-db"], "mariadb-server"),
            mariadb: need(&["mariadb"], "mariadb-client"),
            mariadb_dump: need(&["mariadb-dump"], "mariadb-client"),
            php_fpm: need(&["php-fpm8.2", "php-fpm"], "php8.2-fpm"),
            php: need(&["php8.2", "php"], "php8.2-cli"),
            redis_server: if redis {
                need(&["redis-server"], "redis-server")
            } else {
                PathBuf::new()
            },
        };
        if redis
            && !programs.php.as_os_str().is_empty()
            && !php_has_extension(&programs.php, "redis")
        {
            missing
                .what
                .push("PHP extension redis (Debian package php8.2-redis)".into());
            missing.packages.push("php8.2-redis");
        }
        if !programs.php.as_os_str().is_empty() && !php_has_extension(&programs.php, "mysqli") {
            missing
                .what
                .push("PHP extension mysqli (Debian package php8.2-mysql)".into());
            missing.packages.push("php8.2-mysql");
        }
        if !wordpress.join("wp-settings.php").is_file() {
            missing.what.push(format!(
                "WordPress core in {} (Debian package wordpress, or pass --wordpress DIR)",
                wordpress.display()
            ));
            if wordpress == Path::new(DEBIAN_WORDPRESS) {
                missing.packages.push("wordpress");
            }
        }
        if missing.what.is_empty() {
            Ok(programs)
        } else {
            Err(missing)
        }
    }
}

/// Where Debian's `wordpress` package puts core.
pub const DEBIAN_WORDPRESS: &str = "/usr/share/wordpress";

fn php_has_extension(php: &Path, extension: &str) -> bool {
    Command::new(php)
        .arg("-r")
        .arg(format!("exit(extension_loaded('{extension}') ? 0 : 1);"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
