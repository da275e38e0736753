//! Ready response heads: for each form an entry holds (identity, gzip,
//! brotli), the headers a hit sends, built once when the entry is stored.
//! A hit then clones one map and sets its `Age` in place: no header is
//! looked up, formatted or added per request, and the map never grows.
//!
//! What the server adds to every answer besides the stored response's own
//! headers (its cache label, security headers) comes as a [`Decoration`];
//! its `id` tells the server whether an entry's heads were built with the
//! decoration it uses now (a reload may change it; an entry with other
//! heads is answered the slow way, from its stored headers).

use std::sync::OnceLock;

use http::header::{self, HeaderName, HeaderValue};
use http::HeaderMap;

use crate::encoding::{weaken_etag, Encoding};

/// What the server adds to every answer from an entry.
#[derive(Debug, Clone, Default)]
pub struct Decoration {
    /// Tells one decoration from another; 0 is "none".
    pub id: u64,
    /// Set on every head, replacing the stored response's own.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Added to every head unless the stored response has them.
    pub defaults: Vec<(HeaderName, HeaderValue)>,
}

/// An entry's ready heads, one per form it holds.
#[derive(Debug, Default)]
pub struct Heads {
    /// The [`Decoration::id`] they were built with (0: none were built).
    pub decoration: u64,
    identity: HeaderMap,
    gzip: Option<HeaderMap>,
    br: Option<HeaderMap>,
}

impl Heads {
    /// `stored` are the entry's headers; the lengths are those of the
    /// forms it holds (`None` for a form it does not).
    pub fn build(
        stored: &HeaderMap,
        identity_len: usize,
        gzip_len: Option<usize>,
        br_len: Option<usize>,
        decoration: &Decoration,
    ) -> Heads {
        let head = |enc, len| form_head(stored, enc, len, decoration);
        Heads {
            decoration: decoration.id,
            identity: head(Encoding::Identity, identity_len),
            gzip: gzip_len.map(|n| head(Encoding::Gzip, n)),
            br: br_len.map(|n| head(Encoding::Brotli, n)),
        }
    }

    /// The head of one form (the identity one for a form not held).
    pub fn get(&self, enc: Encoding) -> &HeaderMap {
        match enc {
            Encoding::Brotli => self.br.as_ref().unwrap_or(&self.identity),
            Encoding::Gzip => self.gzip.as_ref().unwrap_or(&self.identity),
            Encoding::Identity => &self.identity,
        }
    }

    /// Bytes the heads hold, for the memory bound.
    pub fn weight(&self) -> usize {
        [Some(&self.identity), self.gzip.as_ref(), self.br.as_ref()]
            .into_iter()
            .flatten()
            .map(map_weight)
            .sum()
    }
}

/// The head one form of a stored response is answered with: the stored
/// headers, the form's `Content-Encoding` (and the weak `ETag` an encoded
/// form has: the stored strong one names the identity bytes), its
/// `Content-Length`, an `Age` slot, then the decoration. With room for all
/// of them: it never grows.
pub fn form_head(
    stored: &HeaderMap,
    enc: Encoding,
    len: usize,
    decoration: &Decoration,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(
        stored.len() + 3 + decoration.set.len() + decoration.defaults.len(),
    );
    // First: a hit sets it in place without looking it up ([`set_age`]);
    // an `Age` PHP sent is not kept (it would be a second value).
    h.insert(header::AGE, age_value(0));
    let mut stored = stored.clone();
    stored.remove(header::AGE);
    h.extend(stored);
    if let Some(token) = enc.token() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
        weaken_etag(&mut h);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    for (name, value) in &decoration.set {
        h.insert(name.clone(), value.clone());
    }
    for (name, value) in &decoration.defaults {
        h.entry(name.clone()).or_insert_with(|| value.clone());
    }
    h
}

/// Sets a ready head's `Age`: its first header ([`form_head`] puts it
/// there), so no lookup by name; a head made otherwise gets it by name.
pub fn set_age(head: &mut HeaderMap, age: HeaderValue) {
    match head.iter_mut().next() {
        Some((name, value)) if name == header::AGE => *value = age,
        _ => {
            head.insert(header::AGE, age);
        }
    }
}

/// Bytes a header map holds, roughly: names, values and per-entry overhead.
pub fn map_weight(h: &HeaderMap) -> usize {
    h.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum()
}

/// Ages up to this many seconds are ready values (no formatting, no
/// allocation); longer ones are formatted.
const READY_AGES: u64 = 4096;

/// The `Age` header for `secs` seconds.
pub fn age_value(secs: u64) -> HeaderValue {
    static DIGITS: OnceLock<&'static str> = OnceLock::new();
    if secs >= READY_AGES {
        return HeaderValue::from(secs);
    }
    // "0123…4095" once, in one leaked string (16 KB): every age below
    // READY_AGES is a static slice of it.
    let digits = DIGITS.get_or_init(|| {
        let mut s = String::new();
        for n in 0..READY_AGES {
            s.push_str(&n.to_string());
        }
        Box::leak(s.into_boxed_str())
    });
    let start = offset(secs);
    HeaderValue::from_static(&digits[start..offset(secs + 1)])
}

/// Where the digits of `n` start in the ready ages string.
fn offset(n: u64) -> usize {
    // 10 one-digit, 90 two-digit, 900 three-digit numbers, then four.
    let n = n as usize;
    match n {
        0..=10 => n,
        11..=100 => 10 + (n - 10) * 2,
        101..=1000 => 190 + (n - 100) * 3,
        _ => 2890 + (n - 1000) * 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_their_numbers() {
        for n in (0..5000).chain([9_999_999]) {
            assert_eq!(age_value(n).to_str().unwrap(), n.to_string(), "{n}");
        }
    }

    fn stored() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        h.insert(header::ETAG, HeaderValue::from_static("\"abc\""));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h
    }

    #[test]
    fn each_form_has_its_length_encoding_and_etag() {
        let decoration = Decoration {
            id: 7,
            set: vec![(
                HeaderName::from_static("x-cache"),
                HeaderValue::from_static("HIT"),
            )],
            defaults: vec![(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("SAMEORIGIN"),
            )],
        };
        let heads = Heads::build(&stored(), 1000, None, Some(200), &decoration);
        assert_eq!(heads.decoration, 7);
        let plain = heads.get(Encoding::Identity);
        assert_eq!(plain[header::CONTENT_LENGTH], "1000");
        assert_eq!(plain[header::ETAG], "\"abc\"");
        assert!(plain.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain[header::AGE], "0");
        assert_eq!(plain["x-cache"], "HIT");
        // The stored response's own header wins over a default.
        assert_eq!(plain[header::X_FRAME_OPTIONS], "DENY");
        let br = heads.get(Encoding::Brotli);
        assert_eq!(br[header::CONTENT_LENGTH], "200");
        assert_eq!(br[header::CONTENT_ENCODING], "br");
        assert_eq!(br[header::ETAG], "W/\"abc\"");
        // A form not held answers with the identity head.
        assert_eq!(heads.get(Encoding::Gzip)[header::CONTENT_LENGTH], "1000");
    }

    #[test]
    fn an_age_php_sent_leaves_one_age_the_hit_sets() {
        let mut from_php = stored();
        from_php.append(header::AGE, HeaderValue::from_static("100"));
        from_php.append(header::AGE, HeaderValue::from_static("200"));
        let heads = Heads::build(&from_php, 10, None, None, &Decoration::default());
        let mut h = heads.get(Encoding::Identity).clone();
        set_age(&mut h, age_value(3));
        let ages: Vec<_> = h.get_all(header::AGE).iter().collect();
        assert_eq!(ages, [&age_value(3)]);
    }

    #[test]
    fn a_ready_head_does_not_grow_when_its_age_is_set() {
        let heads = Heads::build(&stored(), 10, None, None, &Decoration::default());
        let mut h = heads.get(Encoding::Identity).clone();
        let cap = h.capacity();
        let len = h.len();
        set_age(&mut h, age_value(42));
        assert_eq!((h.capacity(), h.len()), (cap, len));
        assert_eq!(h[header::AGE], "42");
        assert_eq!(h.iter().next().map(|(n, _)| n), Some(&header::AGE));
        // A head without the slot gets one.
        let mut bare = HeaderMap::new();
        bare.insert(header::ETAG, HeaderValue::from_static("\"x\""));
        set_age(&mut bare, age_value(7));
        assert_eq!((&bare[header::AGE], bare.len()), (&age_value(7), 2));
    }
}
