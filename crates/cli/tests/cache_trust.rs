//! A page cache you can trust, tried as an attacker would: real WordPress
//! on real php-fpm and MariaDB behind the murakumo binary over HTTPS, a test
//! mu-plugin that reflects everything a visitor sends into the page, and the
//! poisoning corpus (`tests/corpus/poisoning.txt`) sent over HTTP/1.1 and h2
//! after a purge and during a stale refresh. A clean visitor must always get
//! the canonical page.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{curl, wait_until, Resp, WordPress, WpOptions, SEEDED_TITLE};

/// The marker every attack carries where it can.
const MARKER: &str = "ATTACK";

/// An HTTPS WordPress whose pages stay fresh for 1 s (then stale for an
/// hour), with the reflecting mu-plugin installed.
fn site() -> WordPress {
    let wp = WordPress::start_with(WpOptions {
        server_extra: "tls_listen = [\"127.0.0.1:{tls_port}\"]",
        site_extra: "tls = { self_signed = true }",
        cache: "ttl = \"1s\"\nstale = \"1h\"",
        https: true,
        ..WpOptions::default()
    });
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reflect.php"),
        wp.root.join("wp-content/mu-plugins/reflect.php"),
    )
    .unwrap();
    wp
}

/// One corpus line made concrete for page `page`: target and headers.
struct Attack {
    line: String,
    target: String,
    headers: Vec<String>,
}

fn corpus(page: &str, host: &str, port: u16) -> Vec<Attack> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/poisoning.txt"),
    )
    .unwrap();
    // The first letter of the page's slug, percent-encoded.
    let encoded = match page.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, c)) => format!("{}%{:02x}{}", &page[..i], c as u32, &page[i + 1..]),
        None => page.to_string(),
    };
    let fill = |s: &str| {
        s.replace("{P%}", &encoded)
            .replace("{P-}", page.trim_end_matches('/'))
            .replace("{P}", page)
            .replace("{host}", host)
            .replace("{port}", &port.to_string())
    };
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split(" | ");
            let target = fill(parts.next().unwrap_or("/"));
            Attack {
                line: l.to_string(),
                target,
                headers: parts.map(fill).collect(),
            }
        })
        .collect()
}

/// GET `target` over TLS as sent (no path clean-up by curl), with `Host:`
/// the site's unless the attack names another.
fn send(wp: &WordPress, target: &str, headers: &[String], h2: bool) -> Resp {
    let url = format!("https://127.0.0.1:{}{target}", wp.tls_port);
    let host = format!("Host: {}", wp.host);
    let mut args = vec![
        "-k",
        "--path-as-is",
        if h2 { "--http2" } else { "--http1.1" },
    ];
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        args.extend(["-H", host.as_str()]);
    }
    for h in headers {
        args.extend(["-H", h.as_str()]);
    }
    curl(&url, &args)
}

fn purge_all(wp: &WordPress) {
    let r = curl(&wp.edge.ops("/purge?all=1"), &["-X", "POST"]);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// What a clean visitor of `page` must get: the page itself, rendered for
/// its own canonical request, with nothing of any attack in it.
fn assert_canonical(wp: &WordPress, page: &str, title: &str, after: &str) {
    let r = send(wp, page, &[], false);
    let text = r.text();
    let context = format!(
        "after {after}: {} {:?} {:?}\n{}",
        r.status,
        r.cache(),
        r.header("location"),
        text.get(text.len().saturating_sub(1500)..).unwrap_or("")
    );
    assert_eq!(r.status, 200, "{context}");
    assert!(text.contains(title), "{context}");
    let reflected_uri = format!("&quot;uri&quot;:&quot;{page}&quot;");
    assert!(text.contains(&reflected_uri), "{context}");
    assert!(!text.contains(MARKER), "{context}");
    assert!(r.headers.values().all(|v| !v.contains(MARKER)), "{context}");
}

#[test]
fn no_request_variant_poisons_the_canonical_page() {
    let wp = site();
    let port = wp.tls_port;
    let post = wp.post_path();
    let pages = [("/", SEEDED_TITLE), (post.as_str(), SEEDED_TITLE)];
    let host = wp.host.clone();

    // Warm-up: the page renders, and is cached.
    assert_canonical(&wp, "/", SEEDED_TITLE, "nothing");
    let attacks = corpus(&post, &host, port);
    assert!(attacks.len() > 30, "the corpus lost its lines");

    for (page, title) in pages {
        for attack in corpus(page, &host, port) {
            for h2 in [false, true] {
                let what = format!(
                    "{} ({}) for {page}",
                    attack.line,
                    if h2 { "h2" } else { "http/1.1" }
                );
                // After a purge: the attack is the first request.
                purge_all(&wp);
                let _ = send(&wp, &attack.target, &attack.headers, h2);
                assert_canonical(&wp, page, title, &format!("{what} after a purge"));
            }
        }
    }

    // While stale: the attack is the first request after the TTL, so it
    // starts the background refresh of the page's entry. One page per
    // attack and protocol, all made stale at once.
    let slugs: Vec<String> = (0..attacks.len() * 2)
        .map(|i| format!("stale-{i}"))
        .collect();
    wp.php(&format!(
        "foreach (json_decode('{}') as $slug) {{ wp_insert_post(['post_title' => $slug, 'post_name' => $slug, 'post_content' => 'x', 'post_status' => 'publish']); }}",
        serde_json::to_string(&slugs).unwrap()
    ));
    purge_all(&wp);
    for slug in &slugs {
        assert_canonical(&wp, &format!("/{slug}/"), slug, "creating it");
    }
    std::thread::sleep(Duration::from_millis(1100));
    let mut refreshed = 0;
    for (i, attack) in attacks.iter().enumerate() {
        for h2 in [false, true] {
            let slug = &slugs[i * 2 + usize::from(h2)];
            let page = format!("/{slug}/");
            let what = format!(
                "{} ({}) while {page} was stale",
                attack.line,
                if h2 { "h2" } else { "http/1.1" }
            );
            let attack = corpus(&page, &host, port).swap_remove(i);
            let fills = renders(&wp, &page);
            let r = send(&wp, &attack.target, &attack.headers, h2);
            if r.cache() == "STALE" {
                refreshed += 1;
                // Its refresh reaches PHP; wait for it to be stored.
                wait_until(
                    &format!("the refresh after {what}"),
                    Duration::from_secs(10),
                    || renders(&wp, &page) > fills,
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            assert_canonical(&wp, &page, slug, &what);
        }
    }
    assert!(
        refreshed > attacks.len(),
        "only {refreshed} attacks started a refresh"
    );
}

#[test]
fn bypass_cookies_count_as_php_names_them() {
    let wp = site();
    // A password-protected post and the cookie WordPress gives a visitor who
    // typed its password (`wp-postpass_COOKIEHASH`: the phpass hash).
    let out = wp.php(
        r#"$id = wp_insert_post(['post_title' => 'Members only', 'post_content' => 'THE-SECRET-CONTENT', 'post_status' => 'publish', 'post_password' => 'letmein']);
require_once ABSPATH . WPINC . '/class-phpass.php';
$hasher = new PasswordHash(8, true);
echo json_encode(['path' => wp_parse_url(get_permalink($id), PHP_URL_PATH), 'hash' => COOKIEHASH, 'value' => $hasher->HashPassword('letmein')]);"#,
    );
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("")).unwrap();
    let (path, hash, value) = (
        v["path"].as_str().unwrap().to_string(),
        v["hash"].as_str().unwrap(),
        urlencode(v["value"].as_str().unwrap()),
    );
    // The real cookie unlocks the post for its holder only.
    let unlocked = send(
        &wp,
        &path,
        &[format!("Cookie: wp-postpass_{hash}={value}")],
        false,
    );
    assert!(
        unlocked.text().contains("THE-SECRET-CONTENT"),
        "{}",
        unlocked.text()
    );
    assert_eq!(unlocked.cache(), "BYPASS");
    // The same cookie spelt as PHP folds it into the same name.
    for spelt in [
        format!("wp-postpass.{hash}"),
        format!("wp-postpass {hash}"),
        format!("wp-postpass[{hash}"),
    ] {
        purge_all(&wp);
        let r = send(&wp, &path, &[format!("Cookie: {spelt}={value}")], false);
        assert_eq!(r.cache(), "BYPASS", "{spelt}");
        let anonymous = send(&wp, &path, &[], false);
        assert_eq!(anonymous.status, 200);
        assert!(
            !anonymous.text().contains("THE-SECRET-CONTENT"),
            "{spelt}: the unlocked post was served to an anonymous visitor"
        );
    }
    // Logged in, as PHP reads `wordpress.logged_in_…`: never the cache.
    let r = send(
        &wp,
        "/",
        &[format!(
            "Cookie: wordpress.logged_in_{hash}=admin%7C1%7Cx%7Cy"
        )],
        false,
    );
    assert_eq!(r.cache(), "BYPASS");
}

#[test]
fn anonymous_404s_are_cached_until_a_post_is_published_there() {
    let wp = site();
    let missing = "/not-yet-published/";
    let first = send(&wp, missing, &[], false);
    assert_eq!(
        (first.status, first.cache()),
        (404, "MISS"),
        "{}",
        first.text()
    );
    let before = renders(&wp, missing);
    assert_eq!(before, 1, "the 404 was rendered once");
    let again = send(&wp, missing, &[], false);
    assert_eq!(again.status, 404);
    assert!(
        matches!(again.cache(), "HIT" | "STALE"),
        "a 404 must be served from the cache: {:?}",
        again.cache()
    );
    assert_eq!(renders(&wp, missing), before, "a cached 404 reached PHP");
    // Hits say how old they are (HTTP's Age, which Site Health reads too).
    assert!(again
        .header("age")
        .is_some_and(|a| a.parse::<u64>().is_ok()));
    // WordPress's own no-cache header still reaches the browser.
    assert!(again
        .header("cache-control")
        .is_some_and(|v| v.contains("no-cache")));

    // Publishing there purges the 404 (the purge plugin, through the ops
    // listener): the post shows at once.
    let created = wp.rest("/wp-json/wp/v2/posts",
        r#"{"title":"Now published","slug":"not-yet-published","content":"FRESH-POST","status":"publish"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let published = send(&wp, missing, &[], false);
    assert_eq!(published.status, 200, "{}", published.text());
    assert!(published.text().contains("FRESH-POST"));
}

/// How many times PHP was asked for `request_uri`.
fn renders(wp: &WordPress, request_uri: &str) -> usize {
    wp.fpm.requests_with_uri(request_uri)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Entries the edge's last purge removed, from its log line.
fn last_purge_count(wp: &WordPress) -> Option<usize> {
    let log = wp.edge.log_text();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(" purge") && l.contains("purged="))?;
    let n = line.split("purged=").nth(1)?;
    n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[test]
fn tags_purge_exactly_the_pages_that_show_a_post() {
    let wp = WordPress::start("", "");
    // Two categories: 24 posts in A (three pages of it), 6 in B; with the
    // seeded post, four home pages. One day apart, newest first.
    let made = wp.php(
        r#"$a = wp_insert_term('Cat A', 'category', ['slug' => 'cat-a'])['term_id'];
$b = wp_insert_term('Cat B', 'category', ['slug' => 'cat-b'])['term_id'];
$ids = [];
for ($i = 1; $i <= 30; $i++) {
    $ids[$i] = wp_insert_post(['post_title' => sprintf('Story-%02d-marker', $i), 'post_name' => sprintf('story-%02d', $i),
        'post_content' => 'x', 'post_status' => 'publish', 'post_category' => [$i <= 24 ? $a : $b],
        'post_date' => date('Y-m-d H:i:s', strtotime('2024-01-01') + $i * 86400)]);
}
echo json_encode($ids);"#,
    );
    let ids: std::collections::HashMap<String, u64> =
        serde_json::from_str(made.lines().last().unwrap_or("")).unwrap();
    let mut urls: Vec<String> = ["/", "/page/2/", "/page/3/", "/page/4/"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for cat in [
        "/category/cat-a/",
        "/category/cat-a/page/2/",
        "/category/cat-a/page/3/",
        "/category/cat-b/",
    ] {
        urls.push(cat.to_string());
    }
    for i in 1..=30 {
        urls.push(format!("/story-{i:02}/"));
    }
    // Story 10 is the 15th newest of A (page 2 of A) and the 22nd newest
    // post with the seeded one (home page 3).
    let (old_title, new_title) = ("Story-10-marker", "Renamed-story-ten");
    let mut shows = Vec::new();
    for url in &urls {
        let first = wp.get(url, &[]);
        assert_eq!(first.status, 200, "{url}");
        assert_eq!(wp.get(url, &[]).cache(), "HIT", "{url}");
        shows.push(first.text().contains(old_title));
    }
    let showing: Vec<&String> = urls
        .iter()
        .zip(&shows)
        .filter(|(_, s)| **s)
        .map(|(u, _)| u)
        .collect();
    assert!(
        showing.contains(&&"/category/cat-a/page/2/".to_string()),
        "{showing:?}"
    );
    assert!(showing.contains(&&"/page/3/".to_string()), "{showing:?}");
    assert!(!showing.contains(&&"/".to_string()), "{showing:?}");

    // The same post under another name of the site (an alias in `hosts`,
    // the trailing-dot spelling of the Host): one more entry, the same page.
    let story = wp.edge.url("/story-10/");
    let alias = format!("Host: alias.wp.test:{}", wp.edge.port);
    let dotted = format!("Host: wp.test.:{}", wp.edge.port);
    assert_eq!(curl(&story, &["-H", &alias]).cache(), "MISS");
    assert_eq!(curl(&story, &["-H", &alias]).cache(), "HIT");
    assert_eq!(
        curl(&story, &["-H", &dotted]).cache(),
        "HIT",
        "wp.test. is wp.test"
    );

    // The editor saves a new title (publish → publish).
    let id = ids["10"];
    let updated = wp.rest(
        &format!("/wp-json/wp/v2/posts/{id}"),
        &format!(r#"{{"title":"{new_title}"}}"#),
    );
    assert_eq!(updated.status, 200, "{}", updated.text());

    let purged = last_purge_count(&wp);
    let aliased = curl(&story, &["-H", &alias]);
    assert_eq!(aliased.cache(), "MISS", "the alias host kept the old page");
    assert!(aliased.text().contains(new_title));
    for (url, showed) in urls.iter().zip(&shows) {
        let r = wp.get(url, &[]);
        if *showed {
            assert_eq!(r.cache(), "MISS", "{url} shows the post but was not purged");
            assert!(r.text().contains(new_title), "{url}");
        } else {
            assert_eq!(
                r.cache(),
                "HIT",
                "{url} does not show the post but was purged"
            );
        }
    }
    assert_eq!(
        purged,
        Some(showing.len() + 1),
        "purged {purged:?}; pages showing it: {showing:?}"
    );
    eprintln!(
        "updating one post purged {} of {} cached pages: {showing:?} and the alias host's copy",
        showing.len() + 1,
        urls.len() + 1
    );

    // A page with a "latest posts" block lists other posts (a related-posts
    // box works the same way); a page without one does not.
    wp.php(
        r#"wp_insert_post(['post_type' => 'page', 'post_title' => 'Latest', 'post_name' => 'latest', 'post_status' => 'publish', 'post_content' => '<!-- wp:latest-posts /-->']);
wp_insert_post(['post_type' => 'page', 'post_title' => 'Plain', 'post_name' => 'plain', 'post_status' => 'publish', 'post_content' => 'nothing listed']);"#,
    );
    for page in ["/latest/", "/plain/"] {
        wp.get(page, &[]);
        assert_eq!(wp.get(page, &[]).cache(), "HIT", "{page}");
    }

    // Publishing a new post enters every listing: every home and category
    // page it would appear in is purged, pages that do not list posts are not.
    let created = wp.rest(
        "/wp-json/wp/v2/posts",
        r#"{"title":"Brand-new-story","content":"x","status":"publish"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let home = wp.get("/", &[]);
    assert_eq!(home.cache(), "MISS");
    assert!(home.text().contains("Brand-new-story"));
    let latest = wp.get("/latest/", &[]);
    assert_eq!(
        latest.cache(),
        "MISS",
        "the latest-posts block was not purged"
    );
    assert!(latest.text().contains("Brand-new-story"));
    assert_eq!(
        wp.get("/plain/", &[]).cache(),
        "HIT",
        "a page that lists no posts was purged"
    );
    assert_eq!(
        wp.get("/story-01/", &[]).cache(),
        "HIT",
        "a post that does not list others was purged"
    );

    // A template saved in the site editor (the REST call the editor makes)
    // shows on the next anonymous request.
    assert_eq!(wp.get("/", &[]).cache(), "HIT");
    let saved = wp.rest(
        "/wp-json/wp/v2/templates/twentytwentythree//home",
        r#"{"content":"<!-- wp:paragraph --><p>EDITED-TEMPLATE</p><!-- /wp:paragraph -->"}"#,
    );
    assert_eq!(saved.status, 200, "{}", saved.text());
    let home = wp.get("/", &[]);
    assert_eq!(
        home.cache(),
        "MISS",
        "the site editor's save did not purge the home page"
    );
    assert!(home.text().contains("EDITED-TEMPLATE"));
    let r = wp.get("/story-01/", &[]);
    assert_eq!(r.cache(), "MISS", "a template change purges the site");
    assert!(
        r.header("x-murakumo-tags").is_none(),
        "tags reached a client"
    );
}

#[test]
fn author_and_media_edits_purge_the_pages_that_show_them() {
    let wp = WordPress::start("", "");
    // A post with a featured image from the media library, another without.
    let made = wp.php(
        r#"$img = imagecreatetruecolor(40, 30);
$file = wp_upload_dir()['path'] . '/pixel.png';
imagepng($img, $file);
$media = wp_insert_attachment(['post_title' => 'Pixel', 'post_mime_type' => 'image/png', 'post_status' => 'inherit'], $file);
require_once ABSPATH . 'wp-admin/includes/image.php';
wp_update_attachment_metadata($media, wp_generate_attachment_metadata($media, $file));
update_post_meta($media, '_wp_attachment_image_alt', 'ALT-ONE');
$with = wp_insert_post(['post_title' => 'With image', 'post_name' => 'with-image', 'post_content' => 'x', 'post_status' => 'publish', 'post_author' => 1]);
set_post_thumbnail($with, $media);
wp_insert_post(['post_title' => 'No image', 'post_name' => 'no-image', 'post_content' => 'x', 'post_status' => 'publish', 'post_author' => 1]);
echo json_encode(['media' => $media]);"#,
    );
    let v: serde_json::Value = serde_json::from_str(made.lines().last().unwrap_or("")).unwrap();
    let media = v["media"].as_u64().unwrap();
    for page in ["/with-image/", "/no-image/"] {
        wp.get(page, &[]);
        assert_eq!(wp.get(page, &[]).cache(), "HIT", "{page}");
    }
    let page = wp.get("/with-image/", &[]).text();
    assert!(page.contains("ALT-ONE"));
    assert!(
        page.contains("wp-block-post-author__name\">admin<"),
        "no byline"
    );

    // The media library's alt text: the page showing the image, only.
    let edited = wp.rest(
        &format!("/wp-json/wp/v2/media/{media}"),
        r#"{"alt_text":"ALT-TWO"}"#,
    );
    assert_eq!(edited.status, 200, "{}", edited.text());
    let r = wp.get("/with-image/", &[]);
    assert_eq!(r.cache(), "MISS", "the image's page kept the old alt text");
    assert!(r.text().contains("ALT-TWO"));
    assert_eq!(wp.get("/no-image/", &[]).cache(), "HIT");

    // The author's display name shows on every post's byline.
    wp.get("/with-image/", &[]);
    let renamed = wp.rest("/wp-json/wp/v2/users/1", r#"{"name":"Renamed-author"}"#);
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    for page in ["/with-image/", "/no-image/"] {
        let r = wp.get(page, &[]);
        assert_eq!(r.cache(), "MISS", "{page} kept the old byline");
        assert!(r.text().contains("Renamed-author"), "{page}");
    }
}
