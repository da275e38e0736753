//! FastCGI records: the 8-byte header, the record types a responder client
//! uses, an encoder and a streaming decoder that never panics on bad input.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const VERSION_1: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// The largest content one record can carry.
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;

pub const ROLE_RESPONDER: u16 = 1;
pub const FLAG_KEEP_CONN: u8 = 1;

/// `protocolStatus` values of `FCGI_END_REQUEST`.
pub const REQUEST_COMPLETE: u8 = 0;

/// One decoded record. `content` excludes padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub request_id: u16,
    pub content: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported record version {0}")]
    Version(u8),
    #[error("END_REQUEST body is {0} bytes, expected 8")]
    EndRequestLen(usize),
}

/// Appends one record header.
pub fn put_header(dst: &mut BytesMut, kind: u8, request_id: u16, content_len: usize) {
    debug_assert!(content_len <= MAX_CONTENT_LEN);
    dst.put_u8(VERSION_1);
    dst.put_u8(kind);
    dst.put_u16(request_id);
    dst.put_u16(content_len as u16);
    dst.put_u8(0); // no padding: php-fpm accepts unaligned records
    dst.put_u8(0);
}

/// Appends `data` as one or more records of `kind`. An empty `data` writes one
/// empty record, which ends a stream (PARAMS, STDIN).
pub fn put_stream(dst: &mut BytesMut, kind: u8, request_id: u16, data: &[u8]) {
    if data.is_empty() {
        put_header(dst, kind, request_id, 0);
        return;
    }
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        dst.reserve(HEADER_LEN + chunk.len());
        put_header(dst, kind, request_id, chunk.len());
        dst.put_slice(chunk);
    }
}

/// Appends a `BEGIN_REQUEST` record for the responder role.
pub fn put_begin_request(dst: &mut BytesMut, request_id: u16, keep_conn: bool) {
    put_header(dst, BEGIN_REQUEST, request_id, 8);
    dst.put_u16(ROLE_RESPONDER);
    dst.put_u8(if keep_conn { FLAG_KEEP_CONN } else { 0 });
    dst.put_slice(&[0; 5]);
}

/// Appends an `END_REQUEST` record (used by tests and fuzzing as a peer).
pub fn put_end_request(dst: &mut BytesMut, request_id: u16, app_status: u32, protocol_status: u8) {
    put_header(dst, END_REQUEST, request_id, 8);
    dst.put_u32(app_status);
    dst.put_u8(protocol_status);
    dst.put_slice(&[0; 3]);
}

/// Decodes one whole record from the front of `src`, consuming it (with its
/// padding). Returns `Ok(None)` when more bytes are needed.
pub fn decode(src: &mut BytesMut) -> Result<Option<Record>, DecodeError> {
    if src.len() < HEADER_LEN {
        return Ok(None);
    }
    let version = src[0];
    if version != VERSION_1 {
        return Err(DecodeError::Version(version));
    }
    let kind = src[1];
    let request_id = u16::from_be_bytes([src[2], src[3]]);
    let content_len = u16::from_be_bytes([src[4], src[5]]) as usize;
    let padding_len = src[6] as usize;
    let total = HEADER_LEN + content_len + padding_len;
    if src.len() < total {
        src.reserve(total - src.len());
        return Ok(None);
    }
    src.advance(HEADER_LEN);
    let content = src.split_to(content_len).freeze();
    src.advance(padding_len);
    Ok(Some(Record {
        kind,
        request_id,
        content,
    }))
}

/// The body of an `END_REQUEST` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    pub app_status: u32,
    pub protocol_status: u8,
}

impl EndRequest {
    pub fn parse(content: &[u8]) -> Result<Self, DecodeError> {
        if content.len() != 8 {
            return Err(DecodeError::EndRequestLen(content.len()));
        }
        Ok(EndRequest {
            app_status: u32::from_be_bytes([content[0], content[1], content[2], content[3]]),
            protocol_status: content[4],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn begin_request_layout_matches_spec() {
        let mut b = BytesMut::new();
        put_begin_request(&mut b, 1, true);
        assert_eq!(&b[..], &[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn decode_waits_for_whole_record_and_skips_padding() {
        // STDOUT "hi" padded to 8 bytes, as php-fpm sends it.
        let wire = [1, STDOUT, 0, 1, 0, 2, 6, 0, b'h', b'i', 0, 0, 0, 0, 0, 0];
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            buf.put_u8(*byte);
            let got = decode(&mut buf).unwrap();
            if i + 1 < wire.len() {
                assert_eq!(got, None, "decoded early at byte {i}");
            } else {
                let rec = got.unwrap();
                assert_eq!((rec.kind, rec.request_id), (STDOUT, 1));
                assert_eq!(&rec.content[..], b"hi");
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_version_is_an_error() {
        let mut buf = BytesMut::from(&[2u8, STDOUT, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(decode(&mut buf), Err(DecodeError::Version(2)));
    }

    #[test]
    fn end_request_roundtrip() {
        let mut b = BytesMut::new();
        put_end_request(&mut b, 1, 255, REQUEST_COMPLETE);
        let rec = decode(&mut b).unwrap().unwrap();
        assert_eq!(rec.kind, END_REQUEST);
        let end = EndRequest::parse(&rec.content).unwrap();
        assert_eq!(end.app_status, 255);
        assert_eq!(end.protocol_status, REQUEST_COMPLETE);
        assert!(EndRequest::parse(&rec.content[..7]).is_err());
    }

    #[test]
    fn stream_splits_at_max_content_and_ends_with_empty_record() {
        let data = vec![7u8; MAX_CONTENT_LEN * 2 + 10];
        let mut b = BytesMut::new();
        put_stream(&mut b, STDIN, 1, &data);
        put_stream(&mut b, STDIN, 1, &[]);
        let mut lens = vec![];
        while let Some(rec) = decode(&mut b).unwrap() {
            lens.push(rec.content.len());
        }
        assert_eq!(lens, vec![MAX_CONTENT_LEN, MAX_CONTENT_LEN, 10, 0]);
    }

    proptest! {
        /// Any byte string, fed in any split, never panics, and whatever it
        /// decodes re-encodes to a prefix-equivalent record.
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), split in 0usize..300) {
            let split = split.min(data.len());
            let mut buf = BytesMut::from(&data[..split]);
            let _ = decode(&mut buf);
            buf.extend_from_slice(&data[split..]);
            while let Ok(Some(_)) = decode(&mut buf) {}
        }

        #[test]
        fn stream_roundtrip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..70_000), 1..4)) {
            let mut b = BytesMut::new();
            for c in &chunks { put_stream(&mut b, STDOUT, 9, c); }
            let mut out = Vec::new();
            while let Some(rec) = decode(&mut b).unwrap() {
                prop_assert_eq!(rec.kind, STDOUT);
                prop_assert_eq!(rec.request_id, 9);
                out.extend_from_slice(&rec.content);
            }
            prop_assert_eq!(out, chunks.concat());
        }
    }
}
