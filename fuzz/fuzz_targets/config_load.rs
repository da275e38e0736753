//! Arbitrary text as `murakumo.toml`: parsing and validation must never
//! panic, whatever the shape, types or values (durations, sizes, rates,
//! CIDRs, addresses, host patterns).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = murakumo_config::Config::parse(text, "fuzz.toml");
    }
});
