//! Bytes from the shared cache (Redis) read as a stored page: whatever
//! they are, decoding never panics, and a page that decodes encodes back
//! to bytes that decode to the same page (what one edge stores, another
//! reads whole).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use murakumo_cache::wire;

fuzz_target!(|data: &[u8]| {
    let mut input = b"MKE1".to_vec();
    input.extend_from_slice(data);
    for bytes in [Bytes::copy_from_slice(data), Bytes::from(input)] {
        let Ok(entry) = wire::decode(&bytes) else {
            continue;
        };
        let again = wire::decode(&wire::encode(&entry)).expect("an encoded page decodes");
        assert_eq!(again.status, entry.status);
        assert_eq!(again.headers, entry.headers);
        assert_eq!(again.identity, entry.identity);
        assert_eq!(again.gzip, entry.gzip);
        assert_eq!(again.br, entry.br);
        assert_eq!(again.tags, entry.tags);
    }
});
