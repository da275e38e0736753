//! The ceiling for `bench/compare.sh`: the least work a hyper-based edge
//! can do per request on this machine. It answers every request, whatever
//! it asks, with one response read from files at start (the status and
//! headers `curl -D` saved, the body `curl -o` saved): the very bytes an
//! edge sends for a cached page or a static file, with no routing, no
//! lookup, no logging, no metrics. hyper adds `Date` as it does for every
//! hyper server. Per request it clones the prebuilt header map (hyper takes
//! the response by value) and shares the body (`Bytes`, no copy).
//!
//! It speaks HTTP/1.1 on `--listen` and, with `--tls-listen`, `--cert` and
//! `--key`, TLS with ALPN h2 then http/1.1 (rustls on aws-lc-rs, as the
//! edge), on the same tokio multi-threaded runtime and hyper builders'
//! defaults.
//!
//! Usage: ceiling --listen ADDR --head FILE --body FILE
//!                [--tls-listen ADDR --cert PEM --key PEM]
//!
//! A benchmark tool, not part of murakumo.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The one response, shared by every connection.
struct Canned {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Canned {
    fn response(&self) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(self.body.clone()));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// Reads `curl -D` output: the status line, then the headers. Headers
/// hyper writes itself or that describe the connection are left out.
fn parse_head(text: &str, body_len: usize) -> Result<(StatusCode, HeaderMap)> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().ok_or_else(|| anyhow!("empty head file"))?;
    let code = status_line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("no status in {status_line:?}"))?;
    let status = StatusCode::from_bytes(code.as_bytes())
        .with_context(|| format!("bad status in {status_line:?}"))?;
    let mut headers = HeaderMap::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("bad header line {line:?}"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())?;
        if matches!(
            name.as_str(),
            "date" | "connection" | "keep-alive" | "transfer-encoding" | "content-length"
        ) {
            continue;
        }
        headers.append(name, HeaderValue::from_str(value.trim())?);
    }
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body_len));
    Ok((status, headers))
}

fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {cert}"))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {key}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn serve<I>(io: I, canned: Arc<Canned>, h2: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |_req| {
        let r = canned.response();
        async move { Ok::<_, Infallible>(r) }
    });
    let io = TokioIo::new(io);
    // Errors are clients going away at the end of a run.
    let _ = if h2 {
        http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, svc)
            .await
    } else {
        http1::Builder::new().serve_connection(io, svc).await
    };
}

async fn accept_loop(listener: TcpListener, canned: Arc<Canned>, tls: Option<TlsAcceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (canned, tls) = (canned.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve(stream, canned, false).await,
                Some(acceptor) => {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    serve(tls, canned, h2).await
                }
            }
        });
    }
}

struct Args {
    listen: SocketAddr,
    head: String,
    body: String,
    tls: Option<(SocketAddr, String, String)>,
}

fn args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let (mut listen, mut head, mut body) = (None, None, None);
    let (mut tls_listen, mut cert, mut key) = (None, None, None);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse()?),
            "--head" => head = Some(value),
            "--body" => body = Some(value),
            "--tls-listen" => tls_listen = Some(value.parse()?),
            "--cert" => cert = Some(value),
            "--key" => key = Some(value),
            _ => bail!("unknown flag {flag}"),
        }
    }
    let need = |v: Option<String>, f: &str| v.ok_or_else(|| anyhow!("{f} is required"));
    let tls = match (tls_listen, cert, key) {
        (None, None, None) => None,
        (Some(a), Some(c), Some(k)) => Some((a, c, k)),
        _ => bail!("--tls-listen, --cert and --key go together"),
    };
    Ok(Args {
        listen: listen.ok_or_else(|| anyhow!("--listen is required"))?,
        head: need(head, "--head")?,
        body: need(body, "--body")?,
        tls,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let body = Bytes::from(std::fs::read(&args.body).with_context(|| args.body.clone())?);
    let head = std::fs::read_to_string(&args.head).with_context(|| args.head.clone())?;
    let (status, headers) = parse_head(&head, body.len())?;
    let canned = Arc::new(Canned {
        status,
        headers,
        body,
    });
    let plain = TcpListener::bind(args.listen).await?;
    if let Some((addr, cert, key)) = &args.tls {
        let acceptor = tls_acceptor(cert, key)?;
        let listener = TcpListener::bind(addr).await?;
        tokio::spawn(accept_loop(listener, canned.clone(), Some(acceptor)));
    }
    accept_loop(plain, canned, None).await;
    Ok(())
}
