//! The request pipeline, in process and in seconds: the edge served by
//! `murakumo_edge::serve` in front of a FastCGI responder (a test double:
//! what PHP renders is not the point here; `crates/cli/tests` runs the same
//! paths against real php-fpm and WordPress). Each test names the step it
//! holds to its word.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use support::edge::TestEdge;
use support::fastcgi_responder::{Reply, Responder};

/// PHP that echoes what it was asked, as a page anyone may share.
async fn echo_php() -> Responder {
    Responder::start(|seen| {
        let body = format!(
            "uri={} ua={} cookie={}",
            seen.param("REQUEST_URI").unwrap_or("-"),
            seen.param("HTTP_USER_AGENT").unwrap_or("-"),
            seen.param("HTTP_COOKIE").unwrap_or("-"),
        );
        Reply::page(&body, &["X-Murakumo-Tags: p:1 q:post"])
    })
    .await
}

#[tokio::test]
async fn a_shared_page_is_rendered_once_from_its_canonical_request_and_then_hit() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    let first = edge
        .get(
            "/sample-page/",
            &[("cookie", "_ga=1"), ("user-agent", "curl/8")],
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert!(
        first.text().contains("uri=/sample-page/"),
        "{}",
        first.text()
    );
    // PHP never sees what one client sent: a fixed User-Agent, no cookie.
    assert!(first.text().contains("cookie=-"), "{}", first.text());
    assert!(
        first.text().contains("murakumo-page-cache"),
        "{}",
        first.text()
    );
    // The tags are the edge's, never the client's.
    assert_eq!(first.header("x-murakumo-tags"), None);
    // Variants of the URL share the key and its entry.
    for variant in [
        "/sample-page/",
        "/%73ample-page//",
        "/sample-page/?utm_source=x",
    ] {
        let again = edge.get(variant, &[]).await;
        assert_eq!(again.header("x-cache"), Some("HIT"), "{variant}");
        assert_eq!(again.body, first.body, "{variant}");
    }
    assert_eq!(php.seen().len(), 1);
    edge.stop().await.unwrap();
}

#[tokio::test]
async fn a_private_page_passes_and_php_gets_each_clients_own_request() {
    let php = Responder::start(|seen| {
        let cookie = seen.param("HTTP_COOKIE").unwrap_or("-").to_string();
        Reply::page(&format!("cookie={cookie}"), &["Set-Cookie: ab=b; Path=/"])
    })
    .await;
    let edge = TestEdge::start(php.addr, "", "").await;
    // The fill finds the page private; this client then gets PHP's answer
    // to its own request.
    let a = edge.get("/ab/", &[("cookie", "visitor=a")]).await;
    assert_eq!(a.header("x-cache"), Some("BYPASS"));
    assert_eq!(a.text(), "cookie=visitor=a");
    // The key now passes: the next client's own request, no fill first.
    let before = php.seen().len();
    let b = edge.get("/ab/", &[("cookie", "visitor=b")]).await;
    assert_eq!(b.text(), "cookie=visitor=b");
    assert_eq!(php.seen().len(), before + 1);
    edge.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_misses_for_one_key_cost_one_php_request() {
    let php =
        Responder::start(|_| Reply::page("slow page", &[]).after(Duration::from_millis(300))).await;
    let edge = Arc::new(TestEdge::start(php.addr, "", "").await);
    let mut clients = Vec::new();
    for _ in 0..8 {
        let edge = edge.clone();
        clients.push(tokio::spawn(async move { edge.get("/busy/", &[]).await }));
    }
    for c in clients {
        let a = c.await.unwrap();
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.text(), "slow page");
    }
    assert_eq!(php.seen_for("/busy/").len(), 1);
}

#[tokio::test]
async fn refusals_come_from_their_step_and_never_reach_php() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], StatusCode, &'a str);
    let cases: [Case; 6] = [
        // front door
        (
            "/",
            &[("host", "wp.test"), ("host", "other.test")],
            StatusCode::BAD_REQUEST,
            "more than one Host",
        ),
        // route
        (
            "/",
            &[("host", "nobody.test")],
            StatusCode::NOT_FOUND,
            "no site",
        ),
        // path
        (
            "/a/%2e%2e/%2e%2e/etc/passwd",
            &[],
            StatusCode::BAD_REQUEST,
            "bad request path",
        ),
        ("/a%00b", &[], StatusCode::BAD_REQUEST, "bad request path"),
        // guards
        ("/wp-config.php", &[], StatusCode::FORBIDDEN, "Forbidden"),
        ("/.git/config", &[], StatusCode::NOT_FOUND, "Not Found"),
    ];
    for (target, headers, status, says) in cases {
        let a = edge.get(target, headers).await;
        assert_eq!(a.status, status, "{target} {headers:?}");
        assert!(a.text().contains(says), "{target}: {}", a.text());
    }
    assert!(php.seen().is_empty(), "{:?}", php.seen());
    edge.stop().await.unwrap();
}

#[tokio::test]
async fn files_are_served_by_the_edge_and_directories_get_their_slash() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    let css = edge.get("/style.css", &[]).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.text(), "body { color: teal }\n");
    let etag = css.header("etag").expect("an ETag").to_string();
    let again = edge.get("/style.css", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let post = edge
        .send(Method::POST, "/style.css", &[], Bytes::from_static(b"x"))
        .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let dir = edge.get("/docs?x=1", &[]).await;
    assert_eq!(dir.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(dir.header("location"), Some("/docs/?x=1"));
    assert_eq!(edge.get("/docs/", &[]).await.text(), "<h1>docs</h1>");
    assert!(php.seen().is_empty());
    edge.stop().await.unwrap();
}

#[tokio::test]
async fn a_post_reaches_php_with_its_body_and_is_never_cached() {
    let php = Responder::start(|seen| {
        let body = String::from_utf8_lossy(&seen.stdin).into_owned();
        Reply::page(
            &format!(
                "{} {} {body}",
                seen.param("REQUEST_METHOD").unwrap_or("-"),
                seen.param("CONTENT_LENGTH").unwrap_or("-")
            ),
            &[],
        )
    })
    .await;
    let edge = TestEdge::start(php.addr, "", "max_body = \"1KiB\"").await;
    let a = edge
        .send(
            Method::POST,
            "/form/",
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from_static(b"a=1&b=2"),
        )
        .await;
    assert_eq!(a.header("x-cache"), Some("BYPASS"));
    assert_eq!(a.text(), "POST 7 a=1&b=2");
    let big = edge
        .send(Method::POST, "/form/", &[], Bytes::from(vec![b'x'; 2048]))
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(php.seen().len(), 1);
    edge.stop().await.unwrap();
}

#[tokio::test]
async fn php_that_does_not_answer_is_a_502() {
    // A port nobody listens on.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let edge = TestEdge::start(addr, "", "php_connect_timeout = \"1s\"").await;
    let a = edge.get("/", &[]).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    edge.stop().await.unwrap();
}

#[tokio::test]
async fn a_purge_on_the_ops_listener_sends_the_next_visitor_to_php() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    edge.get("/hello/", &[]).await;
    assert_eq!(
        edge.get("/hello/", &[]).await.header("x-cache"),
        Some("HIT")
    );
    let purge = edge.ops(Method::POST, "/purge?tag=p:1&reason=test").await;
    assert_eq!(purge.status, StatusCode::OK, "{}", purge.text());
    assert_eq!(purge.text().trim(), "{\"purged\":1}");
    assert_eq!(
        edge.get("/hello/", &[]).await.header("x-cache"),
        Some("MISS")
    );
    let metrics = edge.ops(Method::GET, "/metrics").await.text();
    assert!(
        metrics.contains("murakumo_requests_total{site=\"site\",status=\"200\",cache=\"HIT\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("murakumo_cache_purged_total{site=\"site\",kind=\"tag\"} 1"),
        "{metrics}"
    );
    edge.stop().await.unwrap();
}

#[tokio::test]
async fn login_attempts_past_the_limit_get_429_with_retry_after() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "login_limit = \"2/min\"").await;
    let login = || {
        edge.send(
            Method::POST,
            "/wp-login.php",
            &[],
            Bytes::from_static(b"log=a&pwd=b"),
        )
    };
    std::fs::write(edge.root.path().join("wp-login.php"), "<?php").unwrap();
    assert_eq!(login().await.status, StatusCode::OK);
    assert_eq!(login().await.status, StatusCode::OK);
    let refused = login().await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().unwrap() > 0));
    assert_eq!(php.seen().len(), 2);
    edge.stop().await.unwrap();
}

#[tokio::test]
async fn plain_http_is_sent_to_https_but_acme_challenges_are_not() {
    let php = echo_php().await;
    let edge = TestEdge::start(
        php.addr,
        "redirect_https = true\ntls_listen = [\"127.0.0.1:8443\"]",
        "tls = { self_signed = true }",
    )
    .await;
    let a = edge.get("/a/?b=1", &[("host", "wp.test:8080")]).await;
    assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(a.header("location"), Some("https://wp.test:8443/a/?b=1"));
    let acme = edge.get("/.well-known/acme-challenge/unknown", &[]).await;
    assert_eq!(acme.status, StatusCode::NOT_FOUND);
    assert!(acme.text().contains("ACME"), "{}", acme.text());
    assert!(php.seen().is_empty());
    edge.stop().await.unwrap();
}

#[tokio::test]
async fn serve_drains_and_returns_when_its_shutdown_future_resolves() {
    let answered = Arc::new(AtomicUsize::new(0));
    let php = {
        let answered = answered.clone();
        Responder::start(move |_| {
            answered.fetch_add(1, Ordering::SeqCst);
            Reply::page("late", &["Cache-Control: private"]).after(Duration::from_millis(500))
        })
        .await
    };
    let edge = TestEdge::start(php.addr, "", "").await;
    let http = edge.http;
    // A request in flight when the shutdown comes is answered.
    let in_flight = tokio::spawn(async move {
        let req = http::Request::get("/slow/")
            .header("host", "wp.test")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        support::edge::request(http, req).await
    });
    while answered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    edge.stop().await.unwrap();
    let a = in_flight.await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.text(), "late");
    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
}

#[tokio::test]
async fn what_backups_and_deploys_leave_is_refused_unless_the_site_opts_out() {
    let php = echo_php().await;
    let leftovers = ["backup.zip", "db.sql.gz", "composer.json", "readme.html"];
    let hardened = TestEdge::start(php.addr, "", "").await;
    let open = TestEdge::start(
        php.addr,
        "",
        "[site.guard]\ndeny_backups = false\nentry_points_only = false",
    )
    .await;
    for edge in [&hardened, &open] {
        for name in leftovers {
            std::fs::write(edge.root.path().join(name), "leftover").unwrap();
        }
    }
    for name in leftovers {
        let target = format!("/{name}");
        let refused = hardened.get(&target, &[]).await;
        assert!(
            matches!(refused.status.as_u16(), 403 | 404),
            "{name}: {}",
            refused.status
        );
        assert!(!refused.text().contains("leftover"));
        let served = open.get(&target, &[]).await;
        assert_eq!(served.status, StatusCode::OK, "{name} with the opt-outs");
        assert_eq!(served.text(), "leftover");
    }
    assert!(php.seen().is_empty());
}

#[tokio::test]
async fn anonymous_visitors_cannot_list_users_and_wordpress_is_told_to_check_the_rest() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    for target in [
        "/wp-json/wp/v2/users",
        "/?author=1",
        "/wp-sitemap-users-1.xml",
        "/?rest_route=/wp/v2/users",
    ] {
        assert_eq!(
            edge.get(target, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{target}"
        );
    }
    assert!(php.seen().is_empty());
    // A login cookie is a claim only WordPress can check: it goes on, and
    // WordPress is told to hide users from anyone it does not know.
    let claimed = edge
        .get(
            "/wp-json/wp/v2/users",
            &[("cookie", "wordpress_logged_in_x=forged")],
        )
        .await;
    assert_eq!(claimed.status, StatusCode::OK);
    assert_eq!(php.seen()[0].param("MURAKUMO_HIDE_USERS"), Some("1"));
    // The opt-out: PHP answers, and is told not to hide them either.
    let open = TestEdge::start(php.addr, "", "[site.guard]\nhide_users = false").await;
    assert_eq!(
        open.get("/wp-json/wp/v2/users", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        php.seen().last().unwrap().param("MURAKUMO_HIDE_USERS"),
        Some("0")
    );
}

#[tokio::test]
async fn answers_carry_the_security_headers_and_php_may_set_its_own() {
    let php = Responder::start(|seen| match seen.param("REQUEST_URI") {
        Some("/own/") => Reply::page(
            "own",
            &["X-Frame-Options: DENY", "Referrer-Policy: no-referrer"],
        ),
        _ => Reply::page("page", &[]),
    })
    .await;
    let edge = TestEdge::start(php.addr, "", "").await;
    std::fs::write(edge.root.path().join("wp-login.php"), "<?php").unwrap();
    let page = edge.get("/", &[]).await;
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        page.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    // Front-end pages stay framable (WordPress embeds); the login is not.
    assert_eq!(page.header("x-frame-options"), None);
    let login = edge.get("/wp-login.php", &[]).await;
    assert_eq!(login.header("x-frame-options"), Some("SAMEORIGIN"));
    // Refusals and static files carry them too.
    assert_eq!(
        edge.get("/wp-config.php", &[])
            .await
            .header("x-content-type-options"),
        Some("nosniff")
    );
    assert_eq!(
        edge.get("/style.css", &[])
            .await
            .header("x-content-type-options"),
        Some("nosniff")
    );
    // Every answer about a file too, once the file is known: a 304, a
    // range, a 416 and a 405 (the last two are not made from its head).
    let etag = edge
        .get("/style.css", &[])
        .await
        .header("etag")
        .unwrap()
        .to_string();
    for answer in [
        edge.get("/style.css", &[("if-none-match", &etag)]).await,
        edge.get("/style.css", &[("range", "bytes=0-3")]).await,
        edge.get("/style.css", &[("range", "bytes=9999-")]).await,
        edge.send(Method::POST, "/style.css", &[], Bytes::from_static(b"x"))
            .await,
    ] {
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{}",
            answer.status
        );
    }
    let own = edge.get("/own/", &[]).await;
    assert_eq!(own.header("referrer-policy"), Some("no-referrer"));
    let off = TestEdge::start(php.addr, "", "[site.guard]\nsecurity_headers = false").await;
    assert_eq!(
        off.get("/", &[]).await.header("x-content-type-options"),
        None
    );
}

#[tokio::test]
async fn a_host_that_is_not_a_name_is_refused_and_redirects_go_only_to_configured_hosts() {
    let php = echo_php().await;
    let edge = TestEdge::start(
        php.addr,
        "redirect_https = true\ntls_listen = [\"127.0.0.1:8443\"]",
        "tls = { self_signed = true }",
    )
    .await;
    for host in ["evil.example/foo?", "wp.test/x", "a b", "user@wp.test"] {
        let a = edge.get("/x", &[("host", host)]).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{host}");
        assert_eq!(a.header("location"), None);
    }
    // A well-formed host no site serves is not redirected anywhere.
    let elsewhere = edge.get("/x", &[("host", "evil.example")]).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(elsewhere.header("location"), None);
    assert!(php.seen().is_empty());
}

#[tokio::test]
async fn a_browser_past_the_login_limit_gets_a_page_a_person_can_read() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "login_limit = \"1/min\"").await;
    std::fs::write(edge.root.path().join("wp-login.php"), "<?php").unwrap();
    let browser = [("accept", "text/html,application/xhtml+xml")];
    let post = || {
        edge.send(
            Method::POST,
            "/wp-login.php",
            &browser,
            Bytes::from_static(b"log=a&pwd=b"),
        )
    };
    assert_eq!(post().await.status, StatusCode::OK);
    let refused = post().await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let secs = refused.header("retry-after").unwrap().to_string();
    assert!(
        refused.text().contains("Too many login attempts"),
        "{}",
        refused.text()
    );
    assert!(
        refused.text().contains(&format!("wait {secs} seconds")),
        "{}",
        refused.text()
    );
}

#[tokio::test]
async fn a_head_answer_has_no_body_on_the_wire() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    for target in ["/style.css", "/a-page/"] {
        let request =
            format!("HEAD {target} HTTP/1.1\r\nHost: wp.test\r\nConnection: close\r\n\r\n");
        let answer = support::edge::raw(edge.http, request.as_bytes()).await;
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.is_empty(), "{target}: {body:?}");
    }
}

#[tokio::test]
async fn a_post_does_not_fill_the_cache_for_the_next_get() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    edge.send(Method::POST, "/form/", &[], Bytes::from_static(b"a=1"))
        .await;
    assert_eq!(
        edge.get("/form/", &[]).await.header("x-cache"),
        Some("MISS")
    );
}

#[tokio::test]
async fn an_expired_page_is_served_stale_while_one_refresh_runs_even_when_php_fails() {
    let renders = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let php = {
        let (renders, down) = (renders.clone(), down.clone());
        Responder::start(move |_| {
            if down.load(Ordering::SeqCst) {
                return Reply::status("503 Service Unavailable", "down", &[]);
            }
            let n = renders.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::page(&format!("render {n}"), &[]).after(Duration::from_millis(200))
        })
        .await
    };
    let edge =
        Arc::new(TestEdge::start(php.addr, "", "[site.cache]\nttl = \"1s\"\nstale = \"1h\"").await);
    assert_eq!(edge.get("/news/", &[]).await.text(), "render 1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // PHP fails: the stale page is still served, with its age.
    down.store(true, Ordering::SeqCst);
    let stale = edge.get("/news/", &[]).await;
    assert_eq!(stale.header("x-cache"), Some("STALE"));
    assert_eq!(stale.text(), "render 1");
    assert!(stale.header("age").is_some());
    // PHP is back: six clients at once get the stale page at once and one
    // refresh renders it anew.
    tokio::time::sleep(Duration::from_millis(100)).await;
    down.store(false, Ordering::SeqCst);
    let mut clients = Vec::new();
    for _ in 0..6 {
        let edge = edge.clone();
        clients.push(tokio::spawn(async move { edge.get("/news/", &[]).await }));
    }
    for c in clients {
        let a = c.await.unwrap();
        assert_eq!(a.header("x-cache"), Some("STALE"));
        assert_eq!(a.text(), "render 1");
    }
    let mut fresh = edge.get("/news/", &[]).await;
    for _ in 0..50 {
        if fresh.text() == "render 2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        fresh = edge.get("/news/", &[]).await;
    }
    assert_eq!(fresh.text(), "render 2");
    assert_eq!(fresh.header("x-cache"), Some("HIT"));
    assert_eq!(renders.load(Ordering::SeqCst), 2, "one refresh for all");
}

#[tokio::test]
async fn hits_come_compressed_when_asked_and_as_304_when_the_client_has_them() {
    let body = "<p>a page worth compressing</p>".repeat(100);
    let php = {
        let body = body.clone();
        Responder::start(move |_| Reply::page(&body, &[])).await
    };
    let edge = TestEdge::start(php.addr, "", "").await;
    edge.get("/long/", &[]).await;
    let br = edge.get("/long/", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(br.header("x-cache"), Some("HIT"));
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(br.body.len() < body.len() / 4);
    let plain = edge.get("/long/", &[]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.text(), body);
    let etag = plain.header("etag").expect("an ETag").to_string();
    let again = edge.get("/long/", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(php.seen().len(), 1);
}

#[tokio::test]
async fn redirects_to_their_own_url_are_never_stored_and_404s_are_for_not_found_ttl() {
    let php = Responder::start(|seen| match seen.param("REQUEST_URI") {
        Some("/loop/") => Reply::status(
            "301 Moved Permanently",
            "",
            &["Location: http://wp.test/loop/"],
        ),
        Some("/moved/") => Reply::status(
            "301 Moved Permanently",
            "",
            &["Location: http://wp.test/new/"],
        ),
        _ => Reply::status(
            "404 Not Found",
            "nothing here",
            &["Cache-Control: no-cache, must-revalidate, max-age=0"],
        ),
    })
    .await;
    let edge = TestEdge::start(php.addr, "", "[site.cache]\nnot_found_ttl = \"1s\"").await;
    for _ in 0..2 {
        assert_eq!(
            edge.get("/loop/", &[]).await.status,
            StatusCode::MOVED_PERMANENTLY
        );
        edge.get("/moved/", &[]).await;
    }
    assert_eq!(
        php.seen_for("/loop/").len(),
        2,
        "a redirect to itself is not kept"
    );
    assert_eq!(php.seen_for("/moved/").len(), 1, "a redirect elsewhere is");
    assert_eq!(
        edge.get("/gone/", &[]).await.header("x-cache"),
        Some("MISS")
    );
    let again = edge.get("/gone/", &[]).await;
    assert_eq!(
        (again.status, again.header("x-cache")),
        (StatusCode::NOT_FOUND, Some("HIT"))
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // No stale window for a 404: a post may have been published there.
    assert_eq!(
        edge.get("/gone/", &[]).await.header("x-cache"),
        Some("MISS")
    );
}

#[tokio::test]
async fn the_admin_area_runs_on_the_admin_pool_and_only_from_allowed_addresses() {
    let public = echo_php().await;
    let admin =
        Responder::start(|_| Reply::status("200 OK", "admin pool", &["Cache-Control: no-store"]))
            .await;
    let site = format!(
        "admin_php = [\"{}\"]\nadmin_allow = [\"127.0.0.0/8\"]",
        admin.addr
    );
    let edge = TestEdge::start(public.addr, "", &site).await;
    std::fs::create_dir_all(edge.root.path().join("wp-admin")).unwrap();
    std::fs::write(edge.root.path().join("wp-admin/index.php"), "<?php").unwrap();
    std::fs::write(edge.root.path().join("wp-admin/admin-ajax.php"), "<?php").unwrap();
    let a = edge.get("/wp-admin/", &[]).await;
    assert_eq!(a.text(), "admin pool");
    assert_eq!(a.header("x-frame-options"), Some("SAMEORIGIN"));
    // admin-ajax.php serves the front end: the public pool.
    let ajax = edge.get("/wp-admin/admin-ajax.php?action=x", &[]).await;
    assert!(
        ajax.text().starts_with("uri=/wp-admin/admin-ajax.php"),
        "{}",
        ajax.text()
    );
    let far = TestEdge::start(
        public.addr,
        "",
        &format!(
            "admin_php = [\"{}\"]\nadmin_allow = [\"10.0.0.0/8\"]",
            admin.addr
        ),
    )
    .await;
    assert_eq!(
        far.get("/wp-admin/", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(admin.seen().len(), 1);
}

#[tokio::test]
async fn xmlrpc_and_php_in_uploads_never_run() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    std::fs::write(edge.root.path().join("xmlrpc.php"), "<?php").unwrap();
    std::fs::create_dir_all(edge.root.path().join("wp-content/uploads")).unwrap();
    std::fs::write(
        edge.root.path().join("wp-content/uploads/evil.php"),
        "<?php",
    )
    .unwrap();
    for target in [
        "/xmlrpc.php",
        "/xmlrpc.php/x",
        "/wp-content/uploads/evil.php",
        "/wp-content/uploads/evil.php/x.jpg",
    ] {
        assert_eq!(
            edge.get(target, &[]).await.status,
            StatusCode::FORBIDDEN,
            "{target}"
        );
    }
    assert!(php.seen().is_empty());
}

#[tokio::test]
async fn a_php_pool_that_is_full_or_slow_is_a_503_or_a_504() {
    let php = Responder::start(|_| {
        Reply::page("slow", &["Cache-Control: no-store"]).after(Duration::from_secs(3))
    })
    .await;
    let edge = Arc::new(
        TestEdge::start(
            php.addr,
            "",
            "php_timeout = \"1s\"\nphp_max_conns = 1\nphp_queue = 0\nphp_queue_timeout = \"1s\"",
        )
        .await,
    );
    let first = {
        let edge = edge.clone();
        tokio::spawn(async move { edge.get("/a/", &[]).await })
    };
    // The one connection is busy: the next request has nowhere to wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let full = edge.get("/b/", &[]).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(full.header("retry-after").is_some());
    assert_eq!(first.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
}

fn decoded(a: &support::edge::Answer) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match a.header("content-encoding") {
        Some("br") => {
            brotli::Decompressor::new(&a.body[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(&a.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        None => out.extend_from_slice(&a.body),
        Some(other) => panic!("unexpected encoding {other}"),
    }
    out
}

#[tokio::test]
async fn uncached_php_answers_are_compressed_as_they_stream_when_asked() {
    let page = "<li>a row of an admin table</li>".repeat(400);
    let php = {
        let page = page.clone();
        Responder::start(move |seen| match seen.param("REQUEST_URI") {
            Some("/wp-json/wp/v2/posts") => Reply::status(
                "200 OK",
                &format!("[{page:?}]"),
                &["Content-Type: application/json"],
            ),
            Some("/photo/") => Reply::status("200 OK", &page, &["Content-Type: image/png"]),
            Some("/tiny/") => Reply::page("small", &["Cache-Control: no-store"]),
            Some("/keep/") => Reply::page(&page, &["Cache-Control: no-store, no-transform"]),
            Some("/done/") => Reply::page(
                &page,
                &["Cache-Control: no-store", "Content-Encoding: gzip"],
            ),
            Some("/streamed/") => Reply::page(&page, &["Cache-Control: no-store"])
                .streamed(Duration::from_millis(100)),
            _ => Reply::page(&page, &["Cache-Control: no-store", "ETag: \"v1\""]),
        })
        .await
    };
    let edge = TestEdge::start(php.addr, "", "").await;
    for (accept, want) in [
        ("br, gzip", Some("br")),
        ("gzip", Some("gzip")),
        ("identity", None),
    ] {
        let a = edge
            .get("/wp-admin/x/", &[("accept-encoding", accept)])
            .await;
        assert_eq!(a.header("content-encoding"), want, "{accept}");
        assert_eq!(a.header("vary"), Some("Accept-Encoding"), "{accept}");
        assert_eq!(decoded(&a), page.as_bytes(), "{accept}");
        if want.is_some() {
            assert!(a.body.len() < page.len() / 5);
            assert_eq!(
                a.header("etag"),
                Some("W/\"v1\""),
                "an encoded body is another body"
            );
            if let Some(n) = a.header("content-length") {
                assert_eq!(
                    n.parse::<usize>().unwrap(),
                    a.body.len(),
                    "the encoded length"
                );
            }
        }
    }
    // A page PHP streams is compressed piece by piece.
    let streamed = edge.get("/streamed/", &[("accept-encoding", "br")]).await;
    assert_eq!(streamed.header("content-encoding"), Some("br"));
    assert_eq!(streamed.header("content-length"), None);
    assert_eq!(decoded(&streamed), page.as_bytes());
    let rest = edge
        .get("/wp-json/wp/v2/posts", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(rest.header("content-encoding"), Some("gzip"));
    for target in ["/photo/", "/tiny/", "/keep/"] {
        let a = edge.get(target, &[("accept-encoding", "br")]).await;
        assert_eq!(a.header("content-encoding"), None, "{target}");
    }
    // Already encoded by PHP: left as it is.
    let done = edge.get("/done/", &[("accept-encoding", "br")]).await;
    assert_eq!(done.header("content-encoding"), Some("gzip"));
}

#[tokio::test]
async fn text_files_get_compressed_forms_once_and_versioned_urls_are_immutable() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    let script = "function wp(){ return 'a long enough script'; }\n".repeat(200);
    std::fs::write(edge.root.path().join("app.js"), &script).unwrap();
    std::fs::write(edge.root.path().join("logo.woff2"), vec![7u8; 4096]).unwrap();
    let br = [("accept-encoding", "gzip, deflate, br")];
    // The first answers may be compressed on the fly; the form made once
    // has its own strong validator.
    let mut a = edge.get("/app.js", &br).await;
    for _ in 0..100 {
        if a.header("etag").is_some_and(|e| e.ends_with("-br\"")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        a = edge.get("/app.js", &br).await;
    }
    let etag = a.header("etag").unwrap().to_string();
    assert!(etag.ends_with("-br\""), "{etag}");
    assert_eq!(a.header("content-encoding"), Some("br"));
    assert_eq!(decoded(&a), script.as_bytes());
    assert_eq!(a.header("vary"), Some("Accept-Encoding"));
    let gz = edge.get("/app.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(decoded(&gz), script.as_bytes());
    let again = edge
        .get(
            "/app.js",
            &[("accept-encoding", "br"), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    // A range is of the file itself.
    let range = edge
        .get(
            "/app.js",
            &[("accept-encoding", "br"), ("range", "bytes=0-8")],
        )
        .await;
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.header("content-encoding"), None);
    assert_eq!(range.text(), "function ");
    // Fonts compressed already are sent as they are.
    let font = edge.get("/logo.woff2", &br).await;
    assert_eq!(font.header("content-encoding"), None);
    assert_eq!(font.body.len(), 4096);
    assert_eq!(
        edge.get("/app.js?ver=6.1.1", &[])
            .await
            .header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        edge.get("/app.js", &[]).await.header("cache-control"),
        Some("public, max-age=604800")
    );
}

#[tokio::test]
async fn a_head_miss_fills_the_page_for_the_gets_that_follow() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    let head = edge.send(Method::HEAD, "/page/", &[], Bytes::new()).await;
    assert_eq!(head.header("x-cache"), Some("MISS"));
    let get = edge.get("/page/", &[]).await;
    assert_eq!(get.header("x-cache"), Some("HIT"));
    assert!(get.text().starts_with("uri=/page/"), "{}", get.text());
    // The fill asked PHP for a GET.
    assert_eq!(php.seen()[0].param("REQUEST_METHOD"), Some("GET"));
}

#[tokio::test]
async fn a_render_that_a_purge_overtakes_is_served_once_and_not_kept() {
    let renders = Arc::new(AtomicUsize::new(0));
    let php = {
        let renders = renders.clone();
        Responder::start(move |_| {
            let n = renders.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::page(&format!("render {n}"), &["X-Murakumo-Tags: p:1"])
                .after(Duration::from_millis(400))
        })
        .await
    };
    let edge = Arc::new(TestEdge::start(php.addr, "", "").await);
    let first = {
        let edge = edge.clone();
        tokio::spawn(async move { edge.get("/post/", &[]).await })
    };
    while renders.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The post is edited while PHP renders its old version.
    let purge = edge.ops(Method::POST, "/purge?tag=p:1&reason=edited").await;
    assert_eq!(purge.status, StatusCode::OK);
    let first = first.await.unwrap();
    assert_eq!(first.text(), "render 1");
    let next = edge.get("/post/", &[]).await;
    assert_eq!(
        next.header("x-cache"),
        Some("MISS"),
        "the overtaken render was not kept"
    );
    assert_eq!(next.text(), "render 2");
    assert_eq!(edge.get("/post/", &[]).await.header("x-cache"), Some("HIT"));
}

#[tokio::test]
async fn metrics_pass_promtool() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "login_limit = \"1/min\"").await;
    std::fs::write(edge.root.path().join("wp-login.php"), "<?php").unwrap();
    // Some of every kind of sample: hits, misses, refusals, a purge, a 429.
    for target in ["/", "/", "/a/", "/wp-config.php", "/style.css"] {
        edge.get(target, &[]).await;
    }
    for _ in 0..2 {
        edge.send(Method::POST, "/wp-login.php", &[], Bytes::from_static(b"x"))
            .await;
    }
    edge.ops(Method::POST, "/purge?tag=p:1").await;
    let metrics = edge.ops(Method::GET, "/metrics").await.text();
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/install-deps --test installs it)");
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{metrics}"
    );
    assert!(
        metrics.contains("murakumo_rate_limited_total{site=\"site\",limit=\"login\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_symlink_in_the_uploads_cannot_name_a_file_outside_them() {
    let php = echo_php().await;
    let edge = TestEdge::start(php.addr, "", "").await;
    let uploads = edge.root.path().join("wp-content/uploads/2026/12");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("photo.txt"), "an upload").unwrap();
    let secret = edge.root.path().join("../secret-outside");
    std::fs::write(&secret, "db-password").unwrap();
    std::os::unix::fs::symlink(&secret, uploads.join("pw.txt")).unwrap();
    std::os::unix::fs::symlink(uploads.join("photo.txt"), uploads.join("alias.txt")).unwrap();
    assert_eq!(
        edge.get("/wp-content/uploads/2026/12/photo.txt", &[])
            .await
            .text(),
        "an upload"
    );
    // A link inside the uploads is followed; one out of them is not.
    assert_eq!(
        edge.get("/wp-content/uploads/2026/12/alias.txt", &[])
            .await
            .text(),
        "an upload"
    );
    let out = edge.get("/wp-content/uploads/2026/12/pw.txt", &[]).await;
    assert_eq!(out.status, StatusCode::NOT_FOUND);
    assert!(!out.text().contains("db-password"));
    let _ = std::fs::remove_file(secret);
}

#[tokio::test]
async fn cached_pages_keep_no_transform_and_their_encoded_forms_have_weak_etags() {
    let body = "<p>the same bytes, every time</p>".repeat(100);
    let php = {
        let body = body.clone();
        Responder::start(move |seen| match seen.param("REQUEST_URI") {
            Some("/raw/") => Reply::page(&body, &["Cache-Control: no-transform"]),
            _ => Reply::page(&body, &["ETag: \"strong1\""]),
        })
        .await
    };
    let edge = TestEdge::start(php.addr, "", "").await;
    let br = [("accept-encoding", "br")];
    for _ in 0..2 {
        let raw = edge.get("/raw/", &br).await;
        assert_eq!(
            raw.header("content-encoding"),
            None,
            "{:?}",
            raw.header("x-cache")
        );
        assert_eq!(raw.text(), body);
    }
    edge.get("/tagged/", &[]).await;
    let encoded = edge.get("/tagged/", &br).await;
    assert_eq!(encoded.header("x-cache"), Some("HIT"));
    assert_eq!(encoded.header("content-encoding"), Some("br"));
    assert_eq!(encoded.header("etag"), Some("W/\"strong1\""));
    let identity = edge.get("/tagged/", &[]).await;
    assert_eq!(identity.header("etag"), Some("\"strong1\""));
    // A HEAD is told what a GET would be.
    let head = support::edge::raw(
        edge.http,
        b"HEAD /x/ HTTP/1.1\r\nHost: wp.test\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .await;
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.contains("vary: accept-encoding"), "{head}");
}

/// A 404 WordPress rendered for a URL before a file was put there (stored
/// for `not_found_ttl`) never hides the file, whatever its size (a large
/// one is read from the disk as it is sent) and whatever its kind: an
/// asset's path asks the disk before the page cache, any other path asks
/// it before a stored 404 answers.
#[tokio::test]
async fn a_cached_404_never_hides_a_file_put_at_its_url() {
    let php = Responder::start(|_| Reply::status("404 Not Found", "no such page", &[])).await;
    let edge = TestEdge::start(php.addr, "", "").await;
    // Assets (by their extension) and any other file: an `ads.txt`, an
    // upload of a kind WordPress does not know.
    let names = ["big.css", "small.css", "big.bin", "small.txt"];
    for name in names {
        let path = format!("/{name}");
        let missing = edge.get(&path, &[]).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(
            edge.get(&path, &[]).await.header("x-cache"),
            Some("HIT"),
            "the 404 is stored"
        );
    }
    // 2 MiB: over what the file cache keeps in memory (512 KiB).
    let big = "a{}\n".repeat(512 << 10);
    for name in names {
        let body = if name.starts_with("big") {
            &big
        } else {
            "b{}\n"
        };
        std::fs::write(edge.root.path().join(name), body).unwrap();
        let got = edge.get(&format!("/{name}"), &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{name}");
        assert_eq!(got.body.len(), body.len(), "{name}");
        assert_eq!(got.header("x-cache"), None, "{name}");
    }
    // A stored 404 still answers where there is no file.
    let missing = edge.get("/gone.txt", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let again = edge.get("/gone.txt", &[]).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    edge.stop().await.unwrap();
}
