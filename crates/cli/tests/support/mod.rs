//! Test harness: real MariaDB, real php-fpm, Debian's WordPress and the
//! murakumo binary, each started in a temp dir on free loopback ports and
//! stopped when the test ends. HTTP goes through `curl`, a real client.
#![allow(dead_code)]

pub mod php_site;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WORDPRESS: &str = "/usr/share/wordpress";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Finds a program in PATH or the sbin directories (php-fpm, mariadbd).
pub fn program(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
    ]) {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed; run scripts/test, which installs the test dependencies")
}

pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} {} ({}) failed", self.pid(), self.name);
    }

    /// Waits for exit; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response as curl saw it (body not decoded).
#[derive(Debug)]
pub struct Resp {
    /// As on the status line: "HTTP/1.1", "HTTP/2".
    pub version: String,
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }
}

/// Runs curl with `args` (plus the URL) and parses what it got.
pub fn curl(url: &str, args: &[&str]) -> Resp {
    let body = tempfile::NamedTempFile::new().expect("temp file");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D", "-", "-o"])
        .arg(body.path())
        .args(args)
        .arg(url)
        .output()
        .expect("curl is not installed");
    assert!(
        out.status.success(),
        "curl {url} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    // The last header block (after any 100 Continue).
    let block = head
        .trim_end()
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_string();
    let mut lines = block.lines();
    let status_line = lines.next().unwrap_or("");
    let version = status_line
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = HashMap::new();
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            let n = n.trim().to_ascii_lowercase();
            let v = v.trim().to_string();
            headers
                .entry(n)
                .and_modify(|old: &mut String| {
                    old.push_str(", ");
                    old.push_str(&v);
                })
                .or_insert(v);
        }
    }
    Resp {
        version,
        status,
        headers,
        body: std::fs::read(body.path()).unwrap_or_default(),
    }
}

/// A private MariaDB on a unix socket, no TCP.
pub struct Mariadb {
    pub socket: PathBuf,
    tmpdir: PathBuf,
    datadir: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Mariadb {
    pub fn start(dir: &Path) -> Mariadb {
        let datadir = dir.join("db");
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let user = if is_root() {
            "root".to_string()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        // A private tmpdir: concurrent bootstraps in a shared /tmp collide
        // on their temporary tables.
        let tmpdir = dir.join("db-tmp");
        std::fs::create_dir_all(&tmpdir).unwrap();
        let out = Command::new(program("mariadb-install-db"))
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg(format!("--user={user}"))
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = Mariadb {
            socket: run.join("mysqld.sock"),
            tmpdir,
            datadir,
            log: dir.join("mariadb.log"),
            proc: None,
        };
        db.boot();
        db
    }

    fn boot(&mut self) {
        let user = if is_root() {
            "root".to_string()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        let mut cmd = Command::new(program("mariadbd"));
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.datadir.display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--tmpdir={}", self.tmpdir.display()))
            .arg(format!(
                "--pid-file={}",
                self.datadir.join("mariadb.pid").display()
            ))
            .arg(format!("--user={user}"))
            .args([
                "--skip-networking",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=2",
            ]);
        self.proc = Some(Proc::spawn("mariadbd", &mut cmd, &self.log));
        let sock = self.socket.clone();
        wait_until(
            "MariaDB to accept connections",
            Duration::from_secs(60),
            || {
                Command::new("mariadb")
                    .arg("-S")
                    .arg(&sock)
                    .args(["-e", "SELECT 1"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            },
        );
    }

    pub fn sql(&self, q: &str) {
        let out = Command::new("mariadb")
            .arg("-S")
            .arg(&self.socket)
            .args(["-e", q])
            .output()
            .expect("mariadb client");
        assert!(
            out.status.success(),
            "SQL {q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A clean shutdown (SIGTERM, then wait).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("TERM");
            assert!(
                p.wait_exit(Duration::from_secs(60)).is_some(),
                "MariaDB did not stop"
            );
        }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// One php-fpm master with one pool.
pub struct PhpFpm {
    pub socket: PathBuf,
    pub access_log: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl PhpFpm {
    pub fn start(dir: &Path, name: &str, env: &[(&str, String)]) -> PhpFpm {
        PhpFpm::start_sized(dir, name, env, 4, "")
    }

    /// A pool of `children` static workers; `extra` is appended to the pool.
    pub fn start_sized(
        dir: &Path,
        name: &str,
        env: &[(&str, String)],
        children: usize,
        extra: &str,
    ) -> PhpFpm {
        let socket = dir.join(format!("{name}.sock"));
        let access_log = dir.join(format!("{name}-access.log"));
        let conf = dir.join(format!("{name}-fpm.conf"));
        let mut text = format!(
            "[global]\nerror_log = {dir}/{name}-fpm.log\ndaemonize = no\npid = {dir}/{name}-fpm.pid\n\n[{name}]\nlisten = {sock}\npm = static\npm.max_children = {children}\naccess.log = {access}\naccess.format = \"%m %r%Q%q %s uri=%{{REQUEST_URI}}e;\"\ncatch_workers_output = yes\ndecorate_workers_output = no\nclear_env = yes\nphp_admin_value[memory_limit] = 256M\n",
            dir = dir.display(),
            sock = socket.display(),
            access = access_log.display(),
            children = children,
        );
        for (k, v) in env {
            text.push_str(&format!("env[{k}] = {v}\n"));
        }
        text.push_str(extra);
        std::fs::write(&conf, text).unwrap();
        let mut fpm = PhpFpm {
            socket,
            access_log,
            conf,
            log: dir.join(format!("{name}-fpm.out")),
            proc: None,
        };
        fpm.boot();
        fpm
    }

    pub fn boot(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new(program("php-fpm8.2"));
        if is_root() {
            cmd.arg("-R");
        }
        cmd.arg("-F").arg("-y").arg(&self.conf);
        self.proc = Some(Proc::spawn("php-fpm", &mut cmd, &self.log));
        let sock = self.socket.clone();
        wait_until("php-fpm socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("QUIT");
            assert!(
                p.wait_exit(Duration::from_secs(20)).is_some(),
                "php-fpm did not stop"
            );
        }
    }

    /// Kills php-fpm at once (SIGKILL to the master, workers included), as a
    /// crash or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            // Workers first listed, then the master killed (so it cannot
            // replace them), then the workers, which hold the socket too.
            let out = Command::new("pgrep")
                .args(["-P", &p.pid().to_string()])
                .output()
                .expect("pgrep (procps)");
            p.signal("KILL");
            for worker in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", worker]).status();
            }
            let _ = p.wait_exit(Duration::from_secs(10));
        }
    }

    /// Sends a signal to the php-fpm master ("USR2": graceful reload).
    pub fn signal(&self, sig: &str) {
        if let Some(p) = &self.proc {
            p.signal(sig);
        }
    }

    /// Requests whose method and script (`GET /index.php`, not the URI)
    /// contain `needle`.
    pub fn requests_for(&self, needle: &str) -> usize {
        self.log_lines()
            .iter()
            .filter(|l| l.split(" uri=").next().unwrap_or("").contains(needle))
            .count()
    }

    /// Requests PHP was given with exactly this `REQUEST_URI`.
    pub fn requests_with_uri(&self, request_uri: &str) -> usize {
        let needle = format!(" uri={request_uri};");
        self.log_lines()
            .iter()
            .filter(|l| l.contains(&needle))
            .count()
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The murakumo edge, started from a configuration file.
pub struct Edge {
    pub port: u16,
    pub ops_port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    pub proc: Proc,
}

impl Edge {
    /// Starts `murakumo serve` on free ports. `config` may use `{port}` and `{ops_port}`.
    pub fn start(dir: &Path, config: &str) -> Edge {
        let (port, ops_port) = (free_port(), free_port());
        let text = config
            .replace("{port}", &port.to_string())
            .replace("{ops_port}", &ops_port.to_string());
        Edge::start_on(dir, &text, port, ops_port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ops(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ops_port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

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
        let plugin = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../wordpress/mu-plugins/murakumo-purge.php");
        std::fs::copy(
            plugin,
            root.join("wp-content/mu-plugins/murakumo-purge.php"),
        )
        .unwrap();

        let db = Mariadb::start(d);
        db.sql("CREATE DATABASE wordpress; CREATE USER wp@localhost IDENTIFIED BY 'wp-secret'; GRANT ALL ON wordpress.* TO wp@localhost;");
        let salt = |i: usize| format!("salt-{i}-{}", std::process::id());
        let mut config = format!(
            "<?php\ndefine('DB_NAME', 'wordpress');\ndefine('DB_USER', 'wp');\ndefine('DB_PASSWORD', 'wp-secret');\ndefine('DB_HOST', 'localhost:{sock}');\ndefine('DB_CHARSET', 'utf8mb4');\ndefine('DB_COLLATE', '');\n$table_prefix = 'wp_';\ndefine('DISABLE_WP_CRON', true);\ndefine('AUTOMATIC_UPDATER_DISABLED', true);\ndefine('WP_ENVIRONMENT_TYPE', 'local');\ndefine('FS_METHOD', 'direct');\n",
            sock = db.socket.display()
        );
        for (i, k) in murakumo_render::image::WP_SALTS.iter().enumerate() {
            config.push_str(&format!("define('{k}', '{}');\n", salt(i)));
        }
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
        let script = self.root.with_file_name("snippet.php");
        std::fs::write(
            &script,
            format!(
                "<?php\n$_SERVER['HTTP_HOST'] = 'wp.test';\nrequire {:?};\n{code}\n",
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

impl Edge {
    pub fn start_on(dir: &Path, config: &str, port: u16, ops_port: u16) -> Edge {
        let path = dir.join("murakumo.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.join("edge.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_murakumo"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&path)
            .env("MURAKUMO_LOG", "info");
        let proc = Proc::spawn("murakumo", &mut cmd, &log);
        let mut edge = Edge {
            port,
            ops_port,
            config: path,
            log,
            proc,
        };
        let url = edge.ops("/healthz");
        wait_until("murakumo /healthz", Duration::from_secs(20), || {
            Command::new("curl")
                .args(["-sf", "--max-time", "1", &url])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        assert!(
            edge.proc.is_running(),
            "murakumo exited: {}",
            edge.log_text()
        );
        edge
    }
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
