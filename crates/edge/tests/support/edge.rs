//! An edge in this process: `murakumo_edge::serve` on listeners bound to
//! 127.0.0.1:0, a site whose root is a temp dir, stopped by its test.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use murakumo_edge::{serve, Edge, Listeners, ServeError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestEdge {
    pub http: SocketAddr,
    pub ops: SocketAddr,
    pub root: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A document root like WordPress's: a front controller, a stylesheet, a
/// directory, a secret.
fn populate(root: &Path) {
    std::fs::write(root.join("index.php"), "<?php // front controller").unwrap();
    std::fs::write(root.join("wp-config.php"), "<?php // secrets").unwrap();
    std::fs::write(root.join("style.css"), "body { color: teal }\n").unwrap();
    std::fs::create_dir(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
}

impl TestEdge {
    /// An edge for site `site` (hosts `wp.test`) whose PHP is `php`;
    /// `server` and `site` are extra lines of their sections. The site's
    /// lines come last in the file, so they may open its tables
    /// (`[site.cache]`, `[site.guard]`).
    pub async fn start(php: SocketAddr, server: &str, site: &str) -> TestEdge {
        let root = tempfile::tempdir().unwrap();
        populate(root.path());
        let toml = format!(
            r#"
[server]
listen = ["127.0.0.1:1"]
ops_listen = "127.0.0.1:2"
drain_delay = "0s"
grace = "2s"
access_log = false
{server}

[[site]]
name = "site"
hosts = ["wp.test"]
root = "{root}"
php = ["{php}"]
{site}
"#,
            root = root.path().display()
        );
        let path = root.path().join("murakumo.toml");
        let config = murakumo_config::Config::parse(&toml, "murakumo.toml")
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let edge = Arc::new(Edge::new(config, path).expect("edge"));
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, ops_addr) = (http.local_addr().unwrap(), ops.local_addr().unwrap());
        let listeners = Listeners {
            http: vec![http],
            https: Vec::new(),
            ops,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(edge, listeners, async move {
            let _ = stopped.await;
        }));
        TestEdge {
            http: http_addr,
            ops: ops_addr,
            root,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A GET for `target` on host `wp.test` with `headers` (name, value).
    pub async fn get(&self, target: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::GET, target, headers, Bytes::new()).await
    }

    pub async fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(target);
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            req = req.header("host", "wp.test");
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req.body(Full::new(body)).unwrap();
        request(self.http, req).await
    }

    /// A request to the ops listener.
    pub async fn ops(&self, method: Method, target: &str) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(target)
            .header("host", "ops")
            .body(Empty::<Bytes>::new())
            .unwrap();
        request(self.ops, req).await
    }

    /// Resolves the shutdown future and waits for `serve` to drain and
    /// return.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Bytes written as they are on a new connection; everything the edge
/// sends back until it closes.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        c.read_to_end(&mut answer),
    )
    .await;
    answer
}

/// One HTTP/1.1 request on a new connection, the answer read whole.
pub async fn request<B>(addr: SocketAddr, req: Request<B>) -> Answer
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}
