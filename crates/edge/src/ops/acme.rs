//! `POST /acme/renew?site=NAME`: renews a site's ACME certificate now and
//! answers with the outcome: 200 renewed, 404 not an ACME site, 409 another
//! edge of the fleet is ordering it now, 502 the order failed.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use murakumo_tls::acme::RenewError;
use percent_encoding::percent_decode_str;

use crate::response::{plain, Body};
use crate::state::Edge;

/// `POST /acme/renew?site=NAME`: renews now and answers with the outcome.
pub async fn renew(edge: &Edge, req: &Request<Incoming>) -> Response<Body> {
    let Some(acme) = edge.certs.acme() else {
        return plain(StatusCode::NOT_FOUND, "no site uses tls = { acme = true }");
    };
    let site = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("site="))
        .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned());
    let Some(site) = site else {
        return plain(StatusCode::BAD_REQUEST, "say which site: ?site=NAME");
    };
    let serving = || {
        acme.statuses()
            .iter()
            .any(|(name, s)| *name == site && s.not_after.is_some())
    };
    match acme.renew(&site).await {
        Ok(()) => plain(StatusCode::OK, &format!("site {site}: certificate renewed")),
        Err(e @ RenewError::NotAcme(_)) => plain(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ RenewError::Busy) => plain(StatusCode::CONFLICT, &format!("site {site}: {e}")),
        Err(RenewError::Failed(e)) => plain(
            StatusCode::BAD_GATEWAY,
            &format!(
                "site {site}: renewal failed: {e}; {}",
                if serving() {
                    "the current certificate keeps serving"
                } else {
                    "no certificate yet: HTTPS for this site fails"
                }
            ),
        ),
    }
}
