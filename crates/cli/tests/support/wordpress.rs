//! Debian's WordPress installed on a real MariaDB and php-fpm, behind the
//! edge, seeded with one post and an application password.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// Copies a tree, following symlinks (Debian's WordPress links to shared
/// files), hard-linking where the filesystem allows it.
pub fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let src = entry.path();
        let Ok(meta) = std::fs::metadata(&src) else {
            continue;
        }; // broken link
        let dst = to.join(&name);
        if meta.is_dir() {
            copy_tree(&src, &dst, &[]);
        } else {
            let real = std::fs::canonicalize(&src).unwrap_or(src.clone());
            if std::fs::hard_link(&real, &dst).is_err() {
                std::fs::copy(&real, &dst).unwrap();
            }
        }
    }
}

/// A WordPress site on a real MariaDB and php-fpm, behind murakumo.
pub struct WordPress {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub db: Mariadb,
    pub fpm: PhpFpm,
    pub edge: Edge,
    /// The Host header clients send: `wp.test:PORT`.
    pub host: String,
    pub admin_password: String,
    pub app_password: String,
    pub post_url: String,
    /// The HTTPS port, for configurations that use `{tls_port}`.
    pub tls_port: u16,
}

/// How [`WordPress::start_with`] sets up the site.
#[derive(Default)]
pub struct WpOptions<'a> {
    /// Appended to `[server]`; may use `{tls_port}`.
    pub server_extra: &'a str,
    /// Appended to `[[site]]`.
    pub site_extra: &'a str,
    /// Appended to `[site.cache]`.
    pub cache: &'a str,
    /// Install with an `https://wp.test:{tls_port}` home URL.
    pub https: bool,
    /// Appended at the end (more `[[site]]` tables); may use `{root}`,
    /// `{php}` (the pool's address) and `{tls_port}`.
    pub tail: &'a str,
    /// PHP put in wp-config.php before WordPress loads (constants).
    pub wp_config_extra: &'a str,
    /// Install our object-cache drop-in (`wordpress/object-cache.php`).
    pub object_cache: bool,
}

pub const SEEDED_TITLE: &str = "Hello from murakumo";

impl WordPress {
    /// Installs WordPress; `site_extra` is appended to the `[[site]]` table
    /// (e.g. `admin_allow = [...]`) and `cache` to `[site.cache]`.
    pub fn start(site_extra: &str, cache: &str) -> WordPress {
        WordPress::start_with(WpOptions {
            site_extra,
            cache,
            ..WpOptions::default()
        })
    }

    pub fn start_with(o: WpOptions<'_>) -> WordPress {
        let WpOptions {
            server_extra,
            site_extra,
            cache,
            https,
            tail,
            wp_config_extra,
            object_cache,
        } = o;
        let dir = tempfile::Builder::new()
            .prefix("murakumo-wp-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let root = d.join("wordpress");
        copy_tree(Path::new(WORDPRESS), &root, &["wp-config.php", ".htaccess"]);
        std::fs::create_dir_all(root.join("wp-content/mu-plugins")).unwrap();
        std::fs::create_dir_all(root.join("wp-content/uploads")).unwrap();
        for plugin in ["murakumo-purge.php", "murakumo-server.php"] {
            let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wordpress/mu-plugins");
            std::fs::copy(
                ours.join(plugin),
                root.join("wp-content/mu-plugins").join(plugin),
            )
            .unwrap();
        }

        if object_cache {
            let ours =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wordpress/object-cache.php");
            std::fs::copy(ours, root.join("wp-content/object-cache.php")).unwrap();
        }

        let db = Mariadb::start(d);
        db.sql("CREATE DATABASE wordpress; CREATE USER wp@localhost IDENTIFIED BY 'wp-secret'; GRANT ALL ON wordpress.* TO wp@localhost;");
        let salt = |i: usize| format!("salt-{i}-{}", std::process::id());
        let mut config = format!(
            "<?php\ndefine('DB_NAME', 'wordpress');\ndefine('DB_USER', 'wp');\ndefine('DB_PASSWORD', 'wp-secret');\ndefine('DB_HOST', 'localhost:{sock}');\ndefine('DB_CHARSET', 'utf8mb4');\ndefine('DB_COLLATE', '');\n$table_prefix = 'wp_';\ndefine('DISABLE_WP_CRON', true);\ndefine('AUTOMATIC_UPDATER_DISABLED', true);\ndefine('WP_ENVIRONMENT_TYPE', 'local');\ndefine('FS_METHOD', 'direct');\n",
            sock = db.socket.display()
        );
        for (i, k) in murakumo_image::WP_SALTS.iter().enumerate() {
            config.push_str(&format!("define('{k}', '{}');\n", salt(i)));
        }
        config.push_str(wp_config_extra);
        config.push_str("if (!defined('ABSPATH')) { define('ABSPATH', __DIR__ . '/'); }\nrequire_once ABSPATH . 'wp-settings.php';\n");
        std::fs::write(root.join("wp-config.php"), config).unwrap();

        // The edge's ports must be known before install (the home URL has
        // the port), so pick them here and hand them to Edge::start.
        let port = free_port();
        let tls_port = free_port();
        let host = if https {
            format!("wp.test:{tls_port}")
        } else {
            format!("wp.test:{port}")
        };
        let ops_port = free_port();
        let fpm = PhpFpm::start(
            d,
            "wp",
            &[(
                "MURAKUMO_PURGE_URL",
                format!("http://127.0.0.1:{ops_port}/purge"),
            )],
        );

        let admin_password = format!("pw-{}-{}", std::process::id(), port);
        // The same installer `murakumo up` uses, then the test's seed.
        let installer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack/src/php/install.php");
        let home = format!("{}://{host}", if https { "https" } else { "http" });
        let wp_config = root.join("wp-config.php");
        let out = Command::new("php8.2")
            .env("MURAKUMO_ADMIN_PASSWORD", &admin_password)
            .arg(&installer)
            .arg(&wp_config)
            .args([home.as_str(), "murakumo", "admin@example.com"])
            .output()
            .expect("php8.2 cli");
        assert!(
            out.status.success(),
            "installing WordPress: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let seed = d.join("seed.php");
        std::fs::write(&seed, SEED_PHP).unwrap();
        let stdout = php_cli(&[seed.as_os_str(), root.as_os_str(), home.as_ref()]);
        let json_line = stdout.lines().last().unwrap_or("");
        let installed: serde_json::Value = serde_json::from_str(json_line)
            .unwrap_or_else(|e| panic!("install output {stdout:?}: {e}"));

        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nops_listen = \"127.0.0.1:{ops_port}\"\ndrain_delay = \"1s\"\ngrace = \"10s\"\n{server_extra}\n\n[[site]]\nname = \"blog\"\nhosts = [\"wp.test\", \"alias.wp.test\"]\nroot = \"{root}\"\nphp = [\"unix:{sock}\"]\ndb = \"mysql://wp@localhost/wordpress?socket={dbsock}\"\ndb_password_file = \"{pwfile}\"\n{site_extra}\n[site.cache]\n{cache}\n",
            root = root.display(),
            sock = fpm.socket.display(),
            dbsock = db.socket.display(),
            pwfile = d.join("db-password").display(),
        );
        let tail = tail
            .replace("{root}", &root.display().to_string())
            .replace("{php}", &format!("unix:{}", fpm.socket.display()));
        let config = (config + &tail).replace("{tls_port}", &tls_port.to_string());
        let mut f = std::fs::File::create(d.join("db-password")).unwrap();
        writeln!(f, "wp-secret").unwrap();
        let edge = Edge::start_on(d, &config, port, ops_port);
        // The first page view of a new site stores the theme's options,
        // which purges the site (and any page rendered meanwhile): let it
        // happen, uncached, before a test counts on the cache.
        let warm_up = "/?murakumo-test-warm-up=1";
        let warm = if https {
            let url = format!("https://127.0.0.1:{tls_port}{warm_up}");
            curl(&url, &["-k", "-H", &format!("Host: {host}")])
        } else {
            curl(&edge.url(warm_up), &["-H", &format!("Host: {host}")])
        };
        assert_eq!(warm.status, 200, "warming up: {}", warm.text());
        WordPress {
            root,
            db,
            fpm,
            edge,
            host,
            admin_password,
            app_password: installed["app_password"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            post_url: installed["post"].as_str().unwrap_or_default().to_string(),
            tls_port,
            dir,
        }
    }

    /// GET through the edge with the site's Host header.
    /// Runs PHP `code` with WordPress loaded (PHP's CLI, the site's
    /// wp-config.php) and returns what it printed.
    pub fn php(&self, code: &str) -> String {
        self.php_with("", code)
    }

    /// [`Self::php`] with `prelude` run before WordPress loads.
    pub fn php_with(&self, prelude: &str, code: &str) -> String {
        let script = self.root.with_file_name("snippet.php");
        std::fs::write(
            &script,
            format!(
                "<?php\n$_SERVER['HTTP_HOST'] = 'wp.test';\n{prelude}\nrequire {:?};\n{code}\n",
                self.root.join("wp-load.php")
            ),
        )
        .unwrap();
        php_cli(&[script.as_os_str()])
    }

    pub fn get(&self, path: &str, args: &[&str]) -> Resp {
        let host = format!("Host: {}", self.host);
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        curl(&self.edge.url(path), &all)
    }

    /// A REST API POST as the admin (application password), through the
    /// edge's plain listener.
    pub fn rest(&self, path: &str, json: &str) -> Resp {
        let auth = format!("admin:{}", self.app_password);
        self.get(
            path,
            &[
                "-u",
                &auth,
                "-H",
                "Content-Type: application/json",
                "--data",
                json,
            ],
        )
    }

    /// The path part of the seeded post's URL.
    pub fn post_path(&self) -> String {
        let after = self.post_url.split_once("://").map_or("", |x| x.1);
        after
            .find('/')
            .map_or("/".to_string(), |i| after[i..].to_string())
    }
}

/// Runs a PHP CLI script, panicking with its output if it fails.
fn php_cli(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("php8.2")
        .args(args)
        .output()
        .expect("php8.2 cli");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "php {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Seeds an installed WordPress: one post and an application password.
/// Prints JSON on the last line.
const SEED_PHP: &str = r#"<?php
[$_, $root, $home] = $argv;
$parts = parse_url($home);
$_SERVER['HTTP_HOST'] = $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
$_SERVER['REQUEST_URI'] = '/';
require $root . '/wp-load.php';
$id = wp_insert_post(['post_title' => 'Hello from murakumo', 'post_content' => 'Seeded by the test.', 'post_status' => 'publish']);
[$app] = WP_Application_Passwords::create_new_application_password(1, ['name' => 'tests']);
echo "\n", json_encode(['post' => get_permalink($id), 'app_password' => $app]), "\n";
"#;
