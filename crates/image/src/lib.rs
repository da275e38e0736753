//! The runtime image's contract: where the `Containerfile` puts things and
//! which ports, environment variables and secret files the containers
//! use. The renderers (`murakumo-render`) and the local stack
//! (`murakumo-stack`, whose `murakumo php-fpm` is the php container's entry
//! point) both read these, so they cannot drift apart. It has no
//! dependencies: the stack no longer pulls in the renderers for it.

/// WordPress core, baked into the image (read-only, version-pinned).
pub const CORE: &str = "/srv/wordpress/core";
/// The image's must-use plugins (cache purge, its theme directory): they
/// come with the image, so they are never copied into `wp-content`.
pub const MU_PLUGINS: &str = "/srv/wordpress/mu-plugins";
/// The image's default theme, a second theme directory inside core (so the
/// edge serves its files like core's).
pub const THEMES: &str = "/srv/wordpress/core/murakumo-themes";
/// `wp-content`: themes, plugins, uploads; a volume, never in the image.
pub const CONTENT: &str = "/srv/wordpress/content";
/// Uploads inside [`CONTENT`] (the only content the public tier may write
/// when it is not read-only).
pub const UPLOADS: &str = "/srv/wordpress/content/uploads";
/// Writable runtime directory (tmpfs / `emptyDir: Memory`): the generated
/// `wp-config.php` and php-fpm configuration, temp files, sessions.
pub const RUN: &str = "/run/murakumo";
/// Secret files, one per secret (where compose and Swarm put them; the
/// Kubernetes Secret is mounted there too).
pub const SECRETS: &str = "/run/secrets";
/// The edge's configuration file.
pub const EDGE_CONFIG: &str = "/etc/murakumo/murakumo.toml";
/// Certificate files for Kubernetes edges that terminate TLS (`tls.crt`,
/// `tls.key` of a `kubernetes.io/tls` Secret); compose and Swarm put them
/// among the other secrets.
pub const TLS_DIR: &str = "/etc/murakumo/tls";
/// ACME storage for a single edge that obtains its own certificate.
pub const ACME_DIR: &str = "/var/lib/murakumo/acme";
/// The port keeper's hand-off socket, on a volume (one per node) that the
/// keeper and the node's edges share (`murakumo portkeeper`,
/// `server.handoff`).
pub const HANDOFF_DIR: &str = "/run/murakumo-handoff";
pub const HANDOFF_SOCKET: &str = "/run/murakumo-handoff/keeper.sock";

/// php-fpm workers of each pool the image runs (`pm.max_children`). An
/// edge keeps at most this many connections to a pool: each kept
/// connection pins a worker, and one more would wait in php-fpm's queue.
pub const PHP_CHILDREN: usize = 8;
/// The edge's plain HTTP port (non-root: above 1024).
pub const HTTP_PORT: u16 = 8080;
/// The edge's HTTPS port when it terminates TLS.
pub const HTTPS_PORT: u16 = 8443;
/// The edge's ops port: `/healthz`, `/readyz`, `/metrics`, `/purge`.
pub const OPS_PORT: u16 = 9090;
/// php-fpm's FastCGI port.
pub const PHP_PORT: u16 = 9000;

/// The image's non-root account (uid and gid).
pub const UID: u32 = 10001;

/// Environment of the php container: database coordinates (the password
/// is a secret file) and where purges go.
pub const ENV_DB_HOST: &str = "MURAKUMO_DB_HOST";
pub const ENV_DB_NAME: &str = "MURAKUMO_DB_NAME";
pub const ENV_DB_USER: &str = "MURAKUMO_DB_USER";
pub const ENV_PURGE_URL: &str = "MURAKUMO_PURGE_URL";
/// The object cache's Redis for the php containers (`tcp://redis:6379`);
/// unset: no object cache.
pub const ENV_REDIS: &str = "MURAKUMO_REDIS";
/// The Redis container's `maxmemory` (`256mb` when unset).
pub const ENV_REDIS_MAXMEMORY: &str = "MURAKUMO_REDIS_MAXMEMORY";
/// Redis's port in the Redis container.
pub const REDIS_PORT: u16 = 6379;

pub const DB_PASSWORD: &str = "db-password";
pub const DB_ROOT_PASSWORD: &str = "db-root-password";
pub const PURGE_TOKEN: &str = "purge-token";
/// Redis's password (`deploy.redis`): the Redis container, the edges and
/// the php containers read it.
pub const REDIS_PASSWORD: &str = "redis-password";

/// WordPress's eight keys and salts, each a secret file `wp-…`.
pub const WP_SALTS: [&str; 8] = [
    "AUTH_KEY",
    "SECURE_AUTH_KEY",
    "LOGGED_IN_KEY",
    "NONCE_KEY",
    "AUTH_SALT",
    "SECURE_AUTH_SALT",
    "LOGGED_IN_SALT",
    "NONCE_SALT",
];

/// The secret file holding a WordPress salt.
pub fn salt_file(name: &str) -> String {
    format!("wp-{}", name.to_ascii_lowercase().replace('_', "-"))
}

/// Every secret file the php containers read.
pub fn php_secret_files() -> Vec<String> {
    let mut v = vec![DB_PASSWORD.to_string(), PURGE_TOKEN.to_string()];
    v.extend(WP_SALTS.iter().map(|s| salt_file(s)));
    v
}
