//! `FCGI_PARAMS` name-value pairs: the CGI environment sent to php-fpm.
//!
//! php-fpm parses each PARAMS record on its own (`fcgi_get_params` per record),
//! so a pair must never straddle two records: [`encode_records`] packs whole
//! pairs into records and refuses a single pair larger than one record.

use bytes::{BufMut, Bytes, BytesMut};

use crate::record::{self, HEADER_LEN, MAX_CONTENT_LEN, PARAMS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("parameter {name:?} is {len} bytes, more than one FastCGI record can carry")]
    TooLarge { name: String, len: usize },
    #[error("truncated name-value pair")]
    Truncated,
}

/// An ordered CGI environment.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(Bytes, Bytes)>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.pairs.push((name.into(), value.into()));
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n.as_ref() == name.as_bytes())
            .map(|(_, v)| v.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

fn put_len(dst: &mut BytesMut, len: usize) {
    if len < 128 {
        dst.put_u8(len as u8);
    } else {
        dst.put_u32(len as u32 | 0x8000_0000);
    }
}

fn len_size(len: usize) -> usize {
    if len < 128 {
        1
    } else {
        4
    }
}

/// Encodes one pair.
pub fn encode_pair(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    put_len(dst, name.len());
    put_len(dst, value.len());
    dst.put_slice(name);
    dst.put_slice(value);
}

/// Appends PARAMS records carrying `params` followed by the empty record that
/// ends the stream.
pub fn encode_records(
    dst: &mut BytesMut,
    request_id: u16,
    params: &Params,
) -> Result<(), ParamsError> {
    let mut body = BytesMut::with_capacity(1024);
    for (name, value) in params.iter() {
        let size = len_size(name.len()) + len_size(value.len()) + name.len() + value.len();
        if size > MAX_CONTENT_LEN {
            return Err(ParamsError::TooLarge {
                name: String::from_utf8_lossy(name).into_owned(),
                len: size,
            });
        }
        if body.len() + size > MAX_CONTENT_LEN {
            flush(dst, request_id, &mut body);
        }
        encode_pair(&mut body, name, value);
    }
    flush(dst, request_id, &mut body);
    record::put_header(dst, PARAMS, request_id, 0);
    Ok(())
}

fn flush(dst: &mut BytesMut, request_id: u16, body: &mut BytesMut) {
    if body.is_empty() {
        return;
    }
    dst.reserve(HEADER_LEN + body.len());
    record::put_header(dst, PARAMS, request_id, body.len());
    dst.put_slice(body);
    body.clear();
}

fn get_len(src: &[u8], at: &mut usize) -> Result<usize, ParamsError> {
    let first = *src.get(*at).ok_or(ParamsError::Truncated)?;
    if first & 0x80 == 0 {
        *at += 1;
        return Ok(first as usize);
    }
    let b = src.get(*at..*at + 4).ok_or(ParamsError::Truncated)?;
    *at += 4;
    Ok((u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff) as usize)
}

/// One decoded name-value pair.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Decodes the pairs in one record's content (the peer side; used by tests).
pub fn decode_pairs(src: &[u8]) -> Result<Vec<Pair>, ParamsError> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < src.len() {
        let name_len = get_len(src, &mut at)?;
        let value_len = get_len(src, &mut at)?;
        let end_name = at.checked_add(name_len).ok_or(ParamsError::Truncated)?;
        let end_value = end_name
            .checked_add(value_len)
            .ok_or(ParamsError::Truncated)?;
        let name = src.get(at..end_name).ok_or(ParamsError::Truncated)?;
        let value = src.get(end_name..end_value).ok_or(ParamsError::Truncated)?;
        out.push((name.to_vec(), value.to_vec()));
        at = end_value;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::decode;
    use proptest::prelude::*;

    #[test]
    fn short_and_long_lengths() {
        let mut b = BytesMut::new();
        encode_pair(&mut b, b"A", &[b'x'; 200]);
        assert_eq!(&b[..5], &[1, 0x80, 0, 0, 200]);
        let pairs = decode_pairs(&b).unwrap();
        assert_eq!(pairs[0].1.len(), 200);
    }

    #[test]
    fn oversized_pair_is_refused() {
        let mut p = Params::new();
        p.insert("HTTP_COOKIE", vec![b'c'; MAX_CONTENT_LEN]);
        let err = encode_records(&mut BytesMut::new(), 1, &p).unwrap_err();
        assert!(matches!(err, ParamsError::TooLarge { .. }), "{err}");
    }

    proptest! {
        /// Pairs never straddle records, and every pair comes back in order.
        #[test]
        fn records_hold_whole_pairs(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30_000), 0..12)) {
            let mut p = Params::new();
            for (i, v) in values.iter().enumerate() {
                p.insert(format!("P{i}"), v.clone());
            }
            let mut b = BytesMut::new();
            encode_records(&mut b, 1, &p).unwrap();
            let mut got = Vec::new();
            let mut ended = false;
            while let Some(rec) = decode(&mut b).unwrap() {
                prop_assert!(!ended);
                if rec.content.is_empty() { ended = true; continue; }
                got.extend(decode_pairs(&rec.content).unwrap());
            }
            prop_assert!(ended);
            prop_assert_eq!(got.len(), values.len());
            for (i, (n, v)) in got.iter().enumerate() {
                let want = format!("P{i}");
                prop_assert_eq!(n.as_slice(), want.as_bytes());
                prop_assert_eq!(v, &values[i]);
            }
        }
    }
}
