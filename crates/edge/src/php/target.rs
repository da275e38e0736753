//! What a PHP request is sent to: a site's pool (public or admin), its
//! document root, the script and `PATH_INFO` the front-controller rule
//! chose, and the connection that asked. It imports nothing of the sites:
//! a site makes its targets. It builds the two CGI environments, the client's
//! own request ([`PhpTarget::params`]) and a page-cache fill's canonical
//! one ([`PhpTarget::fill_params`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::header;
use http::{HeaderMap, Method};
use murakumo_fastcgi::params::Params;

use super::cgi::{self, CgiRequest};
use super::{exchange, PhpError, PhpPool, SpooledBody, Upstream};
use crate::conn::ConnInfo;

/// Everything needed to send a request to PHP and build its CGI
/// environment (a site makes one: `Site::php_target`).
pub struct PhpTarget<'a> {
    /// The site's name, for logs.
    pub site: &'a Arc<str>,
    /// The site's public or admin pool.
    pub pool: &'a Arc<PhpPool>,
    /// The document root.
    pub root: &'a Path,
    /// How long PHP may take to send its response head.
    pub timeout: Duration,
    pub conn: ConnInfo,
    pub script: &'a str,
    pub path_info: &'a str,
    /// Told to WordPress as `MURAKUMO_HIDE_USERS` (`[site.guard]`).
    pub hide_users: bool,
}

impl PhpTarget<'_> {
    /// Sends a request to the target's pool.
    pub async fn exchange(&self, params: &Params, body: SpooledBody) -> Result<Upstream, PhpError> {
        exchange(self.pool, params, body, self.timeout, self.site.clone()).await
    }

    /// The CGI environment of the client's own request (uncached).
    pub fn params(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        content_length: Option<u64>,
    ) -> Params {
        let mut p = cgi::params(&CgiRequest {
            method,
            request_uri: uri.path_and_query().map_or("/", |pq| pq.as_str()),
            query: uri.query().unwrap_or(""),
            host: headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            headers,
            root: self.root,
            script: self.script,
            path_info: self.path_info,
            remote: self.conn.remote,
            local: self.conn.local,
            server_port: self.conn.local.port(),
            https: self.conn.https,
            content_length,
        });
        self.site_params(&mut p);
        p
    }

    /// The CGI environment of a page-cache fill for `key`: its canonical
    /// request, not the client's ([`cgi::fill_params`]).
    pub fn fill_params(&self, key: &murakumo_cache::CacheKey) -> Params {
        let mut p = cgi::fill_params(
            key,
            &cgi::FillTarget {
                root: self.root,
                script: self.script,
                path_info: self.path_info,
                remote: self.conn.remote,
                local: self.conn.local,
            },
        );
        self.site_params(&mut p);
        p
    }

    /// What the site's configuration tells WordPress (the `murakumo-server`
    /// plugin reads it): whether users are hidden from visitors it does not
    /// know (`[site.guard] hide_users`).
    fn site_params(&self, p: &mut Params) {
        p.insert(
            "MURAKUMO_HIDE_USERS",
            if self.hide_users { "1" } else { "0" },
        );
    }
}
