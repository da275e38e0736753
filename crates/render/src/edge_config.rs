//! The `murakumo.toml` each edge runs inside the target: the user's own
//! file (every limit, cache and guard setting kept as written) with what
//! the target decides rewritten: listen addresses, the php-fpm members,
//! the database URL and secret files, certificates, purge fan-out, who
//! runs wp-cron. The
//! result is checked with the same validation `murakumo serve` applies.

use murakumo_config::{Config, TlsSource};
use toml::{Table, Value};

use murakumo_image as image;

use crate::plan::{Plan, Tier};
use crate::{RenderError, Target};

/// The configuration of the edge of `tier`. On compose and Swarm one edge
/// service fronts both pools ([`Tier::Public`]).
pub fn render(plan: &Plan, tier: Tier) -> Result<String, RenderError> {
    let mut doc = plan.source.clone();
    doc.remove("deploy");
    let server = table(&mut doc, "server");
    server.insert(
        "listen".into(),
        strings([format!("0.0.0.0:{}", image::HTTP_PORT)]),
    );
    server.insert(
        "ops_listen".into(),
        Value::String(format!("0.0.0.0:{}", image::OPS_PORT)),
    );
    server.insert(
        "purge_token_file".into(),
        Value::String(format!("{}/{}", image::SECRETS, image::PURGE_TOKEN)),
    );
    if plan.target != Target::K8s {
        server.insert(
            "handoff".into(),
            Value::String(image::HANDOFF_SOCKET.into()),
        );
    } else {
        server.remove("handoff");
    }
    match fanout(plan) {
        Some(peer) => server.insert("purge_fanout".into(), strings([peer])),
        None => server.remove("purge_fanout"),
    };
    // `deploy.redis`: every edge keeps its pages in the stack's Redis too.
    if plan.deploy.redis {
        let mut shared = Table::new();
        shared.insert(
            "redis".into(),
            Value::String(format!("redis://{}/0", plan.redis_host())),
        );
        shared.insert(
            "password_file".into(),
            Value::String(format!("{}/{}", image::SECRETS, image::REDIS_PASSWORD)),
        );
        server.insert("shared_cache".into(), Value::Table(shared));
    } else {
        server.remove("shared_cache");
    }
    let edge_tls = plan.edge_tls();
    if edge_tls {
        server.insert(
            "tls_listen".into(),
            strings([format!("0.0.0.0:{}", image::HTTPS_PORT)]),
        );
    } else {
        for key in ["tls_listen", "redirect_https", "hsts"] {
            server.remove(key);
        }
    }
    let acme = plan.site.tls.as_ref().and_then(|t| t.source()) == Some(TlsSource::Acme);
    if edge_tls && acme {
        table(&mut doc, "acme").insert("storage".into(), Value::String(image::ACME_DIR.into()));
    } else {
        doc.remove("acme");
    }

    let mut site = plan
        .source
        .get("site")
        .and_then(Value::as_array)
        .and_then(|sites| {
            sites.iter().find_map(|s| {
                let t = s.as_table()?;
                (t.get("name")?.as_str()? == plan.site.name).then(|| t.clone())
            })
        })
        .unwrap_or_default();
    let (php, admin_php) = members(plan, tier);
    site.insert("root".into(), Value::String(image::CORE.into()));
    // The image's pools have this many workers: more connections would
    // wait in php-fpm's queue behind the kept ones (fewer, if asked, is fine).
    let workers = image::PHP_CHILDREN as i64;
    let conns = site
        .get("php_max_conns")
        .and_then(Value::as_integer)
        .map_or(workers, |asked| asked.clamp(1, workers));
    site.insert("php_max_conns".into(), Value::Integer(conns));
    site.insert("php".into(), strings([php]));
    site.insert("admin_php".into(), strings([admin_php]));
    let db = &plan.deploy.db;
    site.insert(
        "db".into(),
        Value::String(format!(
            "mysql://{}@{}/{}",
            db.user,
            plan.db_host(),
            db.name
        )),
    );
    site.insert(
        "db_password_file".into(),
        Value::String(format!("{}/{}", image::SECRETS, image::DB_PASSWORD)),
    );
    site.remove("db_password_env");
    // The image's wp-config.php sets DISABLE_WP_CRON: one edge per site
    // runs wp-cron.php on a clock (the admin edge on Kubernetes, the edge
    // service on compose and Swarm), at the user's interval or every minute.
    let runs_cron = !(plan.target == Target::K8s && tier == Tier::Public);
    if runs_cron {
        site.entry("wp_cron")
            .or_insert_with(|| Value::String("1m".into()));
    } else {
        site.remove("wp_cron");
    }
    if edge_tls {
        if let Some(TlsSource::Files { .. }) = plan.site.tls.as_ref().and_then(|t| t.source()) {
            let dir = match plan.target {
                Target::K8s => image::TLS_DIR,
                Target::Compose | Target::Swarm => image::SECRETS,
            };
            let mut tls = Table::new();
            tls.insert("cert".into(), Value::String(format!("{dir}/tls.crt")));
            tls.insert("key".into(), Value::String(format!("{dir}/tls.key")));
            site.insert("tls".into(), Value::Table(tls));
        }
    } else {
        site.remove("tls");
    }
    doc.insert("site".into(), Value::Array(vec![Value::Table(site)]));

    let body = toml::to_string(&doc).map_err(|e| RenderError::Internal(e.to_string()))?;
    let text = format!(
        "# The edge's configuration ({} tier), rendered by `murakumo render` from\n# {}; edit that file and render again.\n{body}",
        tier.name(),
        plan.file
    );
    Config::parse(&text, "the rendered edge configuration").map_err(|e| RenderError::Invalid {
        file: plan.file.clone(),
        key: "(the edge configuration for the target)".into(),
        message: format!("{e}"),
    })?;
    Ok(text)
}

/// The php-fpm members of the tier's edge: (php, admin_php).
fn members(plan: &Plan, tier: Tier) -> (String, String) {
    let port = image::PHP_PORT;
    match (plan.target, tier) {
        (Target::K8s, Tier::Public) => (
            format!("127.0.0.1:{port}"),
            format!("{}:{port}", plan.name("admin-php")),
        ),
        (Target::K8s, Tier::Admin) => (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")),
        (Target::Compose | Target::Swarm, _) => {
            (format!("php-public:{port}"), format!("php-admin:{port}"))
        }
    }
}

/// Where a purge is passed on: every edge replica, through the
/// orchestrator's own discovery.
fn fanout(plan: &Plan) -> Option<String> {
    match plan.target {
        Target::Compose => None,
        Target::Swarm => Some(format!("tasks.edge:{}", image::OPS_PORT)),
        Target::K8s => Some(format!(
            "{}.{}.svc.cluster.local:{}",
            plan.name("edges"),
            plan.deploy.namespace,
            image::OPS_PORT
        )),
    }
}

fn table<'t>(doc: &'t mut Table, key: &str) -> &'t mut Table {
    let entry = doc
        .entry(key.to_string())
        .or_insert_with(|| Value::Table(Table::new()));
    if !entry.is_table() {
        *entry = Value::Table(Table::new());
    }
    match entry {
        Value::Table(t) => t,
        _ => unreachable!("replaced by a table above"),
    }
}

fn strings<const N: usize>(items: [String; N]) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}
