//! The CGI environment sent to php-fpm, as nginx and Caddy give it to
//! WordPress: script and path info from [`crate::resolve`], `REQUEST_URI` as
//! the client sent it, `HTTP_HOST` with its port, every header as `HTTP_*`
//! except `Proxy` (httpoxy) and names with `_` (ambiguous with `-`).

use std::net::SocketAddr;
use std::path::Path;

use http::{HeaderMap, Method, Uri};
use murakumo_fastcgi::params::Params;

pub struct CgiRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub root: &'a Path,
    pub script: &'a str,
    pub path_info: &'a str,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
    pub content_length: Option<u64>,
    /// For cache fills: ask for an uncompressed body, which the cache
    /// compresses once itself.
    pub drop_accept_encoding: bool,
}

const SERVER_SOFTWARE: &str = concat!("murakumo/", env!("CARGO_PKG_VERSION"));

pub fn params(r: &CgiRequest<'_>) -> Params {
    let mut p = Params::new();
    let root = r.root.to_string_lossy();
    let root = root.trim_end_matches('/');
    let host = r
        .headers
        .get(http::header::HOST)
        .map(|v| v.as_bytes())
        .unwrap_or(b"");
    let server_name =
        murakumo_cache::key::host_without_port(std::str::from_utf8(host).unwrap_or(""));
    p.insert("GATEWAY_INTERFACE", "CGI/1.1");
    p.insert("SERVER_SOFTWARE", SERVER_SOFTWARE);
    p.insert("SERVER_PROTOCOL", "HTTP/1.1");
    p.insert("REQUEST_METHOD", r.method.as_str().to_string());
    p.insert("REQUEST_SCHEME", if r.https { "https" } else { "http" });
    if r.https {
        p.insert("HTTPS", "on");
    }
    p.insert("SCRIPT_FILENAME", format!("{root}{}", r.script));
    p.insert("SCRIPT_NAME", r.script.to_string());
    if !r.path_info.is_empty() {
        p.insert("PATH_INFO", r.path_info.to_string());
    }
    p.insert("DOCUMENT_URI", format!("{}{}", r.script, r.path_info));
    p.insert("DOCUMENT_ROOT", root.to_string());
    p.insert(
        "REQUEST_URI",
        r.uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/")
            .to_string(),
    );
    p.insert("QUERY_STRING", r.uri.query().unwrap_or("").to_string());
    p.insert("REMOTE_ADDR", r.remote.ip().to_string());
    p.insert("REMOTE_PORT", r.remote.port().to_string());
    p.insert("SERVER_ADDR", r.local.ip().to_string());
    p.insert("SERVER_PORT", r.local.port().to_string());
    p.insert("SERVER_NAME", server_name.to_string());
    p.insert("REDIRECT_STATUS", "200");
    if let Some(ct) = r.headers.get(http::header::CONTENT_TYPE) {
        p.insert("CONTENT_TYPE", bytes::Bytes::copy_from_slice(ct.as_bytes()));
    }
    if let Some(len) = r.content_length {
        p.insert("CONTENT_LENGTH", len.to_string());
    }
    for name in r.headers.keys() {
        let n = name.as_str();
        if n == "proxy" || n.contains('_') || n == "content-type" || n == "content-length" {
            continue;
        }
        if r.drop_accept_encoding && n == "accept-encoding" {
            continue;
        }
        let separator: &[u8] = if n == "cookie" { b"; " } else { b", " };
        let mut value = Vec::new();
        for (i, v) in r.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(separator);
            }
            value.extend_from_slice(v.as_bytes());
        }
        let mut cgi = String::with_capacity(5 + n.len());
        cgi.push_str("HTTP_");
        cgi.extend(n.chars().map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
        p.insert(cgi, value);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn environment_for_wordpress() {
        let uri: Uri = "/2024/hello/?utm_source=x".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("wp.test:8080"));
        h.insert("proxy", HeaderValue::from_static("http://evil"));
        h.insert("x_forwarded_for", HeaderValue::from_static("1.1.1.1"));
        h.insert("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        h.insert("accept-encoding", HeaderValue::from_static("gzip"));
        let req = CgiRequest {
            method: &Method::GET,
            uri: &uri,
            headers: &h,
            root: Path::new("/srv/blog/"),
            script: "/index.php",
            path_info: "",
            remote: "10.0.0.9:5555".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            https: true,
            content_length: None,
            drop_accept_encoding: true,
        };
        let p = params(&req);
        let get = |k: &str| p.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
        assert_eq!(get("SCRIPT_FILENAME").unwrap(), "/srv/blog/index.php");
        assert_eq!(get("SCRIPT_NAME").unwrap(), "/index.php");
        assert_eq!(get("REQUEST_URI").unwrap(), "/2024/hello/?utm_source=x");
        assert_eq!(get("QUERY_STRING").unwrap(), "utm_source=x");
        assert_eq!(get("HTTP_HOST").unwrap(), "wp.test:8080");
        assert_eq!(get("SERVER_NAME").unwrap(), "wp.test");
        assert_eq!(get("SERVER_PORT").unwrap(), "8080");
        assert_eq!(get("HTTPS").unwrap(), "on");
        assert_eq!(get("REMOTE_ADDR").unwrap(), "10.0.0.9");
        assert_eq!(get("HTTP_COOKIE").unwrap(), "a=1; b=2");
        assert_eq!(get("HTTP_X_FORWARDED_FOR").unwrap(), "2.2.2.2");
        assert_eq!(get("HTTP_PROXY"), None);
        assert_eq!(get("HTTP_ACCEPT_ENCODING"), None);
        assert_eq!(get("PATH_INFO"), None);
    }
}
