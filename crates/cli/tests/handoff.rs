//! End to end: the port keeper (`murakumo portkeeper`) holding the public
//! port while edges that take their connections from it
//! (`server.handoff`) come and go, and while the keeper itself is
//! replaced, start-first (it hands its sockets to the new keeper) and
//! stop-first (it parks them with the edge). Real php-fpm, the murakumo binary, `wrk` for load (one load
//! opens a new connection per request, so every request is handed over).

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::php_site::{PhpSite, HOST};
use support::{another_edge, curl, free_port, stop_drained, wait_until, Proc, Wrk};

const HOST_HEADER: &str = "Host: site.test";

/// A keeper of `port` on `socket`, started and listening.
fn keeper(dir: &Path, port: u16, socket: &Path, generation: u32) -> Proc {
    let log = dir.join(format!("keeper-{generation}.log"));
    // Run as whoever runs the test (root here: stay root, so the edges of
    // the test, root too, may connect).
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_murakumo"));
    cmd.args(["portkeeper", "--http", &format!("127.0.0.1:{port}")])
        .arg("--socket")
        .arg(socket)
        .args(["--user", &uid.to_string()])
        .env("MURAKUMO_LOG", "info");
    let mut p = Proc::spawn("portkeeper", &mut cmd, &log);
    wait_until(
        "the keeper to hold its port",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("keeping")
        },
    );
    assert!(
        p.is_running(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    p
}

/// The log line of an edge connected to the keeper.
const TAKING: &str = "taking connections from the port keeper";

fn taking(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(TAKING)
}

fn site() -> (PhpSite, PathBuf) {
    let socket = tempfile::Builder::new()
        .prefix("murakumo-handoff-")
        .tempdir()
        .unwrap()
        .keep()
        .join("keeper.sock");
    let s = PhpSite::start("", &format!("handoff = \"{}\"", socket.display()));
    (s, socket)
}

#[test]
fn edges_and_the_keeper_are_replaced_under_load_without_losing_a_request() {
    let (mut s, socket) = site();
    let dir = s.dir.path().to_path_buf();
    let port = free_port();
    let mut keeper_now = keeper(&dir, port, &socket, 1);
    wait_until(
        "the fixture's edge to reach the keeper",
        Duration::from_secs(10),
        || taking(&s.edge.log),
    );
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let r = curl(&url("/"), &["-H", HOST_HEADER]);
    assert_eq!(r.status, 200, "through the keeper");

    // Every request of the first load is a new connection, so each one is
    // handed over; the second keeps its connections alive (PHP, uncached).
    let fresh = Wrk::start(&url("/"), 25, 8, &[HOST_HEADER, "Connection: close"]);
    let kept = Wrk::start(&url("/info.php"), 25, 4, &[HOST_HEADER]);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let config = s.edge.config.clone();
    let mut steps = Vec::new();

    // 1, 2: start-first, as Swarm rolls a service: the new edge is ready
    // before the old one is stopped.
    let mut current = another_edge(&dir, &config, 1, TAKING);
    s.edge.proc.signal("TERM");
    assert!(s.edge.proc.wait_exit(Duration::from_secs(20)).is_some());
    steps.push("edge replaced start-first");
    let next = another_edge(&dir, &config, 2, TAKING);
    stop_drained(std::mem::replace(&mut current, next), "old edge");
    steps.push("edge replaced start-first");

    // 3: the keeper itself: the new one takes the listening socket over.
    let k2 = keeper(&dir, port, &socket, 2);
    std::thread::sleep(Duration::from_millis(500));
    stop_drained(std::mem::replace(&mut keeper_now, k2), "old keeper");
    steps.push("keeper replaced");

    // 4: the keeper stop-first, as compose recreates a container: it parks
    // its listening sockets with the edge, which serves them meanwhile and
    // hands them to the next keeper.
    stop_drained(keeper_now, "keeper stopped before its successor");
    std::thread::sleep(Duration::from_millis(700));
    keeper_now = keeper(&dir, port, &socket, 3);
    steps.push("keeper replaced stop-first (0.7 s without a keeper)");

    // 5: the edge stop-first: for a moment no edge at all, and the keeper
    // lets connections wait.
    std::thread::sleep(Duration::from_secs(1));
    stop_drained(current, "the only edge");
    std::thread::sleep(Duration::from_millis(700));
    let last = another_edge(&dir, &config, 3, TAKING);
    steps.push("edge replaced stop-first (0.7 s without an edge)");

    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(24),
        "the replacements outlasted the load ({took:?}); the test proves nothing"
    );
    let (n1, e1, x1, t1) = fresh.result();
    let (n2, e2, x2, t2) = kept.result();
    eprintln!("{steps:?} in {took:?}; new connection per request: {n1} requests, kept alive: {n2}");
    assert!(n1 > 500 && n2 > 50, "too little load: {t1}\n{t2}");
    assert_eq!((e1, x1), (0, 0), "a connection per request: {t1}");
    assert_eq!((e2, x2), (0, 0), "kept-alive connections: {t2}");
    drop((last, keeper_now));
    let _ = std::fs::remove_dir_all(socket.parent().unwrap());
}

#[test]
fn the_edge_serves_the_clients_own_connection() {
    let (s, socket) = site();
    let port = free_port();
    let _keeper = keeper(s.dir.path(), port, &socket, 1);
    wait_until(
        "the edge to reach the keeper",
        Duration::from_secs(10),
        || taking(&s.edge.log),
    );
    // No hop in between: the client's own port is what PHP sees.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-H",
            HOST_HEADER,
            "-w",
            "\n%{local_port}",
        ])
        .arg(format!("http://127.0.0.1:{port}/info.php"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, client_port) = text.rsplit_once('\n').unwrap();
    let server: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(server["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(server["REMOTE_PORT"].as_str(), Some(client_port), "{body}");
    assert_eq!(
        server["SERVER_PORT"].as_str(),
        Some(port.to_string().as_str())
    );
    assert_eq!(server["HTTP_HOST"], HOST);
    let _ = std::fs::remove_dir_all(socket.parent().unwrap());
}
