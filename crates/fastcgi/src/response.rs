//! The CGI response head that PHP writes at the start of its stdout:
//! header lines, an optional `Status:` pseudo-header, then an empty line.

/// Most header lines accepted in one response head.
pub const MAX_HEADERS: usize = 128;
/// Largest response head accepted before the body starts.
pub const MAX_HEAD_LEN: usize = 64 * 1024;

/// A parsed response head: the status and the headers in order, `Status:` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed CGI response head: {0}")]
    Malformed(String),
    #[error("invalid Status line {0:?}")]
    Status(String),
    #[error("CGI response head larger than {MAX_HEAD_LEN} bytes")]
    TooLarge,
}

/// Parses the head at the start of `buf`. Returns the head and how many bytes
/// it took, or `Ok(None)` when the empty line has not arrived yet.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (consumed, parsed) = match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD_LEN {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let mut status = None;
    let mut has_location = false;
    let mut headers = Vec::with_capacity(parsed.len());
    for h in parsed.iter() {
        if h.name.eq_ignore_ascii_case("status") {
            let text = String::from_utf8_lossy(h.value).into_owned();
            let code = text
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (100..=999).contains(c))
                .ok_or(HeadError::Status(text))?;
            status = Some(code);
            continue;
        }
        if h.name.eq_ignore_ascii_case("location") {
            has_location = true;
        }
        headers.push((h.name.to_string(), h.value.to_vec()));
    }
    // RFC 3875 6.2.3: a Location without Status is a client redirect.
    let status = status.unwrap_or(if has_location { 302 } else { 200 });
    Ok(Some((ResponseHead { status, headers }, consumed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_header_sets_code_and_is_removed() {
        let raw = b"Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\nbody";
        let (head, used) = parse_response_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(
            head.headers,
            vec![("Content-Type".to_string(), b"text/html".to_vec())]
        );
        assert_eq!(&raw[used..], b"body");
    }

    #[test]
    fn location_without_status_is_302_and_default_is_200() {
        let (head, _) = parse_response_head(b"Location: /x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.status, 302);
        let (head, _) = parse_response_head(b"X-A: 1\n\n").unwrap().unwrap();
        assert_eq!(head.status, 200);
    }

    #[test]
    fn partial_then_too_large() {
        assert_eq!(
            parse_response_head(b"Content-Type: text/html\r\n").unwrap(),
            None
        );
        let big = vec![b'a'; MAX_HEAD_LEN + 10];
        assert!(parse_response_head(&big).is_err());
    }

    #[test]
    fn bad_status_is_an_error() {
        assert!(parse_response_head(b"Status: abc\r\n\r\n").is_err());
        assert!(parse_response_head(b"Status: 42\r\n\r\n").is_err());
    }
}
