//! `murakumo up`, `down`, `status`, `backup` and `restore`, end to end
//! through the binary: a real MariaDB, real php-fpm pools and Debian's
//! WordPress, in a temp dir on free loopback ports, stopped by the test.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::{curl, free_port, wait_until, Resp};

fn murakumo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_murakumo"))
        .args(args)
        .output()
        .expect("runs murakumo")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A site directory run by `murakumo up`, stopped with `down` when dropped.
struct Site {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    port: u16,
    ops_port: u16,
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("site");
        Site {
            _tmp: tmp,
            dir,
            port: free_port(),
            ops_port: free_port(),
        }
    }

    fn dir(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp path")
    }

    /// `up --detach` with this site's ports and `extra` arguments.
    fn try_up(&self, extra: &[&str]) -> Output {
        let (port, ops) = (self.port.to_string(), self.ops_port.to_string());
        let mut args = vec![
            "up",
            "--dir",
            self.dir(),
            "--port",
            &port,
            "--ops-port",
            &ops,
        ];
        args.extend_from_slice(&["--title", "Murakumo test", "--detach"]);
        args.extend_from_slice(extra);
        murakumo(&args)
    }

    /// `up --detach` with this site's ports; asserts success.
    fn up(&self) -> String {
        let out = self.try_up(&[]);
        assert!(
            out.status.success(),
            "murakumo up failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn down(&self) {
        let out = murakumo(&["down", "--dir", self.dir()]);
        assert!(out.status.success(), "down: {}", text(&out.stderr));
    }

    fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> Resp {
        curl(&self.url(path), &[])
    }

    fn secret(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("secrets").join(name))
            .expect("secret")
            .trim()
            .to_string()
    }

    fn pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.dir.join(format!("run/{name}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn status_code(&self) -> i32 {
        let out = murakumo(&["status", "--dir", self.dir()]);
        out.status.code().unwrap_or(-1)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = murakumo(&["down", "--dir", self.dir()]);
    }
}

/// Logs in through `wp-login.php`; returns the cookie jar.
fn log_in(site: &Site, password: &str, jar: &Path) -> Resp {
    let jar = jar.to_str().expect("utf-8 path");
    let form = format!("log=admin&pwd={password}&wp-submit=Log+In&testcookie=1");
    curl(
        &site.url("/wp-login.php"),
        &[
            "-c",
            jar,
            "-b",
            "wordpress_test_cookie=WP%20Cookie%20check",
            "--data",
            &form,
        ],
    )
}

/// Publishes a post as the block editor does: REST API, login cookie and nonce.
fn publish(site: &Site, jar: &Path, title: &str) {
    let jar = jar.to_str().expect("utf-8 path");
    let nonce = curl(
        &site.url("/wp-admin/admin-ajax.php?action=rest-nonce"),
        &["-b", jar],
    );
    assert_eq!(nonce.status, 200, "rest nonce: {}", nonce.text());
    let nonce_header = format!("X-WP-Nonce: {}", nonce.text().trim());
    let body =
        format!(r#"{{"title":"{title}","content":"Published by the test.","status":"publish"}}"#);
    let created = curl(
        &site.url("/wp-json/wp/v2/posts"),
        &[
            "-b",
            jar,
            "-H",
            &nonce_header,
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
        ],
    );
    assert_eq!(created.status, 201, "publishing: {}", created.text());
}

fn kill(signal: &str, pid: u32) {
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    assert!(sent.expect("kill").success(), "kill -{signal} {pid}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("exists").permissions().mode() & 0o777
}

#[test]
fn up_serves_a_site_that_keeps_its_posts_through_restarts_kills_and_restore() {
    let site = Site::new();
    let first = site.up();
    assert!(first.contains("[5/5] edge"), "progress is shown:\n{first}");

    // The admin password is printed once and kept, private, in secrets/.
    let password = site.secret("admin-password");
    assert!(first.contains(&format!("password: {password}")), "{first}");
    // With separate accounts (root), the edge may open its two secrets by name.
    let secrets_mode = if support::is_root() { 0o711 } else { 0o700 };
    assert_eq!(mode(&site.dir.join("secrets")), secrets_mode);
    assert_eq!(mode(&site.dir.join("secrets/admin-password")), 0o600);
    assert_eq!(mode(&site.dir.join("secrets/db-password")), 0o600);
    assert_eq!(mode(&site.dir.join("run/php-public.conf")), 0o600);
    let wp_config = std::fs::read_to_string(site.dir.join("wp-config.php")).expect("wp-config.php");
    assert!(
        !wp_config.contains(&site.secret("db-password")),
        "no secret in wp-config.php"
    );

    // Nothing that serves requests runs as root.
    for name in ["edge", "mariadb"] {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", site.pid(name))).expect("status");
        let uid = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .expect("Uid line");
        assert!(
            !uid.split_whitespace().skip(1).any(|u| u == "0"),
            "{name} runs as root: {uid}"
        );
    }

    // The home page through the edge: rendered once, then from the cache.
    let home = site.get("/");
    assert_eq!(
        (home.status, home.cache()),
        (200, "MISS"),
        "{}",
        home.text()
    );
    assert!(
        home.text().contains("Murakumo test"),
        "the title given to up"
    );
    assert_eq!(site.get("/").cache(), "HIT");
    let login_page = site.get("/wp-login.php");
    assert_eq!(login_page.status, 200);
    assert!(login_page.text().contains("user_login"));

    // The printed credentials log in, and a post published through
    // WordPress is on the home page at the next request (purged).
    let jar = site.dir.parent().expect("parent").join("cookies");
    let login = log_in(&site, &password, &jar);
    assert_eq!(login.status, 302, "login: {}", login.text());
    assert!(login
        .header("set-cookie")
        .unwrap_or("")
        .contains("wordpress_logged_in_"));
    publish(&site, &jar, "Posted through murakumo up");
    let home = site.get("/");
    assert!(
        home.text().contains("Posted through murakumo up"),
        "purged: {}",
        home.cache()
    );
    // WordPress knows the server rewrites URLs: Settings → Permalinks
    // offers no `/index.php/` structure and asks for no `.htaccess`; the
    // category archive a new post links to exists.
    let jar_path = jar.to_str().expect("utf-8 path");
    let permalinks = curl(
        &site.url("/wp-admin/options-permalink.php"),
        &["-b", jar_path],
    );
    assert_eq!(permalinks.status, 200);
    assert!(permalinks.text().contains("permalink_structure"));
    for wrong in ["/index.php/", ".htaccess"] {
        assert!(
            !permalinks.text().contains(wrong),
            "Settings → Permalinks mentions {wrong}"
        );
    }
    let archive = site.get("/category/uncategorized/");
    assert_eq!(archive.status, 200);
    assert!(archive.text().contains("Posted through murakumo up"));

    // A second `up` is a no-op: no new password, nothing restarted.
    let db_password = site.secret("db-password");
    let edge_pid = site.pid("edge");
    let again = site.up();
    assert!(again.contains("already running"), "{again}");
    assert!(
        !again.contains("password: "),
        "the password is printed once"
    );
    assert_eq!(site.secret("db-password"), db_password);
    assert_eq!(site.pid("edge"), edge_pid);
    assert_eq!(site.status_code(), 0, "status: all running and ready");

    // The public pool cannot write code (core or plugins), only uploads.
    assert_eq!(
        write_probe(&site),
        "core:denied plugins:denied uploads:written"
    );
    assert!(!site.dir.join("wordpress/dropped.php").exists());

    // A killed pool is back within seconds, serving.
    let public = site.pid("php-public");
    assert!(public > 0);
    kill("9", public as u32);
    wait_until("php-public restarted", Duration::from_secs(20), || {
        let now = site.pid("php-public");
        now != public && now > 0 && site.get("/?after-kill=1").status == 200
    });

    // down, then up: the post is still there.
    site.down();
    assert_eq!(site.status_code(), 3, "status: stopped");
    let db_log = std::fs::read_to_string(site.dir.join("logs/mariadb.log")).expect("mariadb log");
    assert!(
        db_log.trim_end().ends_with("Shutdown complete"),
        "clean shutdown:\n{db_log}"
    );
    // A changed secret takes effect at the next start (the DB user, the
    // pools' environment and the edge's readiness check all follow it).
    std::fs::write(
        site.dir.join("secrets/db-password"),
        "rotated-by-the-test\n",
    )
    .expect("rotate");
    site.up();
    assert!(site.get("/").text().contains("Posted through murakumo up"));
    let ready = curl(&format!("http://127.0.0.1:{}/readyz", site.ops_port), &[]);
    assert_eq!(ready.status, 200, "{}", ready.text());

    // Backup, then restore into a new directory: the same posts.
    let archive = site.dir.parent().expect("parent").join("site.tar.zst");
    let out = murakumo(&[
        "backup",
        "--dir",
        site.dir(),
        archive.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    assert_eq!(mode(&archive), 0o600);
    site.down();
    let copy = Site::new();
    let out = murakumo(&[
        "restore",
        "--dir",
        copy.dir(),
        "--port",
        &copy.port.to_string(),
        "--ops-port",
        &copy.ops_port.to_string(),
        archive.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "restore: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    copy.up();
    let home = copy.get("/");
    assert_eq!(home.status, 200);
    assert!(
        home.text().contains("Posted through murakumo up"),
        "restored posts"
    );
    // Restored without secrets: the new admin password logs in.
    let jar2 = copy.dir.parent().expect("parent").join("cookies");
    let login = log_in(&copy, &copy.secret("admin-password"), &jar2);
    assert_eq!(
        login.status,
        302,
        "login on the restored site: {}",
        login.text()
    );
}

#[test]
fn up_refuses_bad_input_clearly_and_leaves_nothing_that_breaks_the_next_up() {
    // A missing package: named, with the command that installs it.
    let site = Site::new();
    // Every `up` here names free ports: the machine may run a site of its
    // own on the default ones.
    let (port, ops_port) = (free_port().to_string(), free_port().to_string());
    let ports = ["--port", port.as_str(), "--ops-port", ops_port.as_str()];
    let out = murakumo(
        &[
            &[
                "up",
                "--dir",
                site.dir(),
                "--wordpress",
                "/nonexistent/wordpress",
            ][..],
            &ports,
        ]
        .concat(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("WordPress core in /nonexistent/wordpress"),
        "{err}"
    );
    assert!(!site.dir.exists(), "nothing created");

    // A directory that cannot be created.
    let file = site.dir.parent().expect("parent").join("a-file");
    std::fs::write(&file, "").expect("file");
    let inside = file.join("site");
    let out = murakumo(&[
        "up",
        "--dir",
        inside.to_str().expect("utf-8"),
        "--port",
        &free_port().to_string(),
        "--ops-port",
        &free_port().to_string(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("cannot create the site directory"), "{err}");

    // As root, a directory the stack's accounts cannot reach (under a 0700
    // parent, like /root): said before anything is created.
    if support::is_root() {
        let private = site.dir.parent().expect("parent").join("private");
        std::fs::create_dir(&private).expect("mkdir");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let inside = private.join("site");
        let out = murakumo(
            &[
                &["up", "--dir", inside.to_str().expect("utf-8"), "--detach"][..],
                &ports,
            ]
            .concat(),
        );
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains("is not searchable by other users (mode 700)"),
            "{err}"
        );
        assert!(!inside.exists(), "nothing created");
    }

    // An occupied port: refused before anything is created; once it is
    // free, `up` in the same directory works.
    let holder = std::net::TcpListener::bind(("127.0.0.1", site.port)).expect("bind");
    let out = site.try_up(&[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{}", site.port)),
        "{err}"
    );
    assert!(err.contains("--port"), "says which flag to change: {err}");
    assert!(!site.dir.exists(), "nothing created");
    drop(holder);
    site.up();
    assert_eq!(site.get("/").status, 200);

    // A flag that contradicts the site's own configuration.
    let out = murakumo(&[
        "up",
        "--dir",
        site.dir(),
        "--port",
        &free_port().to_string(),
    ]);
    assert!(out.status.success(), "a running site: up is a no-op");
    site.down();
    let out = murakumo(&[
        "up",
        "--dir",
        site.dir(),
        "--port",
        &free_port().to_string(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("murakumo.toml: already sets `server.listen`"),
        "{err}"
    );
}

/// What the public pool may write, as PHP itself reports it. The probe is
/// a plugin's script (a WordPress entry point would be core's; others at
/// the top do not run): it names the places by their absolute paths.
fn write_probe(site: &Site) -> String {
    let dir = site.dir.join("content/plugins/murakumo-write-probe");
    std::fs::create_dir_all(&dir).expect("probe dir");
    let at = |rel: &str| site.dir.join(rel).display().to_string();
    std::fs::write(
        dir.join("probe.php"),
        format!(
            "<?php\nfunction w($p) {{ return @file_put_contents($p, 'x') ? 'written' : 'denied'; }}\n\
             echo 'core:', w('{}'), ' plugins:', w('{}'), ' uploads:', w('{}');\n",
            at("wordpress/dropped.php"),
            at("content/plugins/dropped.php"),
            at("content/uploads/probe.txt"),
        ),
    )
    .expect("probe");
    let answer = site
        .get("/wp-content/plugins/murakumo-write-probe/probe.php")
        .text();
    std::fs::remove_dir_all(&dir).expect("remove probe");
    answer
}

#[test]
fn an_ordinary_user_runs_a_site_with_the_same_write_sandbox() {
    if !support::is_root() {
        // Run by an ordinary user, every other test here already is this test.
        return;
    }
    let site = Site::new();
    let tmp = site.dir.parent().expect("parent").to_path_buf();
    // The binary is copied where `nobody` can reach it, wherever the checkout is.
    let exe = tmp.join("murakumo");
    std::fs::copy(env!("CARGO_BIN_EXE_murakumo"), &exe).expect("copy binary");
    let chown = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&tmp)
        .status();
    assert!(chown.expect("chown").success());
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let as_nobody = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&exe)
            .args(args)
            .current_dir(&tmp)
            .output()
            .expect("runuser")
    };
    let (port, ops) = (site.port.to_string(), site.ops_port.to_string());
    let out = as_nobody(&[
        "up",
        "--dir",
        site.dir(),
        "--port",
        &port,
        "--ops-port",
        &ops,
        "-d",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let owner =
        |p: &Path| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).expect("exists"));
    assert_eq!(
        owner(&site.dir.join("db")),
        65534,
        "nothing is given to another account"
    );
    assert_eq!(site.get("/").status, 200);
    // Core and plugins belong to this user, yet the public pool cannot write them.
    assert_eq!(
        write_probe(&site),
        "core:denied plugins:denied uploads:written"
    );
    let out = as_nobody(&["down", "--dir", site.dir()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn ctrl_c_on_a_foreground_up_stops_everything_cleanly() {
    let site = Site::new();
    let mut up = Command::new(env!("CARGO_BIN_EXE_murakumo"))
        .args(["up", "--dir", site.dir(), "--port", &site.port.to_string()])
        .args(["--ops-port", &site.ops_port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("murakumo up");
    wait_until("the site answers", Duration::from_secs(120), || {
        std::net::TcpStream::connect(("127.0.0.1", site.port)).is_ok()
            && site.get("/").status == 200
    });
    let mariadb = site.pid("mariadb");
    kill("INT", up.id());
    let status = up.wait().expect("up exits");
    assert!(status.success(), "{status}");
    assert!(
        !Path::new(&format!("/proc/{mariadb}")).exists(),
        "MariaDB stopped"
    );
    let db_log = std::fs::read_to_string(site.dir.join("logs/mariadb.log")).expect("log");
    assert!(db_log.trim_end().ends_with("Shutdown complete"), "{db_log}");
    assert_eq!(site.status_code(), 3);
}

#[test]
fn a_crashed_mariadb_is_reported_not_restarted() {
    let site = Site::new();
    site.up();
    let mariadb = site.pid("mariadb");
    kill("9", mariadb as u32);
    wait_until("the crash is logged", Duration::from_secs(10), || {
        std::fs::read_to_string(site.dir.join("logs/supervisor.log"))
            .unwrap_or_default()
            .contains("MariaDB EXITED UNEXPECTEDLY")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(site.pid("mariadb"), mariadb, "not restarted");
    let out = murakumo(&["status", "--dir", site.dir()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "degraded: {}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("mariadb     DOWN"),
        "{}",
        text(&out.stdout)
    );
    // The edge says it is not ready; `down` then `up` recovers.
    let ready = curl(&format!("http://127.0.0.1:{}/readyz", site.ops_port), &[]);
    assert_eq!(ready.status, 503);
    site.down();
    site.up();
    assert_eq!(site.get("/").status, 200);
}

#[test]
fn up_https_serves_the_site_over_h2_with_a_self_signed_certificate() {
    let site = Site::new();
    let https_port = free_port().to_string();
    let out = site.try_up(&["--https-port", &https_port]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let home = format!("https://localhost:{https_port}");
    assert!(
        text(&out.stdout).contains(&format!("site:   {home}/")),
        "{}",
        text(&out.stdout)
    );
    let config = std::fs::read_to_string(site.dir.join("murakumo.toml")).unwrap();
    assert!(config.contains("self_signed = true") && config.contains("redirect_https = true"));

    let get = |path: &str| curl(&format!("{home}{path}"), &["-k", "--http2"]);
    let first = get("/");
    assert_eq!(
        (first.status, first.version.as_str()),
        (200, "HTTP/2"),
        "{}",
        first.text()
    );
    assert!(
        first.text().contains(&format!("{home}/")),
        "WordPress links use https"
    );
    assert_eq!(get("/").cache(), "HIT");
    assert!(get("/wp-login.php").text().contains("user_login"));
    // Plain HTTP is redirected to the HTTPS URL.
    let r = site.get("/?p=1");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some(format!("{home}/?p=1").as_str()));
    // The certificate names the host (and is not from a real CA).
    let chain = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl s_client -connect 127.0.0.1:{https_port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -subject -ext subjectAltName"))
        .output()
        .unwrap();
    let chain = text(&chain.stdout);
    assert!(
        chain.contains("murakumo self-signed") && chain.contains("DNS:localhost"),
        "{chain}"
    );
    // Another HTTPS port contradicts the site's murakumo.toml: refused,
    // naming the key.
    site.down();
    let other = free_port().to_string();
    let refused = site.try_up(&["--https-port", &other]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("server.tls_listen"),
        "{}",
        text(&refused.stderr)
    );
}

/// A copy of Debian's WordPress core calling itself `version`, its
/// database version one ahead (so the database upgrade has work to do);
/// `broken`: its upgrade code fails.
fn core_copy(to: &Path, version: &str, broken: bool) {
    let copied = Command::new("cp")
        .args(["-rL", murakumo_stack::DEBIAN_WORDPRESS])
        .arg(to)
        .status()
        .expect("cp");
    assert!(copied.success());
    let _ = std::fs::remove_dir_all(to.join("wp-content"));
    let file = to.join("wp-includes/version.php");
    let text = std::fs::read_to_string(&file).expect("version.php");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("$wp_version = ") {
                format!("$wp_version = '{version}';")
            } else if let Some(n) = l.strip_prefix("$wp_db_version = ") {
                let n: u64 = n.trim_end_matches(';').parse().expect("db version");
                format!("$wp_db_version = {};", n + 1)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, text).expect("write version.php");
    if broken {
        // A core that does not even load: nothing of it may ever answer.
        let load = to.join("wp-includes/load.php");
        let text = std::fs::read_to_string(&load).expect("load.php");
        std::fs::write(&load, format!("{text}\nthis is not PHP;\n")).expect("break it");
    }
}

fn generator(site: &Site) -> String {
    let page = site.get("/?murakumo-test=generator").text();
    page.split("content=\"WordPress ")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("none")
        .to_string()
}

#[test]
fn upgrade_replaces_core_while_the_site_serves_and_a_failed_one_changes_nothing() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let site = Site::new();
    site.up();
    let before = generator(&site);
    assert!(before.starts_with("6."), "{before}");
    let cores = site.dir.parent().expect("parent").to_path_buf();
    let (good, bad) = (cores.join("core-good"), cores.join("core-bad"));
    core_copy(&good, "6.1.99", false);
    core_copy(&bad, "6.2.0", true);

    // Visitors all along: uncached pages (a search reaches PHP every time).
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, served, failed, port) =
            (stop.clone(), served.clone(), failed.clone(), site.port);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut c| {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                    let req = format!("GET /?s=load{n} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
                    let mut answer = Vec::new();
                    c.write_all(req.as_bytes()).is_ok()
                        && c.read_to_end(&mut answer).is_ok()
                        && answer.starts_with(b"HTTP/1.1 200")
                });
                if ok {
                    served.fetch_add(1, Ordering::SeqCst)
                } else {
                    failed.fetch_add(1, Ordering::SeqCst)
                };
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // A failed database upgrade: the old core is put back and serves.
    let out = murakumo(&[
        "upgrade",
        "--dir",
        site.dir(),
        "--wordpress",
        bad.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("WordPress {before} serves as before")),
        "{err}"
    );
    assert!(err.contains("database upgrade failed"), "{err}");
    assert_eq!(generator(&site), before);
    assert!(!site.dir.join("wordpress.next").exists());

    // The upgrade, a backup first: the new core serves, the database is
    // upgraded.
    let archive = cores.join("before-upgrade.tar.zst");
    let out = murakumo(&[
        "upgrade",
        "--dir",
        site.dir(),
        "--wordpress",
        good.to_str().expect("utf-8"),
        "--backup",
        archive.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::metadata(&archive).is_ok_and(|m| m.len() > 1000),
        "the backup was written"
    );
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!("WordPress {before} → 6.1.99")),
        "{said}"
    );
    assert!(said.contains("page cache purged"), "{said}");
    assert_eq!(generator(&site), "6.1.99");
    assert_eq!(site.get("/").status, 200);
    assert!(site
        .dir
        .join("wordpress.previous/wp-settings.php")
        .is_file());
    // Again: nothing to do.
    let again = murakumo(&[
        "upgrade",
        "--dir",
        site.dir(),
        "--wordpress",
        good.to_str().expect("utf-8"),
    ]);
    assert!(text(&again.stdout).contains("nothing to do"));

    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    load.join().expect("load");
    let (served, failed) = (served.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    println!("upgrade under load: {served} requests served, {failed} failed");
    assert!(served > 20, "the load ran: {served}");
    assert_eq!(failed, 0, "no request failed during the upgrades");

    // Site Health says how core is updated here, instead of a failure.
    let jar = site.dir.parent().expect("parent").join("cookies-upgrade");
    log_in(&site, &site.secret("admin-password"), &jar);
    let health = curl(
        &site.url("/wp-admin/site-health.php"),
        &["-b", jar.to_str().expect("utf-8")],
    );
    assert!(health
        .text()
        .contains("WordPress core is updated by murakumo"));
}

#[test]
fn up_redis_gives_wordpress_a_persistent_object_cache_on_a_private_socket() {
    let site = Site::new();
    let out = site.try_up(&["--redis"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Redis"), "{}", text(&out.stdout));
    // A page that asks Site Health and the object cache (a test's own
    // must-use plugin; never cached).
    std::fs::write(
        site.dir.join("content/mu-plugins/test-health.php"),
        "<?php add_action('init', function () { if (!isset($_GET['murakumo-test-health'])) return; require_once ABSPATH . 'wp-admin/includes/class-wp-site-health.php'; header('Cache-Control: no-store'); $h = new WP_Site_Health(); global $wp_object_cache; echo $h->get_test_persistent_object_cache()['label'], '|', $wp_object_cache->redis_hits, '|', $wp_object_cache->is_connected() ? 'connected' : 'not connected'; exit; });",
    )
    .unwrap();
    let health = site.get("/?murakumo-test-health=1").text();
    let parts: Vec<&str> = health.split('|').collect();
    assert_eq!(
        parts.first(),
        Some(&"A persistent object cache is being used"),
        "{health}"
    );
    assert_eq!(parts.get(2), Some(&"connected"), "{health}");
    assert!(
        parts
            .get(1)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            > 0,
        "hits from Redis: {health}"
    );

    // Redis: a unix socket only, under the site, as its own account, with a
    // password; the edge keeps its pages there too.
    let pid = site.pid("redis");
    assert!(pid > 0);
    let tcp = Command::new("ss").args(["-ltnp"]).output().unwrap();
    assert!(
        !text(&tcp.stdout).contains(&format!("pid={pid},")),
        "Redis listens on TCP:\n{}",
        text(&tcp.stdout)
    );
    assert!(site.dir.join("run/redis/redis.sock").exists());
    let conf = site.dir.join("run/redis.conf");
    assert_eq!(mode(&conf), 0o600);
    assert!(std::fs::read_to_string(&conf)
        .unwrap()
        .contains(&format!("requirepass {}", site.secret("redis-password"))));
    if support::is_root() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let redis_uid = passwd
            .lines()
            .find(|l| l.starts_with("redis:"))
            .and_then(|l| l.split(':').nth(2))
            .unwrap();
        assert!(uid.split_whitespace().nth(1) == Some(redis_uid), "{uid}");
    }
    let unauthenticated = Command::new("redis-cli")
        .args([
            "-s",
            site.dir.join("run/redis/redis.sock").to_str().unwrap(),
            "dbsize",
        ])
        .env_remove("REDISCLI_AUTH")
        .output()
        .unwrap();
    assert!(
        text(&unauthenticated.stdout).contains("NOAUTH"),
        "{}",
        text(&unauthenticated.stdout)
    );
    assert_eq!(site.get("/").cache(), "MISS");
    assert_eq!(site.get("/").cache(), "HIT");
    // The page reaches Redis after its answer (the store runs on its own).
    let metrics_url = format!("http://127.0.0.1:{}/metrics", site.ops_port);
    wait_until(
        "the page to be stored in Redis",
        Duration::from_secs(10),
        || {
            curl(&metrics_url, &[])
                .text()
                .contains("murakumo_shared_cache_stores_total 1")
        },
    );
    let metrics = curl(&metrics_url, &[]).text();
    assert!(metrics.contains("murakumo_shared_cache_up 1"), "{metrics}");

    // The next `up` (no flag) keeps Redis: murakumo.toml says so.
    site.down();
    assert!(!site.dir.join("run/redis.pid").exists());
    site.up();
    let status = murakumo(&["status", "--dir", site.dir()]);
    assert!(
        text(&status.stdout).contains("redis       running"),
        "{}",
        text(&status.stdout)
    );
    // A restarted edge starts warm: the page comes from Redis, not PHP.
    assert_eq!(
        site.get("/").cache(),
        "MISS",
        "Redis starts empty after down"
    );
    // The page goes to Redis after its answer: wait for that before the kill.
    let metrics_url = format!("http://127.0.0.1:{}/metrics", site.ops_port);
    wait_until(
        "the page is stored in Redis",
        Duration::from_secs(10),
        || {
            curl(&metrics_url, &[])
                .text()
                .contains("murakumo_shared_cache_stores_total 1")
        },
    );
    let edge = site.pid("edge");
    kill("KILL", edge as u32);
    wait_until("the edge is back", Duration::from_secs(20), || {
        site.pid("edge") != edge
            && std::process::Command::new("curl")
                .args(["-s", "--max-time", "1"])
                .arg(format!("http://127.0.0.1:{}/metrics", site.ops_port))
                .output()
                .is_ok_and(|o| text(&o.stdout).contains("murakumo_shared_cache_up 1"))
    });
    assert_eq!(
        site.get("/").cache(),
        "HIT",
        "the new edge found the page in Redis"
    );
}
