//! Where everything of one site lives inside its directory. Every other
//! module asks this one for a path; nothing else spells a file name.
//!
//! ```text
//! DIR/
//!   murakumo.toml      the edge's configuration (the schema `serve` reads)
//!   wp-config.php      generated on every start; secrets come from the environment
//!   wordpress/         core, replaceable as a whole; wp-content -> ../content
//!   content/           wp-content: themes, plugins, uploads (never touched by core updates)
//!   db/                MariaDB's private data directory
//!   secrets/           generated passwords, salts and tokens (0700, files 0600)
//!   run/               sockets, pid files, generated php-fpm and Redis configs (0600)
//!   logs/              one log per process, and the supervisor's
//!   tmp/               per-process temporary directories
//! ```

use std::path::{Path, PathBuf};

/// The processes of a stack, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Mariadb,
    /// `up --redis` only: the object cache and the edge's shared page cache.
    Redis,
    PhpPublic,
    PhpAdmin,
    Edge,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Mariadb,
        Role::Redis,
        Role::PhpPublic,
        Role::PhpAdmin,
        Role::Edge,
    ];

    /// A short name, used for pid files, logs and `status`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Mariadb => "mariadb",
            Role::Redis => "redis",
            Role::PhpPublic => "php-public",
            Role::PhpAdmin => "php-admin",
            Role::Edge => "edge",
        }
    }
}

/// The paths of one site directory.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// `dir` must be absolute: paths end up in configs read by other processes.
    pub fn new(dir: PathBuf) -> Layout {
        Layout { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("murakumo.toml")
    }
    pub fn wp_config(&self) -> PathBuf {
        self.dir.join("wp-config.php")
    }
    pub fn core(&self) -> PathBuf {
        self.dir.join("wordpress")
    }
    pub fn content(&self) -> PathBuf {
        self.dir.join("content")
    }
    pub fn uploads(&self) -> PathBuf {
        self.content().join("uploads")
    }
    pub fn mu_plugins(&self) -> PathBuf {
        self.content().join("mu-plugins")
    }
    pub fn db(&self) -> PathBuf {
        self.dir.join("db")
    }
    pub fn secrets(&self) -> PathBuf {
        self.dir.join("secrets")
    }
    pub fn secret(&self, name: &str) -> PathBuf {
        self.secrets().join(name)
    }
    pub fn run(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs().join(format!("{name}.log"))
    }
    pub fn tmp(&self, name: &str) -> PathBuf {
        self.dir.join("tmp").join(name)
    }

    /// MariaDB's socket lives in a directory of its own, owned by the
    /// database's user when run as root.
    pub fn mariadb_run(&self) -> PathBuf {
        self.run().join("mysqld")
    }
    pub fn mariadb_socket(&self) -> PathBuf {
        self.mariadb_run().join("mysqld.sock")
    }
    /// Redis's directory (its socket; nothing is saved), owned by its
    /// account when run as root; its configuration beside the others.
    pub fn redis_run(&self) -> PathBuf {
        self.run().join("redis")
    }
    pub fn redis_socket(&self) -> PathBuf {
        self.redis_run().join("redis.sock")
    }
    pub fn redis_conf(&self) -> PathBuf {
        self.run().join("redis.conf")
    }
    /// Each pool's socket has a directory of its own: the pool may create
    /// its socket there and nowhere else in `run/`.
    pub fn php_run(&self, role: Role) -> PathBuf {
        self.run().join(role.name())
    }
    pub fn php_socket(&self, role: Role) -> PathBuf {
        self.php_run(role).join("php.sock")
    }
    pub fn php_fpm_conf(&self, role: Role) -> PathBuf {
        self.run().join(format!("{}.conf", role.name()))
    }
    /// The pid file the supervisor keeps for each process it runs.
    pub fn pid_file(&self, role: Role) -> PathBuf {
        self.run().join(format!("{}.pid", role.name()))
    }
    pub fn supervisor_pid(&self) -> PathBuf {
        self.run().join("supervisor.pid")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.log("supervisor")
    }
    pub fn log_of(&self, role: Role) -> PathBuf {
        self.log(role.name())
    }
}
