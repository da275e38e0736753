//! Arbitrary request paths through the edge's path normaliser (the one step
//! between the request target and routing, guards and the cache key): it
//! must never panic, and whatever it accepts must be absolute, free of
//! `.`/`..`/empty segments, backslashes and control characters — the forms
//! the guards rely on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use murakumo_path as path;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = path::normalise(raw) {
        assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
        assert!(!p.contains("//"), "{raw:?} -> {p:?}");
        assert!(!p.contains('\\'), "{raw:?} -> {p:?}");
        assert!(!p.chars().any(char::is_control), "{raw:?} -> {p:?}");
        assert!(
            p.split('/').all(|s| s != "." && s != ".."),
            "{raw:?} -> {p:?}"
        );
    }
});
