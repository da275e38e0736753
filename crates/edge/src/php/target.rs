//! What a PHP request is sent to: the site and its pool (public or admin),
//! the script and `PATH_INFO` the front-controller rule chose, and the
//! connection that asked. It builds the two CGI environments, the client's
//! own request ([`PhpTarget::params`]) and a page-cache fill's canonical
//! one ([`PhpTarget::fill_params`]).

use std::sync::Arc;

use http::header;
use http::{HeaderMap, Method};
use murakumo_fastcgi::params::Params;

use super::cgi::{self, CgiRequest};
use super::{exchange, PhpError, PhpPool, SpooledBody, Upstream};
use crate::conn::ConnInfo;
use crate::site::Site;

/// Everything needed to build the CGI environment of a request.
pub struct PhpTarget<'a> {
    pub site: &'a Arc<Site>,
    pub conn: ConnInfo,
    pub script: &'a str,
    pub path_info: &'a str,
    /// Runs on the admin pool (wp-admin, wp-login.php, wp-cron.php).
    pub admin: bool,
}

impl PhpTarget<'_> {
    /// Sends a request to the site's pool for this target.
    pub async fn exchange(&self, params: &Params, body: SpooledBody) -> Result<Upstream, PhpError> {
        let site = self.site;
        exchange(
            self.pool(),
            params,
            body,
            site.config.php_timeout,
            site.name.clone(),
        )
        .await
    }

    pub fn pool(&self) -> &Arc<PhpPool> {
        if self.admin {
            &self.site.admin
        } else {
            &self.site.public
        }
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
            root: &self.site.config.root,
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
                root: &self.site.config.root,
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
        let hide = self.site.guard.rules.hide_users;
        p.insert("MURAKUMO_HIDE_USERS", if hide { "1" } else { "0" });
    }
}
