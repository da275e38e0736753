//! Arbitrary requests through what decides the page cache's view of them:
//! the path normaliser, the cache key and the bypass policy (cookies judged
//! as PHP names them). Nothing may panic, and the key's target must be the
//! one canonical spelling of the normalised path: it decodes back to it, so
//! two spellings of a path never make two keys or one key for two paths.
//!
//! Input: path, Host, query and Cookie header, separated by newlines.
#![no_main]

use std::time::Duration;

use http::header::{HeaderValue, COOKIE};
use http::{HeaderMap, Method};
use libfuzzer_sys::fuzz_target;
use murakumo_cache::{CacheKey, Policy};
use murakumo_path as path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = text.splitn(4, '\n');
    let raw_path = fields.next().unwrap_or("/");
    let host = fields.next().unwrap_or("");
    let query = fields.next();
    let cookie = fields.next();
    let Ok(p) = path::normalise(raw_path) else {
        return;
    };
    for https in [false, true] {
        let key = CacheKey::new("s".into(), https, host, &p, query);
        let target_path = key.target.split('?').next().unwrap_or("");
        assert_eq!(
            path::normalise(target_path).as_deref(),
            Ok(&*p),
            "{raw_path:?} -> {p:?} -> {:?}",
            key.target
        );
        assert_eq!(
            murakumo_cache::key::encode_path(&p),
            target_path,
            "one spelling per path"
        );
        let _ = key.host_header();
        let _ = key.server_port();
    }
    let mut headers = HeaderMap::new();
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(COOKIE, v);
    }
    let policy = Policy {
        ttl: Duration::from_secs(60),
        ttl_404: Duration::from_secs(60),
        feeds: false,
    };
    let _ = policy.request_bypass(&Method::GET, &p, query, &headers);
    if let Some(c) = cookie {
        for pair in c.split(';') {
            let raw = pair.split('=').next().unwrap_or("");
            let name = murakumo_cache::policy::php_cookie_name(raw);
            assert!(!name.starts_with([' ', '\t']), "{pair:?} -> {name:?}");
            if !raw.contains('[') {
                assert!(!name.contains(['.', ' ']), "{pair:?} -> {name:?}");
            }
        }
    }
});
