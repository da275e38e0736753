//! HTTP through `curl`, a real client: the response as it saw it.

use std::collections::HashMap;
use std::process::Command;

/// An HTTP response as curl saw it (body not decoded).
#[derive(Debug)]
pub struct Resp {
    /// As on the status line: "HTTP/1.1", "HTTP/2".
    pub version: String,
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }
}

/// Runs curl with `args` (plus the URL) and parses what it got.
pub fn curl(url: &str, args: &[&str]) -> Resp {
    let body = tempfile::NamedTempFile::new().expect("temp file");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D", "-", "-o"])
        .arg(body.path())
        .args(args)
        .arg(url)
        .output()
        .expect("curl is not installed");
    assert!(
        out.status.success(),
        "curl {url} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    // The last header block (after any 100 Continue).
    let block = head
        .trim_end()
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_string();
    let mut lines = block.lines();
    let status_line = lines.next().unwrap_or("");
    let version = status_line
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = HashMap::new();
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            let n = n.trim().to_ascii_lowercase();
            let v = v.trim().to_string();
            headers
                .entry(n)
                .and_modify(|old: &mut String| {
                    old.push_str(", ");
                    old.push_str(&v);
                })
                .or_insert(v);
        }
    }
    Resp {
        version,
        status,
        headers,
        body: std::fs::read(body.path()).unwrap_or_default(),
    }
}
