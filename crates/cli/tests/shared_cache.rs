//! The shared cache: two murakumo edges on loopback, one real php-fpm, one
//! real redis-server. What one edge renders the other serves without PHP;
//! a purge at one is gone at the other; a stampede over both is one PHP
//! render; Redis killed mid-load fails no request, and once it is back the
//! edges share again.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::php_site::{write, HOST};
use support::*;

const TOKEN: &str = "shared-purge-token";

/// Two edges of one site, sharing `redis`.
struct Fleet {
    a: php_site::PhpSite,
    b: Edge,
    _b_dir: tempfile::TempDir,
}

impl Fleet {
    fn start(redis: &Redis, token_dir: &std::path::Path) -> Fleet {
        let token = token_dir.join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let server = format!(
            "purge_token_file = \"{}\"\n{}",
            token.display(),
            redis.section()
        );
        let a = php_site::PhpSite::start_with("", &server, 8, "");
        let root = a.root();
        write(&root, "tagged.php", "<?php header('Content-Type: text/html'); header('X-Murakumo-Tags: p:7 q:post'); echo 'post seven at ', microtime(true), str_repeat(' pad', 300);");
        // Edge B: A's configuration on other ports.
        let text = std::fs::read_to_string(&a.edge.config).unwrap();
        let (port, ops_port) = (free_port(), free_port());
        let text = text
            .replace(
                &format!("127.0.0.1:{}\"", a.edge.port),
                &format!("127.0.0.1:{port}\""),
            )
            .replace(
                &format!("127.0.0.1:{}\"", a.edge.ops_port),
                &format!("127.0.0.1:{ops_port}\""),
            );
        let b_dir = tempfile::tempdir().unwrap();
        let b = Edge::start_on(b_dir.path(), &text, port, ops_port);
        let fleet = Fleet {
            a,
            b,
            _b_dir: b_dir,
        };
        for edge in [&fleet.a.edge, &fleet.b] {
            wait_until("the edge reaches Redis", Duration::from_secs(10), || {
                shared_up(edge)
            });
        }
        fleet
    }

    fn get(&self, edge: &Edge, path: &str) -> Resp {
        curl(
            &edge.url(path),
            &["--path-as-is", "-H", &format!("Host: {HOST}")],
        )
    }

    fn php_renders(&self, uri: &str) -> usize {
        self.a.fpm.requests_with_uri(uri)
    }
}

fn purge(edge: &Edge, query: &str) -> Resp {
    curl(
        &edge.ops(&format!("/purge?{query}")),
        &[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
        ],
    )
}

fn metric(edge: &Edge, name: &str) -> u64 {
    let text = curl(&edge.ops("/metrics"), &[]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

fn shared_up(edge: &Edge) -> bool {
    metric(edge, "murakumo_shared_cache_up") == 1
}

#[test]
fn a_page_rendered_at_one_edge_is_a_hit_at_the_other_and_purges_reach_both() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let f = Fleet::start(&redis, dir.path());
    let (a, b) = (&f.a.edge, &f.b);

    let first = f.get(a, "/hello/");
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    let at_b = f.get(b, "/hello/");
    assert_eq!(
        (at_b.status, at_b.cache()),
        (200, "HIT"),
        "{:?}",
        at_b.headers
    );
    assert_eq!(at_b.body, first.body);
    assert_eq!(f.php_renders("/hello/"), 1, "B served A's page without PHP");
    // Every stored form travels: B answers brotli from A's entry.
    let br = curl(
        &b.url("/hello/"),
        &["-H", &format!("Host: {HOST}"), "-H", "Accept-Encoding: br"],
    );
    assert_eq!(
        (br.cache(), br.header("content-encoding")),
        ("HIT", Some("br"))
    );
    assert_eq!(metric(b, "murakumo_shared_cache_hits_total"), 1);

    // A purge by URL at A: gone at B too, though B had the page in memory.
    let url = format!("url=http://{HOST}/hello/");
    assert_eq!(purge(a, &url).status, 200);
    wait_until("B hears of the purge", Duration::from_secs(5), || {
        metric(b, "murakumo_shared_cache_purges_applied_total") >= 1
    });
    let after = f.get(b, "/hello/");
    assert_eq!(after.cache(), "MISS");
    assert_eq!(f.php_renders("/hello/"), 2);
    assert_eq!(f.get(a, "/hello/").cache(), "HIT", "A takes B's new render");
    assert_eq!(f.php_renders("/hello/"), 2);

    // By tag: a purge of another post leaves it, its own tag removes it.
    let t = f.get(a, "/tagged.php");
    assert_eq!(t.cache(), "MISS");
    assert!(
        t.header("x-murakumo-tags").is_none(),
        "tags never reach clients"
    );
    assert_eq!(f.get(b, "/tagged.php").cache(), "HIT");
    purge(b, "tag=p:8");
    wait_until("A hears of the purge", Duration::from_secs(5), || {
        metric(a, "murakumo_shared_cache_purges_applied_total") >= 1
    });
    assert_eq!(f.get(a, "/tagged.php").cache(), "HIT");
    purge(b, "tag=p:7");
    wait_until("A hears of the purge", Duration::from_secs(5), || {
        metric(a, "murakumo_shared_cache_purges_applied_total") >= 2
    });
    let renders = f.php_renders("/tagged.php");
    assert_eq!(f.get(a, "/tagged.php").cache(), "MISS");
    assert_eq!(f.get(b, "/tagged.php").cache(), "HIT");
    assert_eq!(f.php_renders("/tagged.php"), renders + 1);

    // A new edge starting cold serves what the fleet stored, without PHP.
    let text = std::fs::read_to_string(&b.config).unwrap();
    let (port, ops_port) = (free_port(), free_port());
    let text = text
        .replace(
            &format!("127.0.0.1:{}\"", b.port),
            &format!("127.0.0.1:{port}\""),
        )
        .replace(
            &format!("127.0.0.1:{}\"", b.ops_port),
            &format!("127.0.0.1:{ops_port}\""),
        );
    let c_dir = tempfile::tempdir().unwrap();
    let c = Edge::start_on(c_dir.path(), &text, port, ops_port);
    wait_until("C reaches Redis", Duration::from_secs(10), || shared_up(&c));
    assert_eq!(f.get(&c, "/tagged.php").cache(), "HIT");
    assert_eq!(f.php_renders("/tagged.php"), renders + 1);
    // The untagged /hello/ went with the tag purges (nobody said what it
    // shows), in Redis too.
    assert_eq!(f.get(&c, "/hello/").cache(), "MISS");
    // Redis holds the keys under the prefix, behind its password.
    let keys = redis.cli(&["--scan", "--pattern", "murakumo:site:p:*"]);
    assert!(
        keys.contains("murakumo:site:p:http://site.test/tagged.php"),
        "{keys}"
    );
}

#[test]
fn fifty_misses_over_two_edges_are_one_php_render() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let f = Arc::new(Fleet::start(&redis, dir.path()));
    let mut threads = Vec::new();
    for i in 0..50 {
        let f = f.clone();
        threads.push(std::thread::spawn(move || {
            let edge = if i % 2 == 0 { &f.a.edge } else { &f.b };
            // slow.php takes 500 ms: every request arrives while it renders.
            let r = f.get(edge, "/slow.php");
            (r.status, r.text())
        }));
    }
    let answers: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert!(
        answers.iter().all(|(_, body)| *body == answers[0].1),
        "every client got the one render"
    );
    assert_eq!(f.php_renders("/slow.php"), 1, "one render for the fleet");
}

#[test]
fn a_lease_whose_holder_died_runs_out_and_the_next_edge_renders() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let f = Fleet::start(&redis, dir.path());
    // An edge that took the lease for /orphan/ and died (nobody renews it).
    let set = redis.cli(&[
        "SET",
        "murakumo:site:lease:http://site.test/orphan/",
        "dead-edge",
        "PX",
        "3000",
    ]);
    assert_eq!(set.trim(), "OK");
    let r = f.get(&f.a.edge, "/orphan/");
    assert_eq!((r.status, r.cache()), (200, "MISS"));
    assert_eq!(f.php_renders("/orphan/"), 1);
    assert_eq!(f.get(&f.b, "/orphan/").cache(), "HIT");
    assert_eq!(f.php_renders("/orphan/"), 1);
}

#[test]
fn redis_killed_mid_load_fails_no_request_and_sharing_resumes_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path());
    let f = Arc::new(Fleet::start(&redis, dir.path()));
    for path in ["/warm-1/", "/warm-2/"] {
        assert_eq!(f.get(&f.a.edge, path).cache(), "MISS");
        assert_eq!(f.get(&f.b, path).cache(), "HIT");
    }
    // Load on both edges: cached pages and new ones (misses PHP serves).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for w in 0..4 {
        let (f, stop, ok, failed) = (f.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(std::thread::spawn(move || {
            let mut n = 0;
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let edge = if (w + n) % 2 == 0 { &f.a.edge } else { &f.b };
                let path = match n % 3 {
                    0 => "/warm-1/".to_string(),
                    1 => "/warm-2/".to_string(),
                    _ => format!("/new-{w}-{n}/"),
                };
                let r = f.get(edge, &path);
                if r.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    statuses.push((path, r.status));
                }
                n += 1;
            }
            statuses
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    redis.kill();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    // Memory keeps serving the pages it has; readiness says what is wrong
    // but stays ready.
    assert_eq!(f.get(&f.b, "/warm-1/").cache(), "HIT");
    let ready = curl(&f.b.ops("/readyz"), &[]);
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert!(
        ready.text().contains("shared cache (Redis): down"),
        "{}",
        ready.text()
    );
    stop.store(true, Ordering::Relaxed);
    let refused: Vec<_> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "load over Redis's death: {ok} answered, {failed} failed, {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(failed, 0, "{refused:?}");
    assert!(ok > 20, "{ok}");
    assert!(metric(&f.a.edge, "murakumo_shared_cache_up") == 0);

    // A purge while Redis is down empties this edge's memory at once.
    assert_eq!(
        purge(&f.a.edge, &format!("url=http://{HOST}/warm-2/")).status,
        200
    );
    assert_eq!(f.get(&f.a.edge, "/warm-2/").cache(), "MISS");

    // Back (empty: nothing was saved): both edges reconnect and share again.
    redis.boot();
    for edge in [&f.a.edge, &f.b] {
        wait_until("the edge reconnects", Duration::from_secs(15), || {
            shared_up(edge)
        });
    }
    // B may have held /warm-2/ from before; the purge A kept reached it.
    assert_ne!(f.get(&f.b, "/warm-2/").cache(), "HIT");
    let before = f.php_renders("/after/");
    assert_eq!(f.get(&f.a.edge, "/after/").cache(), "MISS");
    assert_eq!(f.get(&f.b, "/after/").cache(), "HIT");
    assert_eq!(f.php_renders("/after/"), before + 1);
}

#[test]
fn a_rotated_password_is_read_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let file = dir.path().join("edge-redis-password");
    std::fs::write(&file, "not-the-password\n").unwrap();
    let section = redis.section().replace(
        &redis.password_file.display().to_string(),
        &file.display().to_string(),
    );
    let site = php_site::PhpSite::start_with("", &section, 2, "");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!shared_up(&site.edge), "a wrong password does not connect");
    let ready = curl(&site.edge.ops("/readyz"), &[]);
    assert_eq!(ready.status, 200);
    assert!(
        ready.text().contains("shared cache (Redis)"),
        "{}",
        ready.text()
    );
    assert!(!site.edge.log_text().contains(support::PASSWORD));
    // The operator puts the right password in the file and reloads.
    std::fs::copy(&redis.password_file, &file).unwrap();
    site.edge.proc.signal("HUP");
    wait_until(
        "the edge connects with the new password",
        Duration::from_secs(10),
        || shared_up(&site.edge),
    );
    assert!(
        !site.edge.log_text().contains(support::PASSWORD),
        "the password is never logged"
    );
}
