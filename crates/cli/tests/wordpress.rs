//! End to end: Debian's WordPress on real MariaDB and php-fpm, behind the
//! murakumo binary.

mod support;

use std::time::Duration;

use support::{WordPress, SEEDED_TITLE};

#[test]
fn home_and_post_are_cached_and_bypassed_for_logged_in_users() {
    let wp = WordPress::start("", "");
    let first = wp.get("/", &[]);
    assert_eq!(
        first.status,
        200,
        "{}\n{}",
        first.text(),
        wp.edge.log_text()
    );
    assert_eq!(first.cache(), "MISS");
    assert!(
        first.text().contains(SEEDED_TITLE),
        "home page lacks the seeded post"
    );
    let second = wp.get("/", &[]);
    assert_eq!((second.status, second.cache()), (200, "HIT"));
    assert_eq!(second.body, first.body, "a hit must serve the stored page");

    // Browsers revalidate with the entry's ETag and get 304, no body.
    let etag = second
        .header("etag")
        .expect("cached pages carry an ETag")
        .to_string();
    let revalidated = wp.get("/", &["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!(
        (
            revalidated.status,
            revalidated.cache(),
            revalidated.body.len()
        ),
        (304, "HIT", 0)
    );
    assert_eq!(
        wp.get("/", &["-H", "If-None-Match: W/\"other\""]).status,
        200
    );

    // Tracking parameters share the entry; other queries bypass.
    assert_eq!(
        wp.get("/?utm_source=newsletter&fbclid=x", &[]).cache(),
        "HIT"
    );
    assert_eq!(wp.get("/?s=hello", &[]).cache(), "BYPASS");

    let post = wp.post_path();
    let p1 = wp.get(&post, &[]);
    assert_eq!((p1.status, p1.cache()), (200, "MISS"), "{post}");
    assert!(p1.text().contains(SEEDED_TITLE));
    assert_eq!(wp.get(&post, &[]).cache(), "HIT");

    // A logged-in visitor gets PHP, never the cached page.
    let logged_in = wp.get("/", &["-H", "Cookie: wordpress_logged_in_abc=admin%7C123"]);
    assert_eq!(logged_in.cache(), "BYPASS");
    // The login-form test cookie alone does not bypass.
    assert_eq!(
        wp.get(
            "/",
            &["-H", "Cookie: wordpress_test_cookie=WP%20Cookie%20check"]
        )
        .cache(),
        "HIT"
    );

    // POST is never cached and never served from the cache.
    let post_req = wp.get("/", &["-X", "POST", "--data", "x=1"]);
    assert_eq!(post_req.cache(), "BYPASS");
    assert_eq!(
        wp.get("/", &["-X", "POST", "--data", "x=1"]).cache(),
        "BYPASS"
    );

    // WordPress pages are compressed once and served in the accepted encoding.
    let br = wp.get("/", &["-H", "Accept-Encoding: gzip, deflate, br"]);
    assert_eq!(
        (br.cache(), br.header("content-encoding")),
        ("HIT", Some("br"))
    );
    assert!(br.header("vary").unwrap_or("").contains("Accept-Encoding"));
    assert!(
        br.body.len() * 3 < first.body.len(),
        "br body {} vs {}",
        br.body.len(),
        first.body.len()
    );
    let gz = wp.get("/", &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let decoded = wp.get("/", &["--compressed"]);
    assert_eq!(
        decoded.body, first.body,
        "decoded br must equal the identity page"
    );
    let plain = wp.get("/", &["-H", "Accept-Encoding: identity"]);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, first.body);
}

#[test]
fn publishing_a_post_purges_the_home_page() {
    let wp = WordPress::start("", "");
    assert_eq!(wp.get("/", &[]).cache(), "MISS");
    assert_eq!(wp.get("/", &[]).cache(), "HIT");

    // Publish through the edge with the REST API and an application password.
    let created = wp.rest(
        "/wp-json/wp/v2/posts",
        r#"{"title":"Fresh off the press","content":"new","status":"publish"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.cache(), "BYPASS");

    // The must-use plugin purged the home page: the next anonymous request
    // goes to PHP and shows the new post.
    let after = wp.get("/", &[]);
    assert_eq!(
        after.cache(),
        "MISS",
        "home page was not purged; edge log:\n{}",
        wp.edge.log_text()
    );
    assert!(after.text().contains("Fresh off the press"));
    assert_eq!(wp.get("/", &[]).cache(), "HIT");

    // A site-wide change (the site title) purges every page, posts included.
    let post = wp.post_path();
    wp.get(&post, &[]);
    assert_eq!(wp.get(&post, &[]).cache(), "HIT");
    let renamed = wp.rest(
        "/wp-json/wp/v2/settings",
        r#"{"title":"Renamed by the test"}"#,
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    let page = wp.get(&post, &[]);
    assert_eq!(
        page.cache(),
        "MISS",
        "post page was not purged by the title change"
    );
    assert!(page.text().contains("Renamed by the test"));
}

#[test]
fn readiness_follows_the_database_and_cached_pages_survive_it() {
    let mut wp = WordPress::start("", "");
    let ready = support::curl(&wp.edge.ops("/readyz"), &[]);
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(wp.get("/", &[]).cache(), "MISS");

    wp.db.stop();
    let ready = support::curl(&wp.edge.ops("/readyz"), &[]);
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("db"), "{}", ready.text());
    assert_eq!(support::curl(&wp.edge.ops("/healthz"), &[]).status, 200);
    let cached = wp.get("/", &[]);
    assert_eq!((cached.status, cached.cache()), (200, "HIT"));
}

#[test]
fn stale_pages_are_served_while_php_is_down() {
    let mut wp = WordPress::start("", "ttl = \"1s\"\nstale = \"1h\"");
    let fresh = wp.get("/", &[]);
    assert_eq!(fresh.cache(), "MISS");
    wp.fpm.stop();
    std::thread::sleep(Duration::from_millis(1500));
    let stale = wp.get("/", &[]);
    assert_eq!((stale.status, stale.cache()), (200, "STALE"));
    assert_eq!(stale.body, fresh.body);
    // An uncached page has nothing to fall back on: a quick 502.
    let missing = wp.get(&wp.post_path(), &[]);
    assert_eq!(missing.status, 502);
    // php-fpm comes back: the stale entry is refreshed in the background.
    wp.fpm.boot();
    support::wait_until(
        "a fresh page after php-fpm returns",
        Duration::from_secs(10),
        || wp.get("/", &[]).cache() == "HIT",
    );
}

#[test]
fn admin_is_refused_outside_the_allowlist_and_login_works_inside() {
    let outside = WordPress::start("admin_allow = [\"10.0.0.0/8\"]", "");
    assert_eq!(outside.get("/wp-login.php", &[]).status, 403);
    assert_eq!(outside.get("/wp-admin/", &[]).status, 403);
    assert_eq!(
        outside.get("/wp-admin/options-general.php", &[]).status,
        403
    );
    // admin-ajax.php serves anonymous front-end requests and stays open.
    assert_eq!(
        outside.get("/wp-admin/admin-ajax.php", &[]).status,
        400,
        "WordPress answers 400 to an ajax call without action"
    );
    drop(outside);

    let inside = WordPress::start("admin_allow = [\"127.0.0.1/32\"]", "");
    let form = inside.get("/wp-login.php", &[]);
    assert_eq!((form.status, form.cache()), (200, "BYPASS"));
    assert!(form.text().contains("user_login"));
    let data = format!(
        "log=admin&pwd={}&testcookie=1&wp-submit=Log+In",
        inside.admin_password
    );
    let login = inside.get(
        "/wp-login.php",
        &[
            "-H",
            "Cookie: wordpress_test_cookie=WP%20Cookie%20check",
            "--data",
            &data,
        ],
    );
    assert_eq!(login.status, 302, "{}", login.text());
    assert!(
        login
            .header("set-cookie")
            .unwrap_or("")
            .contains("wordpress_logged_in_"),
        "{:?}",
        login.headers
    );
}

/// `wp_cron`: the edge runs WordPress's due tasks on its clock, without a
/// single page view (cached pages never reach PHP to trigger them).
#[test]
fn the_edge_runs_due_wordpress_tasks_on_its_clock() {
    let wp = WordPress::start("wp_cron = \"10s\"\n", "");
    // Due a minute ago, for a hook nothing listens to: running it only
    // takes it off WordPress's schedule.
    let scheduled = wp.php(
        "var_export(wp_schedule_single_event(time() - 60, 'murakumo_test_event'));
         echo ' ', wp_next_scheduled('murakumo_test_event') ? 'due' : 'none';",
    );
    assert_eq!(scheduled.trim(), "true due", "scheduling: {scheduled}");
    let mut runs = String::new();
    support::wait_until(
        "the edge to run wp-cron.php",
        Duration::from_secs(45),
        || {
            let metrics = support::curl(&wp.edge.ops("/metrics"), &[]).text();
            runs = metrics
                .lines()
                .filter(|l| l.starts_with("murakumo_wp_cron_runs_total"))
                .collect::<Vec<_>>()
                .join("\n");
            runs.contains("outcome=\"ok\"")
        },
    );
    assert!(!runs.contains("outcome=\"failed\""), "a run failed: {runs}");
    // WordPress answers first and runs the tasks after.
    support::wait_until("the due task to run", Duration::from_secs(15), || {
        wp.php("echo wp_next_scheduled('murakumo_test_event') ? 'due' : 'none';")
            .trim()
            == "none"
    });
    assert!(
        wp.edge
            .log_text()
            .lines()
            .all(|l| !l.contains("wp-cron.php could not")),
        "{}",
        wp.edge.log_text()
    );
}
