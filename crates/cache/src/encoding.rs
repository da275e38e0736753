//! Content codings and `Accept-Encoding` negotiation (RFC 9110 12.5.3).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    pub fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// Which of the encodings the client accepts, best first (br, then gzip),
/// with q-values honoured (`q=0` refuses, `*` covers the unnamed ones).
pub fn accepted(header: Option<&str>) -> AcceptSet {
    let mut set = AcceptSet {
        br: false,
        gzip: false,
    };
    let Some(header) = header else { return set };
    let mut star = None;
    let (mut br, mut gzip) = (None, None);
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p
                .trim()
                .strip_prefix("q=")
                .or_else(|| p.trim().strip_prefix("Q="))
            {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        let ok = q > 0.0;
        match name.as_str() {
            "br" => br = Some(ok),
            "gzip" | "x-gzip" => gzip = Some(ok),
            "*" => star = Some(ok),
            _ => {}
        }
    }
    set.br = br.or(star).unwrap_or(false);
    set.gzip = gzip.or(star).unwrap_or(false);
    set
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptSet {
    pub br: bool,
    pub gzip: bool,
}

impl AcceptSet {
    /// The best encoding among those available.
    pub fn choose(self, have_br: bool, have_gzip: bool) -> Encoding {
        if self.br && have_br {
            Encoding::Brotli
        } else if self.gzip && have_gzip {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_header_prefers_br() {
        let a = accepted(Some("gzip, deflate, br, zstd"));
        assert_eq!(a.choose(true, true), Encoding::Brotli);
        assert_eq!(a.choose(false, true), Encoding::Gzip);
        assert_eq!(a.choose(false, false), Encoding::Identity);
    }

    #[test]
    fn q_zero_refuses_and_star_covers() {
        assert_eq!(
            accepted(Some("br;q=0, gzip")).choose(true, true),
            Encoding::Gzip
        );
        assert_eq!(accepted(Some("*")).choose(true, true), Encoding::Brotli);
        assert_eq!(
            accepted(Some("*;q=0, gzip;q=0.5")).choose(true, true),
            Encoding::Gzip
        );
        assert_eq!(accepted(None).choose(true, true), Encoding::Identity);
        assert_eq!(
            accepted(Some("identity")).choose(true, true),
            Encoding::Identity
        );
    }
}
