//! Our object-cache drop-in (`wordpress/object-cache.php`) under Debian's
//! real WordPress, on a real redis-server: persistent hits from the second
//! view on, WordPress's object-cache API (groups, multi functions,
//! non-persistent and global groups, incr/decr), sites isolated by prefix,
//! Site Health satisfied, page cache and object cache agreeing on an edit,
//! and Redis going away never breaking a page.

mod support;

use std::time::Duration;

use support::*;

fn site(redis: &Redis) -> WordPress {
    let constants = format!(
        "define('MURAKUMO_REDIS', 'tcp://127.0.0.1:{}');\ndefine('MURAKUMO_REDIS_PASSWORD_FILE', '{}');\nif (!defined('MURAKUMO_CACHE_PREFIX')) {{ define('MURAKUMO_CACHE_PREFIX', 'site-a'); }}\n",
        redis.port,
        redis.password_file.display()
    );
    WordPress::start_with(WpOptions {
        wp_config_extra: &constants,
        object_cache: true,
        ..WpOptions::default()
    })
}

/// Counters of one WordPress run after `code`: JSON of the drop-in's own.
const COUNTERS: &str = "global $wp_object_cache; echo json_encode(['hits' => $wp_object_cache->cache_hits, 'misses' => $wp_object_cache->cache_misses, 'redis_hits' => $wp_object_cache->redis_hits, 'connected' => $wp_object_cache->is_connected()]);";

fn counters(wp: &WordPress, code: &str) -> serde_json::Value {
    let out = wp.php(&format!("{code}\n{COUNTERS}"));
    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{out}: {e}"))
}

#[test]
fn the_object_cache_persists_in_redis_and_keeps_wordpress_api() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let wp = site(&redis);

    // A page view's worth of reads: the second run gets them from Redis.
    let view = "get_option('blogname'); $q = new WP_Query(['posts_per_page' => 5]); foreach ($q->posts as $p) { get_post_meta($p->ID); get_the_terms($p, 'category'); }";
    let _first = counters(&wp, view);
    let second = counters(&wp, view);
    assert_eq!(second["connected"], true, "{second}");
    assert!(
        second["redis_hits"].as_u64().unwrap() >= 5,
        "second view: {second}"
    );

    // Site Health's test: a persistent object cache is used.
    let health = wp.php("require_once ABSPATH . 'wp-admin/includes/class-wp-site-health.php'; $h = new WP_Site_Health(); echo $h->get_test_persistent_object_cache()['label'];");
    assert_eq!(health.trim(), "A persistent object cache is being used");

    // The API, checked in one process and read back in another.
    let api = wp.php(
        r#"
        $r = [];
        $r[] = wp_cache_set('k', ['a' => 1], 'test');
        $r[] = wp_cache_add('k', 'other', 'test');          // exists: false
        $r[] = wp_cache_add('new', 'v', 'test');
        $r[] = wp_cache_replace('missing', 'v', 'test');    // absent: false
        $r[] = wp_cache_replace('new', 'v2', 'test');
        wp_cache_set('n', 5, 'test');
        $r[] = wp_cache_incr('n', 3, 'test');               // 8
        $r[] = wp_cache_decr('n', 10, 'test');              // never below 0
        $r[] = wp_cache_incr('nothing', 1, 'test');         // false
        $r[] = wp_cache_set_multiple(['m1' => 1, 'm2' => 2], 'test');
        wp_cache_add_non_persistent_groups(['local-only']);
        wp_cache_set('here', 'only', 'local-only');
        wp_cache_add_global_groups(['shared-group']);
        wp_cache_set('g', 'global', 'shared-group');
        $o = new stdClass; $o->v = 1; wp_cache_set('obj', $o, 'test'); $o->v = 2;
        $r[] = wp_cache_get('obj', 'test')->v;               // a copy: 1
        echo json_encode($r);
    "#,
    );
    assert_eq!(
        api.trim(),
        r#"[true,false,true,false,true,8,0,false,{"m1":true,"m2":true},1]"#
    );
    let back = wp.php(
        r#"
        $found = null;
        $r = [wp_cache_get('k', 'test'), wp_cache_get('new', 'test'), wp_cache_get('n', 'test')];
        $r[] = wp_cache_get_multiple(['m1', 'm2', 'm3'], 'test');
        $r[] = wp_cache_get('here', 'local-only', false, $found);
        $r[] = $found;
        // Global groups are declared by every request (as plugins do).
        wp_cache_add_global_groups(['shared-group']);
        $r[] = wp_cache_get('g', 'shared-group');
        $r[] = wp_cache_delete_multiple(['m1', 'm3'], 'test');
        $r[] = wp_cache_get('m1', 'test', true);
        $r[] = wp_cache_flush_group('test');
        echo json_encode($r);
    "#,
    );
    assert_eq!(
        back.trim(),
        r#"[{"a":1},"v2",0,{"m1":1,"m2":2,"m3":false},false,false,"global",{"m1":true,"m3":false},false,true]"#
    );
    assert_eq!(
        wp.php("var_dump(wp_cache_get('m2', 'test'));").trim(),
        "bool(false)"
    );

    // Two sites on one Redis (two prefixes): neither sees the other's keys,
    // and one's flush leaves the other's.
    let as_b = "define('MURAKUMO_CACHE_PREFIX', 'site-b');";
    wp.php("wp_cache_set('who', 'site a', 'test');");
    wp.php_with(as_b, "wp_cache_set('who', 'site b', 'test');");
    assert_eq!(wp.php("echo wp_cache_get('who', 'test');"), "site a");
    assert_eq!(
        wp.php_with(as_b, "echo wp_cache_get('who', 'test');"),
        "site b"
    );
    wp.php("wp_cache_flush();");
    assert_eq!(
        wp.php("var_dump(wp_cache_get('who', 'test'));").trim(),
        "bool(false)"
    );
    assert_eq!(
        wp.php_with(as_b, "echo wp_cache_get('who', 'test');"),
        "site b"
    );
    let keys = redis.cli(&["--scan", "--pattern", "site-b:*"]);
    assert!(keys.lines().all(|k| k.starts_with("site-b:")), "{keys}");
}

#[test]
fn an_edit_is_seen_at_once_through_both_caches() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let wp = site(&redis);
    let post = wp.post_path();
    assert_eq!(wp.get(&post, &[]).cache(), "MISS");
    let cached = wp.get(&post, &[]);
    assert_eq!(cached.cache(), "HIT");
    assert!(cached.text().contains(SEEDED_TITLE));
    // The post's object is in Redis now; the edit must purge the page and
    // WordPress must drop its cached post, or the new render is the old one.
    let id = wp.php(&format!("echo url_to_postid('{}');", post));
    // The editor's REST call, through the edge and php-fpm.
    let updated = wp.rest(
        &format!("/wp-json/wp/v2/posts/{}", id.trim()),
        r#"{"title":"Edited through both caches"}"#,
    );
    assert_eq!(updated.status, 200, "{}", updated.text());
    wait_until("the page is purged", Duration::from_secs(10), || {
        wp.get(&post, &[]).cache() != "HIT"
    });
    let after = wp.get(&post, &[]);
    assert!(
        after.text().contains("Edited through both caches"),
        "{}",
        after.text()
    );
}

#[test]
fn redis_going_away_never_breaks_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path());
    let wp = site(&redis);
    redis.kill();
    let c = counters(&wp, "get_option('blogname');");
    assert_eq!(c["connected"], false);
    // Without Redis, WordPress is told there is no persistent cache
    // (transients go to the database, Site Health says so).
    assert_eq!(
        wp.php("var_dump(wp_using_ext_object_cache());").trim(),
        "bool(false)"
    );
    // Uncached views (a search) render through PHP without Redis.
    let page = wp.get("/?s=murakumo", &[]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("</html>"));
}

#[test]
fn an_edit_made_while_redis_hangs_is_not_undone_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let wp = site(&redis);
    let id = wp.php(&format!("echo url_to_postid('{}');", wp.post_path()));
    let id = id.trim();
    let title = |wp: &WordPress| {
        let r = wp.get(&format!("/wp-json/wp/v2/posts/{id}"), &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["title"]["rendered"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        title(&wp),
        SEEDED_TITLE,
        "the post is in the object cache now"
    );
    // Redis hangs while the author saves: the edit reaches the database
    // only, and Redis still holds the old post when it goes on.
    redis.signal("STOP");
    let saved = wp.rest(
        &format!("/wp-json/wp/v2/posts/{id}"),
        r#"{"title":"Saved while Redis hung"}"#,
    );
    redis.signal("CONT");
    assert_eq!(saved.status, 200, "{}", saved.text());
    assert_eq!(
        title(&wp),
        "Saved while Redis hung",
        "the old post came back from Redis"
    );
    let page = wp.get(&wp.post_path(), &[]);
    assert!(page.text().contains("Saved while Redis hung"));
}
