//! OCSP stapling: for a certificate whose issuer runs an OCSP responder
//! (its Authority Information Access names one), the edge fetches the
//! signed status and hands it to clients in the handshake, so they need
//! not ask the CA themselves (privacy, speed, and no soft-fail).
//!
//! Written here because no maintained crate fits without pulling a second
//! ASN.1 stack: the request is one fixed DER structure (RFC 6960 §4.1, a
//! SHA-1 CertID, as every responder accepts), and of the response only its
//! status is read; clients verify the signed response themselves, as
//! nginx's default (`ssl_stapling_verify off`) also leaves to them. A
//! response is refreshed every [`REFRESH`] and retried every [`RETRY`]
//! after a failure; a failure never removes the certificate, only leaves
//! it without a staple.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use crate::sni::WeakSlot;

pub const REFRESH: Duration = Duration::from_secs(6 * 3600);
pub const RETRY: Duration = Duration::from_secs(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RESPONSE: usize = 64 << 10;
const OID_OCSP: &str = "1.3.6.1.5.5.7.48.1";

/// Where to ask and what to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub url: String,
    pub request: Vec<u8>,
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// The OCSP query for a chain's leaf, if it names a responder and the
/// chain holds its issuer.
pub fn query(chain: &[CertificateDer<'_>]) -> Option<Query> {
    let (leaf, issuer) = (chain.first()?, chain.get(1)?);
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer).ok()?;
    let url = leaf
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => aia.iter().find_map(|d| {
                match (
                    &d.access_location,
                    d.access_method.to_id_string() == OID_OCSP,
                ) {
                    (GeneralName::URI(u), true) if u.starts_with("http://") => Some(u.to_string()),
                    _ => None,
                }
            }),
            _ => None,
        })?;
    let sha1_alg = der(
        0x30,
        &[0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00],
    );
    let mut cert_id = sha1_alg;
    cert_id.extend(der(0x04, &sha1(issuer.subject().as_raw())));
    cert_id.extend(der(
        0x04,
        &sha1(&issuer.public_key().subject_public_key.data),
    ));
    cert_id.extend(der(0x02, leaf.raw_serial()));
    let request = der(
        0x30,
        &der(0x30, &der(0x30, &der(0x30, &der(0x30, &cert_id)))),
    );
    Some(Query { url, request })
}

/// Checks that a response is `successful` and carries response bytes.
pub fn check_response(resp: &[u8]) -> Result<(), String> {
    // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED,
    //                             responseBytes [0] EXPLICIT ... OPTIONAL }
    let body = match resp {
        [0x30, n, rest @ ..] if *n < 0x80 => rest,
        [0x30, 0x81, _, rest @ ..] => rest,
        [0x30, 0x82, _, _, rest @ ..] => rest,
        _ => return Err("not an OCSP response".into()),
    };
    match body {
        [0x0a, 0x01, 0x00, 0xa0, ..] => Ok(()),
        [0x0a, 0x01, status, ..] => Err(format!("responder status {status} (not successful)")),
        _ => Err("not an OCSP response".into()),
    }
}

/// POSTs the query to its responder (plain HTTP, as OCSP is).
pub async fn fetch(q: &Query) -> Result<Vec<u8>, String> {
    let uri: http::Uri = q.url.parse().map_err(|e| format!("{}: {e}", q.url))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("{}: no host", q.url))?
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let work = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let authority = if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let req = http::Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/ocsp-request")
            .body(Full::new(Bytes::from(q.request.clone())))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("responder answered {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("reading the response: {e}"))?;
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))?
}

/// Keeps `slot`'s certificate stapled while the slot is in use: fetched
/// at once, again every [`REFRESH`], at once after the certificate changes
/// (ACME renewal), every [`RETRY`] after a failure. Returns when the slot
/// is dropped (a reload replaced it).
pub async fn keep_stapled(slot: WeakSlot, name: Arc<str>) {
    // The leaf last dealt with, and when it was stapled (`None`: it names
    // no responder).
    let mut stapled: Option<(CertificateDer<'static>, Option<Instant>)> = None;
    loop {
        let Some(live) = slot.upgrade() else { return };
        let current = live.get();
        drop(live);
        let due = match (&current, &stapled) {
            (None, _) => false, // an ACME slot waiting for its first certificate
            (Some(c), Some((leaf, at))) => {
                c.key.cert[0] != *leaf || at.is_some_and(|t| t.elapsed() >= REFRESH)
            }
            (Some(_), None) => true,
        };
        if let (true, Some(current)) = (due, current) {
            if let Some(q) = query(&current.key.cert) {
                match fetch(&q).await.and_then(|r| check_response(&r).map(|()| r)) {
                    Ok(resp) => {
                        let leaf = current.key.cert[0].clone();
                        if slot.upgrade().is_some_and(|s| s.staple(&leaf, resp)) {
                            tracing::info!(site = %name, responder = %q.url, "OCSP response stapled");
                        }
                        stapled = Some((leaf, Some(Instant::now())));
                    }
                    Err(e) => {
                        tracing::warn!(site = %name, responder = %q.url, error = %e, "OCSP: no response to staple; retrying");
                    }
                }
            } else {
                // No responder: nothing to do until the certificate changes.
                stapled = Some((current.key.cert[0].clone(), None));
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der(0x04, &[0; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = der(0x04, &[0; 300]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn response_status() {
        assert!(check_response(&[0x30, 0x05, 0x0a, 0x01, 0x00, 0xa0, 0x00]).is_ok());
        let e = check_response(&[0x30, 0x03, 0x0a, 0x01, 0x06]).unwrap_err();
        assert!(e.contains("status 6"), "{e}");
        assert!(check_response(b"<html>").is_err());
        assert!(check_response(&[]).is_err());
    }

    #[test]
    fn self_signed_certificates_have_no_responder() {
        let l = crate::self_signed::generate(&["a.test".into()]).unwrap();
        assert!(query(&l.key.cert).is_none());
    }
}
