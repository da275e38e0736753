//! The running form of a `[[site]]`: its php pools, page cache, guards and
//! database handle, built from configuration and rebuilt on reload (keeping
//! the cache and pools of sites whose settings did not change).

use std::sync::Arc;
use std::time::Duration;

use murakumo_cache::{Coalescer, Decoration, PageCache, Policy};
use murakumo_config::{Config, HostPattern, PhpAddress, Rate};
use murakumo_fastcgi::{Address, Pool, PoolConfig};
use murakumo_shared_cache::SharedCache;

use crate::conn::ConnInfo;
use crate::php::target::PhpTarget;
use crate::php::PhpPool;
use crate::rate_limit::Limiter;
use crate::response::headers::cache_decoration;
use crate::router::Router;

/// What the guards of a site allow ([`crate::pipeline`]'s guard step).
#[derive(Debug, Clone, Default)]
pub struct GuardOptions {
    pub xmlrpc: bool,
    pub admin_allow: Option<Vec<ipnet::IpNet>>,
    pub rules: murakumo_config::Guard,
}

/// The page cache of one site.
pub struct SiteCache {
    pub store: Arc<PageCache>,
    pub coalescer: Arc<Coalescer>,
    pub policy: Policy,
    pub stale: Duration,
    pub max_entry: u64,
    /// What the edge adds to every answer from this cache, built into each
    /// entry's ready heads ([`murakumo_cache::head`]).
    pub decoration: Arc<Decoration>,
    /// The page cache every edge shares (L2), asked on a miss.
    pub shared: Option<SharedCache>,
}

pub struct Site {
    pub name: Arc<str>,
    pub config: murakumo_config::Site,
    pub guard: GuardOptions,
    pub public: Arc<PhpPool>,
    pub admin: Arc<PhpPool>,
    pub cache: Option<Arc<SiteCache>>,
    pub db: Option<mysql_async::Pool>,
    /// `login_limit`: POST /wp-login.php and /xmlrpc.php per client.
    pub login_limiter: Option<Arc<Limiter>>,
    /// `rate_limit`: every request per client.
    pub rate_limiter: Option<Arc<Limiter>>,
}

impl Site {
    /// Where PHP runs `script` for this site: the admin pool for the admin
    /// area, the public one otherwise.
    pub fn php_target<'a>(
        &'a self,
        conn: ConnInfo,
        script: &'a str,
        path_info: &'a str,
        admin: bool,
    ) -> PhpTarget<'a> {
        PhpTarget {
            site: &self.name,
            pool: if admin { &self.admin } else { &self.public },
            root: &self.config.root,
            timeout: self.config.php_timeout,
            conn,
            script,
            path_info,
            hide_users: self.guard.rules.hide_users,
        }
    }
}

/// All sites and the host router over them.
pub struct Sites {
    pub router: Router<Site>,
    pub list: Vec<Arc<Site>>,
}

impl Sites {
    /// Closes every site's idle FastCGI connections past their pool's
    /// `idle_timeout` ([`murakumo_fastcgi::Pool::close_expired`]); how many.
    /// A pool drops them itself when a request comes, but when requests
    /// stop they would stay open, and php-fpm times a kept connection that
    /// waits for its next request as a request running: past its
    /// `request_terminate_timeout` it kills the worker ("execution timed
    /// out"). The server calls this every few seconds.
    pub fn close_idle_php(&self) -> usize {
        self.list
            .iter()
            .flat_map(|site| [&site.public, &site.admin])
            .map(|php| php.pool.close_expired())
            .sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("site {site}: database URL: {message}")]
    Db { site: String, message: String },
    #[error("site {site}: cannot read the database password: {message}")]
    DbPassword { site: String, message: String },
    #[error("site {site}: host: {message}")]
    Host { site: String, message: String },
    #[error("site {site}: {role} php-fpm address: {message}")]
    Php {
        site: String,
        role: &'static str,
        message: String,
    },
}

fn build_pool(
    role: &'static str,
    members: &[String],
    site: &murakumo_config::Site,
) -> Result<Arc<PhpPool>, SiteError> {
    // Validation has refused any address that does not parse (the same
    // parser); one that still did not is an error, never dropped.
    let addresses = members
        .iter()
        .map(|m| match PhpAddress::parse(m) {
            Ok(PhpAddress::Unix(path)) => Ok(Address::Unix(path)),
            Ok(PhpAddress::Tcp(hostport)) => Ok(Address::Tcp(hostport)),
            Err(message) => Err(SiteError::Php {
                site: site.name.clone(),
                role,
                message,
            }),
        })
        .collect::<Result<_, _>>()?;
    let config = PoolConfig {
        max_conns: site.php_max_conns,
        connect_timeout: site.php_connect_timeout,
        queue_timeout: site.php_queue_timeout,
        max_queue: site.php_queue,
        restart_wait: site.php_restart_wait,
        ..PoolConfig::default()
    };
    Ok(Arc::new(PhpPool {
        role,
        pool: Pool::new(addresses, config),
    }))
}

/// A limiter for `rate`, the old one (with its counts) if the rate is the same.
fn limiter(rate: Option<Rate>, old: Option<&Arc<Limiter>>) -> Option<Arc<Limiter>> {
    let rate = rate?;
    match old {
        Some(o) if o.rate == rate => Some(o.clone()),
        _ => Some(Arc::new(Limiter::new(rate))),
    }
}

fn build_db(site: &murakumo_config::Site) -> Result<Option<mysql_async::Pool>, SiteError> {
    let Some(url) = &site.db else { return Ok(None) };
    let opts = mysql_async::Opts::from_url(url.expose()).map_err(|e| SiteError::Db {
        site: site.name.clone(),
        message: e.to_string().replace(url.expose(), &url.redacted()),
    })?;
    let password = if let Some(file) = &site.db_password_file {
        let text = std::fs::read_to_string(file).map_err(|e| SiteError::DbPassword {
            site: site.name.clone(),
            message: format!("{}: {e}", file.display()),
        })?;
        Some(text.lines().next().unwrap_or("").to_string())
    } else if let Some(var) = &site.db_password_env {
        Some(std::env::var(var).map_err(|_| SiteError::DbPassword {
            site: site.name.clone(),
            message: format!("environment variable {var} is not set"),
        })?)
    } else {
        None
    };
    let mut builder = mysql_async::OptsBuilder::from_opts(opts).pool_opts(
        mysql_async::PoolOpts::default()
            .with_constraints(mysql_async::PoolConstraints::new(0, 1).unwrap_or_default()),
    );
    if password.is_some() {
        builder = builder.pass(password);
    }
    Ok(Some(mysql_async::Pool::new(builder)))
}

impl Sites {
    /// No sites (before the first are built).
    pub fn empty() -> Sites {
        Sites {
            router: Router::new(Vec::new()),
            list: Vec::new(),
        }
    }

    /// Builds the sites of `config`, reusing parts of `previous` whose
    /// settings are unchanged; their caches share `shared`.
    pub fn build(
        config: &Config,
        previous: Option<&Sites>,
        shared: Option<&SharedCache>,
    ) -> Result<Sites, SiteError> {
        let mut list = Vec::new();
        for sc in &config.site {
            let old = previous.and_then(|p| p.list.iter().find(|s| s.config.name == sc.name));
            let admin_members = sc.admin_php.as_ref().unwrap_or(&sc.php);
            let same_php = old.is_some_and(|o| {
                o.config.php == sc.php
                    && o.config.php_max_conns == sc.php_max_conns
                    && o.config.php_connect_timeout == sc.php_connect_timeout
                    && o.config.php_queue == sc.php_queue
                    && o.config.php_queue_timeout == sc.php_queue_timeout
            });
            let same_admin = old.is_some_and(|o| o.config.admin_php == sc.admin_php && same_php);
            let public = match old {
                Some(o) if same_php => o.public.clone(),
                _ => build_pool("public", &sc.php, sc)?,
            };
            let admin = match old {
                Some(o) if same_admin => o.admin.clone(),
                _ if sc.admin_php.is_none() => public.clone(),
                _ => build_pool("admin", admin_members, sc)?,
            };
            let c = &sc.cache;
            let cache = c.enabled.then(|| {
                // Keep cached pages across a reload unless the memory bound changed.
                let kept = old
                    .filter(|o| o.config.cache.max_memory == c.max_memory)
                    .and_then(|o| o.cache.as_ref());
                Arc::new(SiteCache {
                    store: kept.map_or_else(
                        || Arc::new(PageCache::new(c.max_memory, c.max_entry_size)),
                        |k| k.store.clone(),
                    ),
                    coalescer: kept
                        .map_or_else(|| Arc::new(Coalescer::new()), |k| k.coalescer.clone()),
                    policy: Policy {
                        ttl: c.ttl,
                        ttl_404: c.not_found_ttl,
                        feeds: c.feeds,
                    },
                    stale: c.stale,
                    max_entry: c.max_entry_size,
                    decoration: Arc::new(cache_decoration(sc.guard.security_headers)),
                    shared: shared.cloned(),
                })
            });
            // Always rebuilt (it is lazy): a reload re-reads a rotated password.
            let db = build_db(sc)?;
            list.push(Arc::new(Site {
                name: sc.name.as_str().into(),
                config: sc.clone(),
                guard: GuardOptions {
                    xmlrpc: sc.xmlrpc,
                    admin_allow: sc.admin_allow.clone(),
                    rules: sc.guard.clone(),
                },
                public,
                admin,
                cache,
                db,
                login_limiter: limiter(
                    sc.login_limit.0,
                    old.and_then(|o| o.login_limiter.as_ref()),
                ),
                rate_limiter: limiter(sc.rate_limit.0, old.and_then(|o| o.rate_limiter.as_ref())),
            }));
        }
        // Validation parsed every host with the same parser; one that does
        // not parse now is an error, never a host silently not served.
        let mut routes = Vec::new();
        for s in &list {
            for h in &s.config.hosts {
                let pattern = HostPattern::parse(h).map_err(|message| SiteError::Host {
                    site: s.config.name.clone(),
                    message,
                })?;
                routes.push((pattern, s.clone()));
            }
        }
        let router = Router::new(routes);
        Ok(Sites { router, list })
    }
}
