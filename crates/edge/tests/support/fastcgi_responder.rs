//! A FastCGI responder on 127.0.0.1, built on our own record codec: a test
//! double for php-fpm where PHP is not the point (the pipeline's steps,
//! the page cache's decisions). It records what each request carried and
//! answers with what the test's script says. The end-to-end tests in
//! `crates/cli/tests` keep real php-fpm.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use murakumo_fastcgi::params::decode_pairs;
use murakumo_fastcgi::record::{self, FLAG_KEEP_CONN, REQUEST_COMPLETE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request as PHP would have seen it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub params: HashMap<String, String>,
    pub stdin: Vec<u8>,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// What the responder answers: a CGI head (`Status: 200 OK\r\n...`, no
/// blank line) and a body, after `delay`.
#[derive(Clone)]
pub struct Reply {
    pub head: String,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// The body's second half comes this long after the first (a page PHP
    /// streams); none: all at once.
    pub pause: Option<Duration>,
}

impl Reply {
    /// A page: status 200, `text/html` (unless `extra` names another
    /// type), and `extra` header lines.
    pub fn page(body: &str, extra: &[&str]) -> Reply {
        let mut head = "Status: 200 OK\r\n".to_string();
        if !extra
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-type:"))
        {
            head.push_str("Content-Type: text/html; charset=UTF-8\r\n");
        }
        for h in extra {
            head.push_str(h);
            head.push_str("\r\n");
        }
        Reply {
            head,
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
            pause: None,
        }
    }

    /// Any status (`"503 Service Unavailable"`), `text/html`, and `extra`
    /// header lines.
    pub fn status(status: &str, body: &str, extra: &[&str]) -> Reply {
        let mut r = Reply::page(body, extra);
        r.head = r.head.replacen("200 OK", status, 1);
        r
    }

    /// The body in two halves, `pause` apart.
    pub fn streamed(mut self, pause: Duration) -> Reply {
        self.pause = Some(pause);
        self
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

pub type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub struct Responder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Responder {
    pub async fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, script.clone(), seen.clone()));
                }
            })
        };
        Responder { addr, seen, task }
    }

    /// The requests received so far, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests received for a `REQUEST_URI`.
    pub fn seen_for(&self, request_uri: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.param("REQUEST_URI") == Some(request_uri))
            .collect()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection: requests one after another while the edge asks
/// to keep it.
async fn serve(mut stream: TcpStream, script: Script, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = BytesMut::new();
    loop {
        let Some((id, keep, request)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        seen.lock().unwrap().push(request.clone());
        let reply = script(&request);
        tokio::time::sleep(reply.delay).await;
        let mut out = BytesMut::new();
        let mut stdout = format!("{}\r\n", reply.head).into_bytes();
        let (first, second) = match reply.pause {
            Some(_) => reply.body.split_at(reply.body.len() / 2),
            None => (&reply.body[..], &[][..]),
        };
        stdout.extend_from_slice(first);
        // Stream records without the empty one that ends the stream.
        put_data(&mut out, id, &stdout);
        if let Some(pause) = reply.pause {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            tokio::time::sleep(pause).await;
            put_data(&mut out, id, second);
        }
        record::put_stream(&mut out, record::STDOUT, id, &[]);
        record::put_end_request(&mut out, id, 0, REQUEST_COMPLETE);
        if stream.write_all(&out).await.is_err() || !keep {
            return;
        }
    }
}

/// STDOUT records for `data`, without the empty record that ends the stream.
fn put_data(out: &mut BytesMut, id: u16, data: &[u8]) {
    for piece in data.chunks(record::MAX_CONTENT_LEN) {
        record::put_header(out, record::STDOUT, id, piece.len());
        out.extend_from_slice(piece);
    }
}

/// Reads records until a request's params and stdin have both ended.
async fn read_request(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<(u16, bool, Seen)> {
    let (mut id, mut keep) = (0, false);
    let (mut params, mut stdin) = (Vec::new(), Vec::new());
    let (mut params_done, mut stdin_done) = (false, false);
    while !(params_done && stdin_done) {
        let rec = loop {
            if let Some(r) = record::decode(buf).ok()? {
                break r;
            }
            if stream.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        };
        match rec.kind {
            record::BEGIN_REQUEST => {
                id = rec.request_id;
                keep = rec.content.get(2).is_some_and(|f| f & FLAG_KEEP_CONN != 0);
            }
            record::PARAMS if rec.content.is_empty() => params_done = true,
            record::PARAMS => params.extend_from_slice(&rec.content),
            record::STDIN if rec.content.is_empty() => stdin_done = true,
            record::STDIN => stdin.extend_from_slice(&rec.content),
            _ => {}
        }
    }
    let params = decode_pairs(&params)
        .ok()?
        .into_iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(&n).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    Some((id, keep, Seen { params, stdin }))
}
