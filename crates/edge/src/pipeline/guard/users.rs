//! Who the site's users are is not told to visitors who are not logged in:
//! WordPress lists them at `wp-json/wp/v2/users` (also as
//! `?rest_route=/wp/v2/users`), redirects `?author=N` to the author's
//! archive (whose address is the login name), and lists them in the users
//! sitemap. Scanners walk those to learn names to guess passwords for.
//!
//! The edge refuses them for requests that do not even claim a login
//! (no login cookie, no credentials): those never reach PHP. A claim is
//! not a proof, so WordPress refuses them too for anyone it does not know
//! (the `murakumo-server` plugin, told by `MURAKUMO_HIDE_USERS`).

use http::HeaderMap;
use percent_encoding::percent_decode_str;

/// Why an anonymous request would enumerate users, if it would.
pub fn refused(lower: &str, query: Option<&str>, headers: &HeaderMap) -> Option<&'static str> {
    let asks = lists_users(lower) || query.is_some_and(|q| query_lists_users(lower, q));
    (asks && !murakumo_cache::policy::claims_login(headers)).then_some("user enumeration")
}

fn lists_users(lower: &str) -> bool {
    lower.starts_with("/wp-json/wp/v2/users") || lower.starts_with("/wp-sitemap-users-")
}

fn query_lists_users(lower: &str, query: &str) -> bool {
    let front_end = !lower.starts_with("/wp-admin/") && lower != "/wp-admin";
    query.split('&').any(|kv| {
        let (name, value) = kv.split_once('=').unwrap_or((kv, ""));
        // Most parameters (`ver=6.1`) are none of these, plainly written:
        // no decoding for them.
        let plain = !name.contains(['%', '+']);
        let bare = name.split('[').next().unwrap_or("").trim();
        if plain
            && !["rest_route", "author", "sitemap"]
                .iter()
                .any(|n| bare.eq_ignore_ascii_case(n))
        {
            return false;
        }
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .to_ascii_lowercase()
        };
        let (name, value) = (decode(name), decode(value));
        // PHP's name: `author[]` is `author`.
        let name = name.split('[').next().unwrap_or("").trim();
        match name {
            "rest_route" => value.trim_start_matches('/').starts_with("wp/v2/users"),
            "author" => {
                front_end
                    && !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'-' || b == b',')
            }
            "sitemap" => value == "users",
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderValue, AUTHORIZATION, COOKIE};

    fn anonymous(target: &str) -> bool {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        refused(&path.to_ascii_lowercase(), query, &HeaderMap::new()).is_some()
    }

    #[test]
    fn anonymous_enumeration_is_refused() {
        for t in [
            "/wp-json/wp/v2/users",
            "/wp-json/wp/v2/users/1",
            "/wp-json/WP/V2/Users",
            "/?rest_route=/wp/v2/users",
            "/?rest_route=%2Fwp%2Fv2%2Fusers%2F1",
            "/?author=1",
            "/?author%5B%5D=1",
            "/blog/?p=3&author=2",
            "/wp-sitemap-users-1.xml",
            "/?sitemap=users",
            "/?AUTHOR=1",
            "/?%61uthor=1",
            "/?ver=6.1&author=1",
            "/?author+=1",
        ] {
            assert!(anonymous(t), "{t} must be refused");
        }
        for t in [
            "/wp-json/wp/v2/posts",
            "/?author_name=",
            "/author/admin/",
            "/wp-sitemap-posts-post-1.xml",
            "/wp-admin/edit.php?author=1",
            "/?s=author",
        ] {
            assert!(!anonymous(t), "{t} must be allowed");
        }
    }

    #[test]
    fn a_claimed_login_goes_on_to_wordpress() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("wordpress_logged_in_abc=admin%7C1"),
        );
        assert!(refused("/wp-json/wp/v2/users", None, &h).is_none());
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
        assert!(refused("/wp-json/wp/v2/users", None, &h).is_none());
    }
}
