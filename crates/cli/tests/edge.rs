//! End to end through the murakumo binary against a real php-fpm serving
//! small PHP scripts: guards, the CGI environment, static files, coalescing,
//! purge, drain, reload and `check`.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::php_site::{PhpSite, HOST};
use support::{curl, Resp};

fn json(r: &Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

#[test]
fn guards_refuse_secrets_php_in_uploads_and_path_tricks() {
    let s = PhpSite::start("", "");
    for (path, status) in [
        ("/wp-content/uploads/evil.php", 403),
        ("/wp-content/uploads/evil%2ephp", 403),
        ("/wp-content/uploads/x/../evil.php", 403),
        ("/wp-content/uploads/evil.php/photo.jpg", 403),
        ("/wp-content//uploads/evil.php", 403),
        ("/wp-content/%75ploads/evil.php", 403),
        ("/wp-config.php", 403),
        ("/wp-config.php.bak", 403),
        ("/x/..%2fwp-config.php", 403),
        ("/.git/config", 404),
        ("/.git%2fconfig", 404),
        ("/dump.sql", 403),
        ("/xmlrpc.php", 403),
        ("/index.php%00.jpg", 400),
        ("/../../etc/passwd", 400),
        ("/a%5c..%5cwp-config.php", 400),
        ("/%c0%ae%c0%ae/wp-config.php", 400),
    ] {
        let r = s.get(path, &[]);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(
            !r.text().contains("EXECUTED") && !r.text().contains("secret"),
            "{path} leaked: {}",
            r.text()
        );
    }
    // Uploads still serve media.
    assert_eq!(s.get("/wp-content/uploads/photo.jpg", &[]).status, 200);
    // Unknown hosts are not served.
    let r = curl(&s.edge.url("/"), &["-H", "Host: other.test"]);
    assert_eq!(r.status, 404);
    // Wildcard hosts are.
    let r = curl(&s.edge.url("/"), &["-H", "Host: www.site.test"]);
    assert_eq!(r.status, 200);
}

#[test]
fn php_gets_the_cgi_environment_wordpress_expects() {
    let s = PhpSite::start("", "");
    let r = s.get(
        "/info.php/extra/path?x=1&y=%20",
        &["-H", "Proxy: http://evil.example", "-H", "X-Custom: yes"],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let env = json(&r);
    let root = s.root();
    assert_eq!(
        env["SCRIPT_FILENAME"],
        format!("{}/info.php", root.display())
    );
    assert_eq!(env["SCRIPT_NAME"], "/info.php");
    assert_eq!(env["PATH_INFO"], "/extra/path");
    assert_eq!(env["REQUEST_URI"], "/info.php/extra/path?x=1&y=%20");
    assert_eq!(env["QUERY_STRING"], "x=1&y=%20");
    assert_eq!(env["DOCUMENT_ROOT"], root.display().to_string());
    assert_eq!(env["HTTP_HOST"], format!("{HOST}:{}", s.edge.port));
    assert_eq!(env["SERVER_NAME"], HOST);
    assert_eq!(env["SERVER_PORT"], s.edge.port.to_string());
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["HTTP_X_CUSTOM"], "yes");
    assert!(
        env.get("HTTP_PROXY").is_none(),
        "httpoxy: Proxy header must not reach PHP"
    );
    assert!(env.get("HTTPS").is_none());

    // Pretty permalinks go to the front controller. A request the page
    // cache may answer reaches PHP as its key's canonical request (tracking
    // parameters and `//` gone); one that bypasses it, as the client sent it.
    let r = s.get("/2024//05/hello-world/?utm_source=x", &[]);
    assert_eq!(
        r.text().split(" pad").next().unwrap(),
        "front controller: /2024/05/hello-world/"
    );
    let r = s.get("/2024//05/hello-world/?p=1&utm_source=x", &[]);
    assert_eq!(
        r.text().split(" pad").next().unwrap(),
        "front controller: /2024//05/hello-world/?p=1&utm_source=x"
    );

    // Request bodies reach PHP, with and without a length.
    let body = s.dir.path().join("body");
    std::fs::write(&body, "a".repeat(300_000)).unwrap();
    let body = format!("@{}", body.display());
    let r = s.get("/info.php", &["--data-binary", &body]);
    assert_eq!(json(&r)["BODY_LEN"], 300_000);
    assert_eq!(json(&r)["CONTENT_LENGTH"], "300000");
    let r = s.get(
        "/info.php",
        &["-H", "Transfer-Encoding: chunked", "--data-binary", &body],
    );
    assert_eq!(json(&r)["BODY_LEN"], 300_000);
}

#[test]
fn static_files_validators_ranges_and_precompressed_siblings() {
    let s = PhpSite::start("", "");
    let r = s.get("/style.css", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(r.header("cache-control").unwrap_or("").contains("max-age"));
    assert_eq!(r.body.len(), 2100);
    let etag = r.header("etag").expect("etag").to_string();
    let last_modified = r
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    assert_eq!(
        s.get("/style.css", &["-H", &format!("If-None-Match: {etag}")])
            .status,
        304
    );
    assert_eq!(
        s.get(
            "/style.css",
            &["-H", &format!("If-Modified-Since: {last_modified}")]
        )
        .status,
        304
    );
    assert_eq!(
        s.get("/style.css", &["-H", "If-None-Match: \"other\""])
            .status,
        200
    );

    // Precompressed siblings, by what the client accepts.
    let br = s.get("/style.css", &["-H", "Accept-Encoding: gzip, br"]);
    assert_eq!(
        (br.header("content-encoding"), br.text().as_str()),
        (Some("br"), "BROTLI-BYTES")
    );
    assert!(br.header("vary").unwrap_or("").contains("Accept-Encoding"));
    let gz = s.get("/style.css", &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(gz.text(), "GZIP-BYTES");

    // Ranges.
    let r = s.get("/big.bin", &["-H", "Range: bytes=1000-1009"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 1000-1009/3000000"));
    let want: Vec<u8> = (1000..1010u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(r.body, want);
    let r = s.get("/big.bin", &["-H", "Range: bytes=-5"]);
    assert_eq!((r.status, r.body.len()), (206, 5));
    assert_eq!(
        s.get("/big.bin", &["-H", "Range: bytes=5000000-"]).status,
        416
    );
    // A large file streams whole.
    let r = s.get("/big.bin", &[]);
    assert_eq!((r.status, r.body.len()), (200, 3_000_000));
    assert_eq!(r.body[2_999_999], (2_999_999u32 % 251) as u8);
    // HEAD: headers, no body.
    let r = s.get("/big.bin", &["-I"]);
    assert_eq!(
        (r.status, r.header("content-length")),
        (200, Some("3000000"))
    );
    // Static files are not executed or posted to.
    assert_eq!(s.get("/style.css", &["--data", "x=1"]).status, 405);
}

#[test]
fn a_stampede_of_misses_costs_one_php_request() {
    let s = PhpSite::start("", "");
    let url = s.edge.url("/slow.php");
    let host = format!("Host: {HOST}:{}", s.edge.port);
    // 50 concurrent connections from one curl process.
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "50",
        "-H",
        &host,
        "-w",
        "%{http_code} %header{x-cache}\\n",
    ]);
    for _ in 0..50 {
        cmd.args(["-o", "/dev/null", &url]);
    }
    let out = cmd.output().expect("curl");
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    let results: Vec<&str> = lines.lines().collect();
    assert_eq!(results.len(), 50, "{lines}");
    assert!(results.iter().all(|l| l.starts_with("200 ")), "{lines}");
    assert_eq!(
        results.iter().filter(|l| l.ends_with("MISS")).count(),
        1,
        "{lines}"
    );
    assert_eq!(
        s.fpm.requests_for("/slow.php"),
        1,
        "php-fpm saw more than one request"
    );
}

#[test]
fn purge_needs_the_token_and_reports_what_went() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let s = PhpSite::start("", &format!("purge_token_file = \"{}\"", token.display()));
    assert_eq!(s.get("/a/", &[]).cache(), "MISS");
    assert_eq!(s.get("/a/", &[]).cache(), "HIT");
    assert_eq!(s.get("/b/", &[]).cache(), "MISS");
    let purge = |q: &str, auth: &str| {
        curl(
            &s.edge.ops(&format!("/purge?{q}")),
            &["-X", "POST", "-H", auth],
        )
    };
    let url = format!("url=http://{HOST}:{}/a/", s.edge.port);
    assert_eq!(purge(&url, "Authorization: Bearer wrong").status, 401);
    assert_eq!(purge(&url, "X-None: 1").status, 401);
    let ok = purge(&url, "Authorization: Bearer s3cret-token");
    assert_eq!((ok.status, ok.text().trim()), (200, "{\"purged\":1}"));
    assert_eq!(s.get("/a/", &[]).cache(), "MISS");
    assert_eq!(s.get("/b/", &[]).cache(), "HIT");
    let all = purge("site=site", "Authorization: Bearer s3cret-token");
    assert_eq!(all.text().trim(), "{\"purged\":2}");
    assert_eq!(s.get("/b/", &[]).cache(), "MISS");
    // Purge is on the ops listener only.
    assert_ne!(
        curl(
            &s.edge.url("/purge?all=1"),
            &["-X", "POST", "-H", &format!("Host: {HOST}")]
        )
        .text()
        .trim(),
        "{\"purged\":1}"
    );
}

#[test]
fn fastcgi_connections_are_kept_alive_and_reused() {
    let s = PhpSite::start("", "");
    for i in 0..40 {
        assert_eq!(s.get(&format!("/info.php?n={i}"), &[]).status, 200);
    }
    let metrics = curl(&s.edge.ops("/metrics"), &[]).text();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    let opened = value("murakumo_fastcgi_connections_opened_total{site=\"site\",pool=\"public\"}");
    let reused = value("murakumo_fastcgi_connections_reused_total{site=\"site\",pool=\"public\"}");
    assert_eq!(opened + reused, 40, "{metrics}");
    assert!(
        opened <= 2,
        "sequential requests should reuse one connection: opened {opened}"
    );
    assert!(
        metrics
            .contains("murakumo_requests_total{site=\"site\",status=\"200\",cache=\"BYPASS\"} 40"),
        "{metrics}"
    );
    assert!(
        metrics.contains("murakumo_php_member_up{site=\"site\",pool=\"public\""),
        "{metrics}"
    );
    assert_eq!(
        value("murakumo_fastcgi_connect_failures_total{site=\"site\",pool=\"public\"}"),
        0
    );
    assert!(
        metrics.contains("murakumo_php_member_idle_connections{site=\"site\",pool=\"public\""),
        "{metrics}"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_cleanly() {
    let mut s = PhpSite::start("", "");
    let url = s.edge.url("/sleep.php");
    let host = format!("Host: {HOST}:{}", s.edge.port);
    let inflight = std::thread::spawn(move || curl(&url, &["-H", &host]));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    s.edge.proc.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    // Readiness fails at once; the public listener still serves during drain_delay.
    assert_eq!(curl(&s.edge.ops("/readyz"), &[]).status, 503);
    assert_eq!(s.get("/style.css", &[]).status, 200);
    let r = inflight.join().unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "finished"),
        "in-flight request was cut"
    );
    let status = s
        .edge
        .proc
        .wait_exit(Duration::from_secs(15))
        .expect("murakumo did not exit after drain");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "exited before drain_delay"
    );
    let refused = Command::new("curl")
        .args(["-s", "--max-time", "2", &s.edge.url("/")])
        .status()
        .unwrap();
    assert!(!refused.success(), "still accepting after exit");
}

#[test]
fn sighup_reloads_and_a_bad_config_keeps_the_old_one() {
    let s = PhpSite::start("", "");
    assert_eq!(s.get("/xmlrpc.php", &[]).status, 403);
    let good = std::fs::read_to_string(&s.edge.config).unwrap();
    std::fs::write(&s.edge.config, format!("{good}xmlrpc = true\n")).unwrap();
    s.edge.proc.signal("HUP");
    support::wait_until("reload to enable xmlrpc", Duration::from_secs(5), || {
        s.get("/xmlrpc.php", &[]).status == 200
    });
    std::fs::write(
        &s.edge.config,
        good.replace("[[site]]", "[[site]]\nbogus_key = 1"),
    )
    .unwrap();
    s.edge.proc.signal("HUP");
    support::wait_until("the refusal in the log", Duration::from_secs(5), || {
        s.edge.log_text().contains("reload refused")
    });
    assert_eq!(
        s.get("/xmlrpc.php", &[]).status,
        200,
        "old config must keep serving"
    );
    assert!(s.edge.log_text().contains("bogus_key"));
}

#[test]
fn check_names_the_file_and_key_of_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("murakumo.toml");
    let check = |text: &str| {
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_murakumo"))
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let good = "[[site]]\nname = \"blog\"\nhosts = [\"wp.test\"]\nroot = \"/tmp\"\nphp = [\"127.0.0.1:9000\"]\n";
    let (code, text) = check(good);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ok"), "{text}");
    let (code, text) = check(&good.replace("php =", "phpp ="));
    assert_eq!(code, Some(1));
    assert!(
        text.contains("murakumo.toml") && text.contains("phpp"),
        "{text}"
    );
    let (code, text) = check(&format!("{good}[site.cache]\nttl = \"soon\"\n"));
    assert_eq!(code, Some(1));
    assert!(text.contains("ttl") || text.contains("soon"), "{text}");
    let (code, text) = check(&format!("{good}admin_allow = [\"everyone\"]\n"));
    assert_eq!(code, Some(1));
    assert!(text.contains("admin_allow"), "{text}");
    let (code, _) = check("this is not toml");
    assert_eq!(code, Some(1));
    let out = Command::new(env!("CARGO_BIN_EXE_murakumo"))
        .args(["check", "--config", "/nonexistent/m.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/m.toml"));
}

#[test]
fn more_connections_than_php_workers_do_not_starve_requests() {
    // php-fpm has 2 workers, the edge may open 6 connections. An idle kept
    // connection pins a worker, so without the pool's starvation guard the
    // requests beyond 2 would wait in php-fpm's backlog until php_timeout
    // (then 504).
    let s = PhpSite::start_with("php_max_conns = 6\nphp_timeout = \"30s\"", "", 2, "");
    let url = s.edge.url("/slow.php");
    let host = format!("Host: {HOST}:{}", s.edge.port);
    for burst in 0..2 {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "60",
            "--parallel",
            "--parallel-immediate",
            "--parallel-max",
            "6",
            "-H",
            &host,
            "-w",
            "%{http_code}\\n",
        ]);
        for _ in 0..6 {
            cmd.args(["-X", "POST", "-o", "/dev/null", &url]);
        }
        let out = String::from_utf8_lossy(&cmd.output().expect("curl").stdout).into_owned();
        let codes: Vec<&str> = out.lines().collect();
        assert_eq!(
            codes,
            vec!["200"; 6],
            "burst {burst}: {out}\n{}",
            s.edge.log_text()
        );
    }
}

#[test]
fn php_stderr_reaches_the_log() {
    let s = PhpSite::start("", "");
    assert_eq!(s.get("/warn.php", &[]).text(), "ok");
    support::wait_until(
        "php's stderr in the edge log",
        Duration::from_secs(5),
        || {
            s.edge
                .log_text()
                .contains("php: PHP message: marker-from-php-stderr")
        },
    );
}

#[test]
fn a_client_that_goes_away_aborts_the_php_request() {
    let s = PhpSite::start("", "");
    let finished = s.dir.path().join("stream-finished");
    // Control: a patient client gets the whole stream and the script ends.
    let whole = s.get("/stream.php", &[]);
    assert_eq!((whole.status, whole.body.len()), (200, 50 * 8193));
    assert!(finished.exists());
    std::fs::remove_file(&finished).unwrap();
    // A client that hangs up after 0.5 s: the edge closes the FastCGI
    // connection, PHP's next flush fails and the script stops.
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "0.5",
            "-o",
            "/dev/null",
            "-H",
            &format!("Host: {HOST}"),
            &s.edge.url("/stream.php"),
        ])
        .status()
        .unwrap();
    assert!(!out.success(), "curl should have timed out");
    std::thread::sleep(Duration::from_secs(7));
    assert!(
        !finished.exists(),
        "PHP ran to the end for a client that was gone"
    );
}

#[test]
fn connections_php_fpm_closed_are_not_reused_and_nothing_fails() {
    // Every php-fpm worker exits after one request, closing its connection:
    // each kept connection is dead by the time it would be reused.
    let s = PhpSite::start_with("", "", 2, "pm.max_requests = 1\n");
    for i in 0..10 {
        let get = s.get(&format!("/info.php?get={i}"), &[]);
        assert_eq!(get.status, 200, "GET {i}: {}", get.text());
        let post = s.get("/info.php", &["--data", "x=1"]);
        assert_eq!(post.status, 200, "POST {i}: {}", post.text());
        assert_eq!(json(&post)["BODY_LEN"], 3);
    }
}

#[test]
fn readiness_stays_up_while_every_php_worker_is_busy() {
    // Busy is not broken: an orchestrator must not pull a loaded edge.
    let s = PhpSite::start_with("php_max_conns = 2", "", 2, "");
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let (url, host) = (s.edge.url("/sleep.php?s=5"), format!("Host: {HOST}"));
            std::thread::spawn(move || curl(&url, &["-X", "POST", "-H", &host]).status)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let ready = curl(&s.edge.ops("/readyz"), &[]);
    assert_eq!(ready.status, 200, "{}", ready.text());
    for b in busy {
        assert_eq!(b.join().unwrap(), 200);
    }
    // And php-fpm gone is not ready.
    let mut s = s;
    s.fpm.stop();
    let ready = curl(&s.edge.ops("/readyz"), &[]);
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("php"), "{}", ready.text());
}

#[test]
fn a_purge_reaches_every_edge_of_purge_fanout_and_says_which_failed() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let auth = format!("purge_token_file = \"{}\"", token.display());
    let other = PhpSite::start("", &auth);
    let dead = support::free_port();
    let first = PhpSite::start(
        "",
        &format!(
            "{auth}\npurge_fanout = [\"127.0.0.1:{}\", \"127.0.0.1:{dead}\"]",
            other.edge.ops_port
        ),
    );
    for s in [&first, &other] {
        assert_eq!(s.get("/a/", &[]).cache(), "MISS");
        assert_eq!(s.get("/a/", &[]).cache(), "HIT");
    }
    let purge = curl(
        &first.edge.ops("/purge?all=1"),
        &["-X", "POST", "-H", "Authorization: Bearer s3cret-token"],
    );
    // The dead peer is reported (502), the live one purged.
    assert_eq!(purge.status, 502, "{}", purge.text());
    assert!(
        purge.text().contains("\"edges_reached\":1"),
        "{}",
        purge.text()
    );
    assert!(purge.text().contains(&dead.to_string()), "{}", purge.text());
    assert_eq!(first.get("/a/", &[]).cache(), "MISS");
    assert_eq!(other.get("/a/", &[]).cache(), "MISS");
    // A purge passed on is not passed on again.
    let passed = curl(
        &other.edge.ops("/purge?all=1"),
        &[
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer s3cret-token",
            "-H",
            "X-Murakumo-Fanout: 1",
        ],
    );
    assert_eq!(
        (passed.status, passed.text().trim()),
        (200, "{\"purged\":1}")
    );
}

#[test]
fn pages_php_keeps_private_see_each_visitor_s_own_request() {
    // A page PHP marks private (an A/B test on a cookie the cache knows
    // nothing of): never stored, and each visitor's PHP sees their own
    // cookie, from the first request on, not the cache's canonical request.
    let s = PhpSite::start("", "");
    support::php_site::write(
        &s.root(),
        "ab.php",
        "<?php header('Cache-Control: private'); echo 'variant ', $_COOKIE['ab'] ?? 'none';",
    );
    for (variant, round) in [("B", 1), ("C", 2), ("B", 3)] {
        let r = s.get("/ab.php", &["-H", &format!("Cookie: ab={variant}")]);
        assert_eq!(r.text(), format!("variant {variant}"), "round {round}");
        assert_eq!(r.cache(), "BYPASS", "round {round}");
    }
    assert_eq!(s.get("/ab.php", &[]).text(), "variant none");
    // The first visitor's request was rendered twice (the canonical one to
    // learn the page is private, then theirs), later ones once each.
    assert_eq!(s.fpm.requests_for("ab.php"), 5);
}

#[test]
fn a_page_rendered_before_a_purge_is_not_kept_after_it() {
    // PHP reads the content, then takes a while to render; the edit and its
    // purge land in between. The page it renders is the old one: its client
    // gets it, but the cache must not keep it past the purge.
    let s = PhpSite::start("", "");
    let version = s.root().join("version.txt");
    std::fs::write(&version, "v1").unwrap();
    support::php_site::write(
        &s.root(),
        "versioned.php",
        "<?php $v = file_get_contents(__DIR__ . '/version.txt'); touch(__DIR__ . \"/read-$v\"); usleep(800000); header('Content-Type: text/html'); header('X-Murakumo-Tags: p:1'); echo 'version ', $v;",
    );
    let url = s.edge.url("/versioned.php");
    // The Host `s.get` sends: the port is part of the key.
    let host = format!("Host: {HOST}:{}", s.edge.port);
    let slow = {
        let (url, host) = (url.clone(), host.clone());
        std::thread::spawn(move || curl(&url, &["-H", &host]))
    };
    // PHP has read the content (it says so by a file), and renders on.
    let root = s.root();
    support::wait_until("PHP to read v1", Duration::from_secs(10), || {
        root.join("read-v1").exists()
    });
    std::fs::write(&version, "v2").unwrap();
    let purged = curl(
        &s.edge
            .ops(&format!("/purge?url=http://{HOST}/versioned.php")),
        &["-X", "POST"],
    );
    assert_eq!(purged.status, 200, "{}", purged.text());
    let old = slow.join().unwrap();
    assert_eq!((old.text().as_str(), old.cache()), ("version v1", "MISS"));
    let after = s.get("/versioned.php", &[]);
    assert_eq!(
        after.text(),
        "version v2",
        "the page rendered before the purge was kept"
    );
    assert_eq!(after.cache(), "MISS");
    assert_eq!(s.get("/versioned.php", &[]).cache(), "HIT");

    // A purge of something else while a page renders leaves that page be:
    // anyone who can make a purge (an approved comment) must not stop the
    // cache from keeping pages.
    std::fs::write(&version, "v3").unwrap();
    curl(
        &s.edge
            .ops(&format!("/purge?url=http://{HOST}/versioned.php")),
        &["-X", "POST"],
    );
    let slow = {
        let (url, host) = (url.clone(), host.clone());
        std::thread::spawn(move || curl(&url, &["-H", &host]))
    };
    support::wait_until("PHP to read v3", Duration::from_secs(10), || {
        root.join("read-v3").exists()
    });
    for q in ["url=http://{HOST}/elsewhere/", "tag=p:999&host={HOST}"] {
        let q = q.replace("{HOST}", HOST);
        let r = curl(&s.edge.ops(&format!("/purge?{q}")), &["-X", "POST"]);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
    }
    assert_eq!(slow.join().unwrap().text(), "version v3");
    let kept = s.get("/versioned.php", &[]);
    assert_eq!((kept.text().as_str(), kept.cache()), ("version v3", "HIT"));
}

#[test]
fn a_client_that_gives_up_does_not_cancel_the_fill_others_wait_for() {
    let s = std::sync::Arc::new(PhpSite::start("", ""));
    // The first client gives up at 0.2 s, while PHP renders the page (0.5 s).
    let url = s.edge.url("/slow.php");
    // The Host the waiters send (`PhpSite::get`): one key.
    let host = format!("Host: {HOST}:{}", s.edge.port);
    let impatient = {
        let (url, host) = (url.clone(), host.clone());
        std::thread::spawn(move || {
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-m", "0.2", "-H", &host, &url])
                .status()
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.get("/slow.php", &[]))
        })
        .collect();
    let _ = impatient.join();
    let answers: Vec<Resp> = waiters.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().all(|r| r.status == 200));
    assert!(
        answers.iter().all(|r| r.body == answers[0].body),
        "every waiter got the one render"
    );
    assert_eq!(
        s.fpm.requests_for("slow.php"),
        1,
        "one render, though its client left:\n{}",
        std::fs::read_to_string(&s.fpm.access_log).unwrap_or_default()
    );
}
