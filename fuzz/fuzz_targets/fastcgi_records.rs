//! Feeds arbitrary bytes from "php-fpm" through the record decoder, in
//! arbitrary splits, and everything STDOUT carried through the CGI response
//! head parser: neither may panic, loop or over-read.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use murakumo_fastcgi::record::{self, EndRequest, END_REQUEST, STDOUT};
use murakumo_fastcgi::response::parse_response_head;

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(0) as usize % (data.len().max(1));
    let mut buf = BytesMut::from(&data[..split]);
    let mut stdout = Vec::new();
    let mut feed = |buf: &mut BytesMut| loop {
        match record::decode(buf) {
            Ok(Some(rec)) => {
                if rec.kind == STDOUT {
                    stdout.extend_from_slice(&rec.content);
                } else if rec.kind == END_REQUEST {
                    let _ = EndRequest::parse(&rec.content);
                }
            }
            Ok(None) | Err(_) => break,
        }
    };
    feed(&mut buf);
    buf.extend_from_slice(&data[split..]);
    feed(&mut buf);
    if let Ok(Some((_, used))) = parse_response_head(&stdout) {
        assert!(used <= stdout.len());
    }
});
