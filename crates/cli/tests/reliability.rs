//! End to end: what keeps the edge serving through hostile clients, a
//! saturated or dead php-fpm and replacement of the edge itself. Real
//! php-fpm, the murakumo binary, raw sockets for the malformed requests and
//! the slow clients, `wrk` for load.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::php_site::{write, PhpSite, HOST};
use support::{another_edge, curl, stop_drained, wait_until, Edge, Proc, Wrk};

const HOST_HEADER: &str = "Host: site.test";

/// Sends `request` on a new connection and returns the status of the first
/// answer, or `None` if the edge closed the connection without one.
fn raw_status(port: u16, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no answer within 10 s (a hang): {e}"),
        }
    }
    let line = String::from_utf8_lossy(&got);
    line.split_whitespace().nth(1).and_then(|s| s.parse().ok())
}

/// Whether the edge closes `s` (EOF or reset) within `within`.
fn closed_by_edge(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Sends a request head that never ends, a byte every 300 ms, until the
/// edge closes the connection: how long after `since` that was, or `None`
/// if the whole (long) head went through without it.
fn trickle_head(stream: &mut TcpStream, since: Instant) -> Option<Duration> {
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-long: {}",
        "a".repeat(200)
    );
    for b in head.bytes() {
        if stream.write_all(&[b]).is_err() {
            return Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    None
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'0' => out.push(0),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                    i += 2;
                }
                c => panic!("unknown escape \\{}", c as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn metric(edge: &Edge, line_start: &str) -> f64 {
    let text = curl(&edge.ops("/metrics"), &[]).text();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn corpus(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(name),
    )
    .unwrap()
}

fn no_panic(s: &mut PhpSite) {
    assert!(
        s.edge.proc.is_running(),
        "the edge died: {}",
        s.edge.log_text()
    );
    assert!(
        !s.edge.log_text().contains("panicked"),
        "the edge panicked: {}",
        s.edge.log_text()
    );
}

#[test]
fn malformed_and_smuggling_requests_get_the_documented_status() {
    let mut s = PhpSite::start("max_body = \"1MiB\"", "");
    let (mut tried, mut wrong) = (0, Vec::new());
    for line in corpus("requests.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (expected, name, request) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let got = raw_status(s.edge.port, &unescape(request));
        let label = got.map_or("close".to_string(), |c| c.to_string());
        if !expected.split(',').any(|e| e == label) {
            wrong.push(format!("{name}: expected {expected}, got {label}"));
        }
        tried += 1;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(tried >= 40, "corpus too small: {tried}");
    // Content-Length with Transfer-Encoding: framed by the chunked encoding
    // alone and the connection closed after the answer (RFC 9112 6.1), so
    // a request hidden after the chunked body is never read.
    let mut c = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // One write: `write!` sends the pieces around `{HOST}` separately, and
    // the edge may answer and close after the first ones (broken pipe).
    let smuggled = format!(
        "POST /info.php HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /style.css HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    );
    if let Err(e) = c.write_all(smuggled.as_bytes()) {
        // Closing right after the answer, before the rest arrived, is fine.
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
    }
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(
        !answer.contains("color: red"),
        "the smuggled request was served"
    );
    // Oversized heads: 431 for headers, 414 or 431 for the target.
    let big_header = format!(
        "GET /style.css HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(512 << 10)
    );
    assert_eq!(raw_status(s.edge.port, big_header.as_bytes()), Some(431));
    let many_headers = format!(
        "GET /style.css HTTP/1.1\r\nHost: {HOST}\r\n{}\r\n",
        (0..200)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    assert_eq!(raw_status(s.edge.port, many_headers.as_bytes()), Some(431));
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
        "a".repeat(70_000)
    );
    let got = raw_status(s.edge.port, long_target.as_bytes());
    assert!(matches!(got, Some(414 | 431)), "long target: {got:?}");
    // Of the requests to PHP, only the well-framed ones reached it: the
    // three framed by chunked encoding (cl-and-te, te-and-cl, the smuggling
    // check) and two-equal-content-lengths.
    assert_eq!(s.fpm.requests_for("info.php"), 4);
    no_panic(&mut s);
}

#[test]
fn path_tricks_never_reach_a_denied_file() {
    // The WordPress rules, all of them.
    let mut s = PhpSite::start("[site.guard]\nentry_points_only = true", "");
    write(&s.root(), ".env", "DB_PASSWORD=secret");
    write(&s.root(), ".htaccess", "# secret");
    write(&s.root(), ".htpasswd", "admin:secret");
    write(&s.root(), "wp-content/debug.log", "PHP Warning: secret");
    for leftover in [
        "site.tar.gz",
        "backup.zip",
        "db.sql.xz",
        "db.sql.bz2",
        "dump.sqlite3",
        "wordpress.db",
        "error_log",
        "wp-content/debug.log.1",
        "php_errors.log.1",
        "composer.json",
        "index.php.save",
        "wp-content/uploads/backup-2024/site.zip",
        "readme.html",
        "license.txt",
        "wp-content/plugins/x/readme.txt",
    ] {
        write(&s.root(), leftover, "secret");
    }
    for script in [
        "wp-includes/version.php",
        "wp-admin/includes/admin.php",
        "wp-config-sample.php",
    ] {
        write(&s.root(), script, "<?php echo 'EXECUTED';");
    }
    let mut tried = 0;
    for path in corpus("paths.txt").lines() {
        if path.starts_with('#') || path.trim().is_empty() {
            continue;
        }
        let mut c = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        let status = text.split_whitespace().nth(1).unwrap_or("none");
        // A 200 may only be WordPress' front controller (a page that does not
        // exist is index.php's to answer), never the file asked for.
        assert!(
            status != "200" || text.contains("front controller:"),
            "{path} answered 200: {text}"
        );
        assert!(
            !text.contains("secret") && !text.contains("EXECUTED"),
            "{path} leaked: {text}"
        );
        tried += 1;
    }
    assert!(tried >= 100, "corpus too small: {tried}");
    assert_eq!(s.fpm.requests_for("evil"), 0, "PHP ran a file in uploads");
    for script in ["version.php", "admin.php", "wp-config-sample.php"] {
        assert_eq!(s.fpm.requests_for(script), 0, "PHP ran {script}");
    }
    no_panic(&mut s);
}

#[test]
fn request_bodies_are_bounded_timed_and_spooled() {
    let s = PhpSite::start(
        "max_body = \"1MiB\"",
        "[server.limits]\nbody_timeout = \"1s\"",
    );
    write(
        &s.root(),
        "upload.php",
        "<?php header('Cache-Control: no-store'); $b = file_get_contents('php://input'); echo strlen($b), ' ', md5($b);",
    );
    // 600 KiB: beyond what stays in memory, so it is spooled to a file.
    let body: Vec<u8> = (0..600u32 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let file = s.dir.path().join("upload.bin");
    std::fs::write(&file, &body).unwrap();
    let md5 =
        String::from_utf8(Command::new("md5sum").arg(&file).output().unwrap().stdout).unwrap();
    let md5 = md5.split_whitespace().next().unwrap();
    let data = format!("@{}", file.display());
    let expected = format!("{} {md5}", body.len());
    let r = s.get("/upload.php", &["--data-binary", &data]);
    assert_eq!((r.status, r.text()), (200, expected.clone()));
    let r = s.get(
        "/upload.php",
        &["--data-binary", &data, "-H", "Transfer-Encoding: chunked"],
    );
    assert_eq!((r.status, r.text()), (200, expected), "chunked upload");

    // Too large, declared or chunked: 413, PHP never runs.
    let big = s.dir.path().join("big-upload.bin");
    std::fs::write(&big, vec![b'x'; 2 << 20]).unwrap();
    let big_data = format!("@{}", big.display());
    assert_eq!(
        s.get("/upload.php", &["--data-binary", &big_data]).status,
        413
    );
    let r = s.get(
        "/upload.php",
        &[
            "--data-binary",
            &big_data,
            "-H",
            "Transfer-Encoding: chunked",
        ],
    );
    assert_eq!(r.status, 413);

    // A client that stops sending its body: 408, PHP never runs.
    let mut c = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    write!(
        c,
        "POST /upload.php HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\n0123456789"
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(s.fpm.requests_for("upload.php"), 2);
}

#[test]
fn slow_and_idle_clients_are_cut_while_others_are_served() {
    let s = PhpSite::start(
        "",
        "[server.limits]\nheader_timeout = \"2s\"\nsend_timeout = \"1s\"\nidle_timeout = \"1s\"",
    );
    let huge: Vec<u8> = vec![b'z'; 64 << 20];
    write(&s.root(), "huge.bin", &huge);

    // Slowloris: half a request head, then nothing.
    let mut loris = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    write!(loris, "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-a: b\r\n").unwrap();
    // Slow read: asks for 64 MiB and reads none of it.
    let mut reader = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    write!(reader, "GET /huge.bin HTTP/1.1\r\nHost: {HOST}\r\n\r\n").unwrap();
    // Idle: one request, then silence.
    let mut idle = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    write!(idle, "GET /style.css HTTP/1.1\r\nHost: {HOST}\r\n\r\n").unwrap();

    // A trickling slowloris: a byte of its head every 300 ms, never idle
    // for idle_timeout, never done within header_timeout.
    let mut trickler = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    let started = Instant::now();
    let trickled = std::thread::spawn(move || trickle_head(&mut trickler, started));

    // Meanwhile a normal client is served.
    for _ in 0..5 {
        assert_eq!(s.get("/style.css", &[]).status, 200);
    }
    assert!(
        closed_by_edge(&mut loris, Duration::from_secs(15)),
        "slowloris kept"
    );
    let cut_after = trickled
        .join()
        .unwrap()
        .expect("a trickling slowloris was kept");
    // header_timeout (2 s), then a write or two into the closed socket.
    assert!(
        cut_after < Duration::from_secs(30),
        "the trickler was cut after {cut_after:?}"
    );
    assert!(metric(&s.edge, "murakumo_header_timeouts_total") >= 1.0);
    assert!(
        closed_by_edge(&mut idle, Duration::from_secs(15)),
        "idle connection kept"
    );
    wait_until("the slow reader to be cut", Duration::from_secs(20), || {
        metric(&s.edge, "murakumo_slow_readers_cut_total") >= 1.0
    });
    assert!(metric(&s.edge, "murakumo_idle_connections_closed_total") >= 1.0);
    drop(reader);
    assert_eq!(s.get("/style.css", &[]).status, 200);
}

/// An idle connection is closed once `idle_timeout` has passed since its
/// last answer, at most a quarter of it late (the connection's loop looks
/// that often), never before: also after its first request, whose head was
/// timed from the connection's start.
#[test]
fn an_idle_connection_is_closed_on_time_after_its_requests() {
    let s = PhpSite::start(
        "",
        "[server.limits]\nheader_timeout = \"2s\"\nidle_timeout = \"2s\"",
    );
    write(&s.root(), "a.txt", b"a");
    for requests in [1, 3] {
        let mut c = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut last = Instant::now();
        for _ in 0..requests {
            write!(c, "GET /a.txt HTTP/1.1\r\nHost: {HOST}\r\n\r\n").unwrap();
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{requests}");
            last = Instant::now();
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(
            closed_by_edge(&mut c, Duration::from_secs(10)),
            "{requests}"
        );
        let idle = last.elapsed();
        // 2 s, a quarter late at most; a second of slack for a busy machine.
        assert!(
            idle >= Duration::from_millis(1900) && idle < Duration::from_millis(3500),
            "closed {idle:?} after the last answer of {requests}"
        );
    }
}

/// The head timeout is its own, not the idle one: with idle_timeout far
/// longer, a head trickled byte by byte, half a head, and a connection that
/// sends nothing are all dropped once header_timeout has passed, while a
/// connection that finished its request stays open (idle, not slow).
#[test]
fn slow_heads_are_cut_at_header_timeout_not_at_idle_timeout() {
    let s = PhpSite::start(
        "",
        "[server.limits]\nheader_timeout = \"2s\"\nidle_timeout = \"60s\"",
    );
    let started = Instant::now();
    let mut trickler = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    let trickled = std::thread::spawn(move || trickle_head(&mut trickler, started));
    let mut half = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    write!(half, "GET / HTTP/1.1\r\nHost: {HOST}\r\n").unwrap();
    let mut silent = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    let mut served = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    write!(served, "GET /style.css HTTP/1.1\r\nHost: {HOST}\r\n\r\n").unwrap();

    // Well before idle_timeout (60 s): header_timeout (2 s), checked every
    // quarter of it, then a write or two into the closed socket.
    let within = Duration::from_secs(20);
    assert!(closed_by_edge(&mut half, within), "half a head kept");
    assert!(
        closed_by_edge(&mut silent, within),
        "a silent connection kept"
    );
    let cut = trickled.join().unwrap().expect("a trickled head was kept");
    assert!(cut < within, "a trickled head was cut after {cut:?}");
    assert!(metric(&s.edge, "murakumo_header_timeouts_total") >= 3.0);
    // The served connection is idle, not slow: its answer came, and it is
    // still open (reads time out rather than end).
    served
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 65536];
    let mut got = 0;
    let still_open = loop {
        match served.read(&mut buf) {
            Ok(0) => break false,
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break true
            }
            Err(_) => break false,
        }
    };
    assert!(got > 0, "no answer");
    assert!(still_open, "an idle keep-alive connection was closed");
    // Its next head, trickled, is timed from its first byte too.
    let cut = trickle_head(&mut served, Instant::now());
    let cut = cut.expect("a trickled second head was kept");
    assert!(cut < within, "a trickled second head was cut after {cut:?}");
}

#[test]
fn connections_are_capped_per_client() {
    let s = PhpSite::start("", "[server.limits]\nmax_connections_per_client = 3");
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap())
        .collect();
    wait_until("3 connections admitted", Duration::from_secs(10), || {
        metric(&s.edge, "murakumo_connections_open") >= 3.0
    });
    let mut fourth = TcpStream::connect(("127.0.0.1", s.edge.port)).unwrap();
    assert!(
        closed_by_edge(&mut fourth, Duration::from_secs(10)),
        "a fourth connection from one client was kept"
    );
    assert_eq!(
        metric(&s.edge, "murakumo_connections_refused_per_client_total"),
        1.0
    );
    drop(held);
    wait_until(
        "a new connection to be served",
        Duration::from_secs(10),
        || {
            raw_status(
                s.edge.port,
                format!("GET /style.css HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
            ) == Some(200)
        },
    );
}

#[test]
fn login_attempts_and_site_requests_are_rate_limited_per_client() {
    let s = PhpSite::start(
        "rate_limit = \"20/min\"",
        "trusted_proxies = [\"127.0.0.1\"]",
    );
    write(
        &s.root(),
        "wp-login.php",
        "<?php header('Cache-Control: no-store'); echo 'login form';",
    );
    let from = |ip: &str| format!("X-Forwarded-For: {ip}");
    let (a, b) = (from("203.0.113.5"), from("203.0.113.6"));
    for i in 0..5 {
        let r = s.get("/wp-login.php", &["-H", &a, "-d", "log=admin&pwd=guess"]);
        assert_eq!(r.status, 200, "attempt {i}");
    }
    let r = s.get("/wp-login.php", &["-H", &a, "-d", "log=admin&pwd=guess"]);
    assert_eq!(r.status, 429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&wait), "Retry-After {wait}");
    // The login form itself and other clients are not held back.
    assert_eq!(s.get("/wp-login.php", &["-H", &a]).status, 200);
    assert_eq!(
        s.get("/wp-login.php", &["-H", &b, "-d", "log=admin&pwd=guess"])
            .status,
        200
    );
    assert_eq!(
        metric(
            &s.edge,
            "murakumo_rate_limited_total{site=\"site\",limit=\"login\"}"
        ),
        1.0
    );
    assert_eq!(s.fpm.requests_for("POST /wp-login.php"), 6);
    // The per-site limit: 20 a minute per client, the login form GET above
    // counted as one of them.
    for _ in 0..19 {
        assert_eq!(s.get("/style.css", &["-H", &a]).status, 200);
    }
    let r = s.get("/style.css", &["-H", &a]);
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert_eq!(s.get("/style.css", &["-H", &b]).status, 200);
    assert_eq!(
        metric(
            &s.edge,
            "murakumo_rate_limited_total{site=\"site\",limit=\"site\"}"
        ),
        1.0
    );
}

#[test]
fn a_saturated_php_pool_answers_503_while_cached_pages_flow() {
    let s = PhpSite::start_with(
        "php_max_conns = 1\nphp_queue = 1\nphp_queue_timeout = \"1s\"",
        "",
        2,
        "",
    );
    assert_eq!(s.get("/", &[]).cache(), "MISS");
    assert_eq!(s.get("/", &[]).cache(), "HIT");
    // Three POSTs (never cached) to a 4 s script: one runs, one waits in the
    // queue and gives up after 1 s, one finds the queue full.
    let url = s.edge.url("/sleep.php?s=4");
    let host = format!("Host: {HOST}");
    let posts: Vec<_> = (0..3)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 200 }));
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-D",
                    "-",
                    "-X",
                    "POST",
                    "-H",
                    &host,
                    &url,
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // While PHP is saturated, cached pages are still served.
    let hit = s.get("/", &[]);
    assert_eq!((hit.status, hit.cache()), (200, "HIT"));
    let mut statuses = Vec::new();
    for p in posts {
        let out = p.wait_with_output().unwrap();
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        if status == 503 {
            assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 503, 503]);
    assert_eq!(
        metric(
            &s.edge,
            "murakumo_php_saturated_total{site=\"site\",pool=\"public\"}"
        ),
        2.0
    );
}

#[test]
fn a_php_fpm_restart_costs_waiting_not_a_502() {
    // As compose replaces a php container: php-fpm gone for a second, then
    // back. A request that arrives meanwhile waits for it (php_restart_wait,
    // 10 s by default) instead of failing.
    let mut s = PhpSite::start("", "");
    assert_eq!(s.get("/info.php", &[]).status, 200);
    s.fpm.kill();
    let url = s.edge.url("/info.php?during-the-restart");
    let during = std::thread::spawn(move || curl(&url, &["-H", &format!("Host: {HOST}")]).status);
    std::thread::sleep(Duration::from_secs(1));
    s.fpm.boot();
    assert_eq!(
        during.join().unwrap(),
        200,
        "the request made while php-fpm was down"
    );
    no_panic(&mut s);
}

/// Which member started the `hold.php` request `id` (waits for it).
fn held_by(s: &PhpSite, id: &str) -> usize {
    let found =
        || (0..=s.others.len()).find(|k| s.dir.path().join(format!("ran-{id}-{k}")).exists());
    wait_until("the held request to start", Duration::from_secs(20), || {
        found().is_some()
    });
    found().unwrap()
}

#[test]
fn a_killed_php_member_costs_its_gets_nothing_and_never_runs_a_post_twice() {
    // Two php-fpm members, as the replicas of a php tier. The member running
    // a request is killed under it, as a crashed container or the OOM killer
    // would: a GET is sent again and answered by the other member; a POST is
    // answered 502 and not run again, since the killed one may have done its
    // work already.
    let mut s = PhpSite::start_members("", "", 2, "", 2);
    let url = s.edge.url("/hold.php?id=get");
    let get = std::thread::spawn(move || curl(&url, &["-H", &format!("Host: {HOST}")]));
    let first = held_by(&s, "get");
    s.member(first).kill();
    let r = get.join().unwrap();
    let other = 1 - first;
    assert_eq!(r.status, 200, "the GET under the killed member");
    assert_eq!(String::from_utf8_lossy(&r.body), format!("held by {other}"));
    s.member(first).boot();

    let url = s.edge.url("/hold.php?id=post");
    let post =
        std::thread::spawn(move || curl(&url, &["-X", "POST", "-H", &format!("Host: {HOST}")]));
    let ran = held_by(&s, "post");
    s.member(ran).kill();
    assert_eq!(
        post.join().unwrap().status,
        502,
        "the POST under the killed member"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !s.dir.path().join(format!("ran-post-{}", 1 - ran)).exists(),
        "the POST was run again on the other member"
    );
    s.member(ran).boot();
    assert_eq!(s.get("/info.php", &[]).status, 200);
    no_panic(&mut s);
}

#[test]
fn dead_or_slow_php_gives_stale_pages_502_and_504_then_recovers() {
    // php_restart_wait is short here: a php-fpm that stays dead (not one
    // restarting) is what this test is about.
    let mut s = PhpSite::start_with(
        "php_timeout = \"1s\"\nphp_restart_wait = \"1s\"\n[site.cache]\nttl = \"1s\"\nstale = \"1h\"",
        "",
        1,
        "request_terminate_timeout = 3s\n",
    );
    assert_eq!(s.get("/", &[]).cache(), "MISS");
    // A script sleeping past php_timeout: 504; php-fpm's wall-clock limit
    // (what `murakumo up` sets) frees the worker, so the one worker serves
    // again well before the script's 60 s would end.
    let r = s.get("/sleep.php?s=60", &["-X", "POST"]);
    assert_eq!(r.status, 504);
    wait_until(
        "the worker to be free again",
        Duration::from_secs(20),
        || s.get("/info.php", &[]).status == 200,
    );

    // php-fpm killed and not restarted within php_restart_wait: the cached
    // page is served stale, uncached ones fail fast with 502, and service
    // resumes when php-fpm is back.
    s.fpm.kill();
    std::thread::sleep(Duration::from_millis(1200));
    let r = s.get("/", &[]);
    assert_eq!((r.status, r.cache()), (200, "STALE"));
    let started = Instant::now();
    assert_eq!(s.get("/info.php", &[]).status, 502);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "502 took {:?}",
        started.elapsed()
    );
    s.fpm.boot();
    wait_until("PHP to answer again", Duration::from_secs(20), || {
        s.get("/info.php", &[]).status == 200
    });
    no_panic(&mut s);
}

#[test]
fn replacing_the_edge_five_times_under_load_loses_no_request() {
    let mut s = PhpSite::start("", "");
    assert_eq!(s.get("/", &[]).status, 200);
    let dir = s.dir.path().to_path_buf();
    let config = s.edge.config.clone();
    let cached = Wrk::start(&s.edge.url("/"), 30, 16, &[HOST_HEADER]);
    let uncached = Wrk::start(&s.edge.url("/info.php"), 30, 4, &[HOST_HEADER]);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let mut current: Option<Proc> = None;
    for generation in 1..=5 {
        let next = another_edge(&dir, &config, generation, "ops listening");
        std::thread::sleep(Duration::from_millis(500));
        match current.take() {
            Some(old) => stop_drained(old, "old edge"),
            None => {
                // The first edge belongs to the fixture.
                s.edge.proc.signal("TERM");
                assert!(s.edge.proc.wait_exit(Duration::from_secs(20)).is_some());
            }
        }
        current = Some(next);
    }
    let handovers = started.elapsed();
    assert!(
        handovers < Duration::from_secs(29),
        "the handovers outlasted the load ({handovers:?}); the test proves nothing"
    );
    let (n1, e1, x1, t1) = cached.result();
    let (n2, e2, x2, t2) = uncached.result();
    eprintln!("5 handovers in {handovers:?}; cached: {n1} requests, uncached: {n2} requests");
    assert!(n1 > 1000 && n2 > 50, "too little load: {t1}\n{t2}");
    assert_eq!((e1, x1), (0, 0), "cached page: {t1}");
    assert_eq!((e2, x2), (0, 0), "uncached page: {t2}");
    drop(current);
}

#[test]
fn cached_pages_do_not_notice_a_graceful_php_fpm_restart() {
    let s = PhpSite::start("", "");
    assert_eq!(s.get("/", &[]).status, 200);
    let cached = Wrk::start(&s.edge.url("/"), 6, 16, &[HOST_HEADER]);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(2));
        s.fpm.signal("USR2");
    }
    let (n, e, x, t) = cached.result();
    assert!(n > 1000, "too little load: {t}");
    assert_eq!((e, x), (0, 0), "cached page during php-fpm reloads: {t}");
}

#[test]
fn slowhttptest_attacks_do_not_starve_a_normal_client() {
    let mut s = PhpSite::start("", "");
    let base = format!("http://127.0.0.1:{}", s.edge.port);
    // Slowloris, slow body (R-U-Dead-Yet) and slow read at once, from
    // 127.0.0.1, for 15 s; beyond max_connections_per_client (256) the
    // edge closes new connections at once.
    let attack = |mode: &str, extra: &[&str], path: &str| {
        Command::new("slowhttptest")
            .arg(mode)
            .args(["-c", "200", "-r", "100", "-i", "3", "-l", "15", "-u"])
            .arg(format!("{base}{path}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slowhttptest is not installed (scripts/install-deps --test)")
    };
    let attackers = [
        attack("-H", &[], "/"),
        attack("-B", &["-s", "65536"], "/"),
        attack(
            "-X",
            &["-w", "512", "-y", "1024", "-n", "5", "-z", "32", "-k", "3"],
            "/big.bin",
        ),
    ];
    std::thread::sleep(Duration::from_secs(3));
    let mut peak = 0.0f64;
    let mut latencies = Vec::new();
    // A normal client from another address: 20 requests over ~10 s.
    for _ in 0..20 {
        let started = Instant::now();
        let r = curl(
            &s.edge.url("/style.css"),
            &["--interface", "127.0.0.2", "-H", &format!("Host: {HOST}")],
        );
        latencies.push(started.elapsed());
        assert_eq!(r.status, 200);
        peak = peak.max(metric(&s.edge, "murakumo_connections_open"));
        std::thread::sleep(Duration::from_millis(400));
    }
    for mut a in attackers {
        let _ = a.wait();
    }
    latencies.sort();
    eprintln!(
        "normal client during the attacks: median {:?}, max {:?}; attack connections open at peak: {peak}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(
        peak >= 100.0,
        "the attack never held many connections ({peak}); it proved nothing"
    );
    assert_eq!(s.fpm.requests_for("POST /"), 0, "a slow body reached PHP");
    no_panic(&mut s);
}
