//! docker compose (one host) and Swarm stack files. Both have the same
//! services, one image: `edge` (the murakumo edge: TLS, cache, static
//! files, routing admin paths to the admin pool), `php-public` (read-only:
//! code and content mounted read-only, only tmpfs writable), `php-admin`
//! (writes content: uploads, plugins, themes), `mariadb` (bundled) and
//! optionally `redis`. Secrets are files; the edge's configuration is a
//! `configs:` file. The Swarm file adds `deploy:` (replicas, placement on
//! node labels, spread over zones, start-first rolling updates with
//! automatic rollback) and uses `/healthz` for its healthcheck: Swarm
//! replaces unhealthy tasks, and an edge must not be killed because the
//! database blinked (readiness is for traffic, liveness for restarts).
//!
//! On Swarm the edge publishes its ports in `mode: host`, one edge per
//! node: through the routing mesh every client would appear as a mesh
//! address, so `admin_allow`, rate limits and logs would see the mesh, not
//! the visitor. A balancer (or DNS) in front spreads over the user nodes
//! and follows each edge's `/readyz`; the edge updates stop-first (its
//! port is held until the old task has drained).

use serde_json::{json, Map, Value};

use murakumo_config::{DbKind, TlsSource};

use crate::plan::{secs, Plan, Tier};
use murakumo_image as image;

use crate::{edge_config, secrets, yaml, OutFile, RenderError, Target};

pub fn render(plan: &Plan) -> Result<Vec<OutFile>, RenderError> {
    let swarm = plan.target == Target::Swarm;
    let d = &plan.deploy;
    let mut services = Map::new();
    services.insert("portkeeper".into(), portkeeper(plan));
    services.insert("edge".into(), edge(plan));
    services.insert("php-public".into(), php(plan, Tier::Public));
    services.insert("php-admin".into(), php(plan, Tier::Admin));
    match plan.db_kind() {
        DbKind::Bundled => {
            services.insert("mariadb".into(), mariadb(plan, None));
        }
        DbKind::Galera => {
            for n in 1..=d.db.galera_size {
                services.insert(format!("db-{n}"), mariadb(plan, Some(n)));
            }
        }
        DbKind::External => {}
    }
    if d.redis {
        services.insert("redis".into(), redis(plan));
    }
    let mut volumes = Map::new();
    volumes.insert("content".into(), json!({}));
    volumes.insert("handoff".into(), json!({}));
    match plan.db_kind() {
        DbKind::Bundled => {
            volumes.insert("db".into(), json!({}));
        }
        DbKind::Galera => {
            for n in 1..=d.db.galera_size {
                volumes.insert(format!("db-{n}"), json!({}));
            }
        }
        DbKind::External => {}
    }
    if acme(plan) {
        volumes.insert("acme".into(), json!({}));
    }
    let mut secret_files = Map::new();
    for name in secrets::all() {
        secret_files.insert(name.clone(), json!({ "file": format!("./secrets/{name}") }));
    }
    if plan.edge_tls() && files_tls(plan) {
        for f in ["tls.crt", "tls.key"] {
            secret_files.insert(f.into(), json!({ "file": format!("./tls/{f}") }));
        }
    }
    let edge_config = edge_config::render(plan, Tier::Public)?;
    let mut doc = Map::new();
    if swarm {
        // Docker's CLI (20.10 and later) refuses a stack file without a
        // version; 3.8 has everything used here. compose.yaml has none: a
        // versionless file is the Compose Specification, which compose v1
        // (1.27 and later) and v2 both read, health conditions included.
        doc.insert("version".into(), json!("3.8"));
    }
    doc.insert("services".into(), Value::Object(services));
    doc.insert("volumes".into(), Value::Object(volumes));
    if swarm {
        doc.insert(
            "networks".into(),
            json!({ "host-network": { "external": true, "name": "host" } }),
        );
    }
    doc.insert("secrets".into(), Value::Object(secret_files));
    if swarm {
        // A Swarm config cannot change: named by its content, a changed
        // configuration is a new config and rolls the edges over.
        doc.insert(
            "configs".into(),
            json!({ "edge-config": {
                "name": format!("{}-edge-config-{}", d.namespace, content_id(&edge_config)),
                "file": "./murakumo.edge.toml",
            } }),
        );
    }
    // Compose v1 has no top-level `name:` (the project is named with -p).
    let (file, apply) = if swarm {
        (
            "stack.yaml",
            format!("docker stack deploy -c stack.yaml {}", d.namespace),
        )
    } else {
        (
            "compose.yaml",
            format!(
                "docker-compose -p {0} up -d   (compose v2: docker compose -p {0} up -d)",
                d.namespace
            ),
        )
    };
    let header = format!(
        "# Rendered by `murakumo render {}` from {}; edit that and render again.\n# Apply: {apply}\n",
        if swarm { "swarm" } else { "compose" },
        plan.file,
    );
    Ok(vec![
        OutFile {
            path: file.into(),
            text: format!("{header}{}", yaml::to_string(&Value::Object(doc))),
        },
        OutFile {
            path: "murakumo.edge.toml".into(),
            text: edge_config,
        },
    ])
}

/// A short name for a text's content (the first 10 hex digits of its
/// SHA-256): the same text always gets the same name.
fn content_id(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writable scratch directories (the root file system is read-only), in
/// memory. Swarm drops a service's `tmpfs:` key and cannot set a tmpfs
/// mount's owner or mode, so there they are `type: tmpfs` mounts and the
/// image gives the mount points the mode the mounts inherit (`/tmp` and
/// `/run/murakumo` are 1777 there); compose sets owner and mode itself.
fn scratch(plan: &Plan, service: &mut Map<String, Value>, dirs: &[(&str, u64)]) {
    if plan.target == Target::Swarm {
        let mounts = service
            .entry("volumes")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("volumes is a list");
        for (dir, mib) in dirs {
            mounts.push(json!({ "type": "tmpfs", "target": dir, "tmpfs": { "size": mib << 20 } }));
        }
    } else {
        let list = dirs
            .iter()
            .map(|(dir, mib)| {
                json!(format!(
                    "{dir}:uid={0},gid={0},mode=0700,size={mib}m",
                    image::UID
                ))
            })
            .collect();
        service.insert("tmpfs".into(), Value::Array(list));
    }
}

fn acme(plan: &Plan) -> bool {
    plan.edge_tls() && plan.site.tls.as_ref().and_then(|t| t.source()) == Some(TlsSource::Acme)
}

fn files_tls(plan: &Plan) -> bool {
    matches!(
        plan.site.tls.as_ref().and_then(|t| t.source()),
        Some(TlsSource::Files { .. })
    )
}

/// Settings every murakumo container shares: non-root, no capabilities,
/// read-only root, secrets as files.
fn hardened(plan: &Plan, service: &mut Map<String, Value>) {
    service.insert("image".into(), json!(plan.deploy.image));
    service.insert("user".into(), json!(format!("{0}:{0}", image::UID)));
    service.insert("read_only".into(), json!(true));
    service.insert("cap_drop".into(), json!(["ALL"]));
    if plan.target == Target::Compose {
        // Swarm ignores security_opt; its tasks cannot gain privileges
        // anyway once every capability is dropped and the user is not root.
        service.insert("security_opt".into(), json!(["no-new-privileges:true"]));
        service.insert("restart".into(), json!("unless-stopped"));
    }
}

/// The secrets a murakumo container reads. Swarm mounts them owned by the
/// image's account and readable by it alone; plain compose bind-mounts the
/// files as they are (see `secrets`: render gives them to that account).
fn secret_refs(plan: &Plan, names: &[String]) -> Value {
    let swarm = plan.target == Target::Swarm;
    Value::Array(
        names
            .iter()
            .map(|n| {
                if swarm {
                    let uid = image::UID.to_string();
                    json!({ "source": n, "uid": uid, "gid": uid, "mode": 0o400 })
                } else {
                    json!(n)
                }
            })
            .collect(),
    )
}

fn edge(plan: &Plan) -> Value {
    let swarm = plan.target == Target::Swarm;
    let mut s = Map::new();
    hardened(plan, &mut s);
    s.insert(
        "command".into(),
        json!(["serve", "--config", image::EDGE_CONFIG]),
    );
    // The content volume, read-only: uploads are files the edge serves;
    // the port keeper owns the public ports and hands the connections over
    // on the `handoff` volume's socket (see `portkeeper`).
    let mut volumes = vec![
        content_mount(Tier::Public),
        json!(format!("handoff:{}", image::HANDOFF_DIR)),
    ];
    if swarm {
        s.insert(
            "configs".into(),
            json!([{ "source": "edge-config", "target": image::EDGE_CONFIG, "mode": 0o444 }]),
        );
    } else {
        // Compose v1 ignores `configs:` outside Swarm: a read-only bind.
        volumes.push(json!(format!(
            "./murakumo.edge.toml:{}:ro",
            image::EDGE_CONFIG
        )));
    }
    if acme(plan) {
        volumes.push(json!(format!("acme:{}", image::ACME_DIR)));
    }
    s.insert("volumes".into(), Value::Array(volumes));
    let mut secrets = vec![
        image::DB_PASSWORD.to_string(),
        image::PURGE_TOKEN.to_string(),
    ];
    if plan.deploy.redis {
        secrets.push(image::REDIS_PASSWORD.to_string());
    }
    if plan.edge_tls() && files_tls(plan) {
        secrets.extend(["tls.crt".to_string(), "tls.key".to_string()]);
    }
    s.insert("secrets".into(), secret_refs(plan, &secrets));
    // Request bodies beyond 256 KiB are spooled to /tmp.
    scratch(plan, &mut s, &[("/tmp", 256)]);
    let health = if swarm { "healthz" } else { "readyz" };
    s.insert(
        "healthcheck".into(),
        healthcheck(&format!("http://127.0.0.1:{}/{health}", image::OPS_PORT)),
    );
    s.insert(
        "stop_grace_period".into(),
        json!(format!("{}s", secs(plan.stop_grace()))),
    );
    if swarm {
        // One edge on every public node, beside that node's keeper (a
        // replica count could leave a node's keeper without an edge, or
        // ask for more than there are nodes); the new edge starts first
        // and the old one drains through the keeper.
        let mut deploy = deploy(plan, plan.deploy.replicas, &plan.deploy.public_nodes);
        let map = deploy.as_object_mut().expect("deploy is a map");
        map.remove("replicas");
        map.insert("mode".into(), json!("global"));
        deploy["restart_policy"]["delay"] = json!("1s");
        s.insert("deploy".into(), deploy);
    } else {
        // The keeper first: compose replaces it first in a roll-out, while
        // the old edge can still hold its ports.
        s.insert(
            "depends_on".into(),
            json!({
                "portkeeper": { "condition": "service_started" },
                "php-public": { "condition": "service_healthy" },
                "php-admin": { "condition": "service_healthy" },
            }),
        );
    }
    Value::Object(s)
}

/// The port keeper (`murakumo portkeeper`; on Swarm one per public node),
/// on the host's network so that its listening sockets outlive any
/// container of the stack: it hands every connection to the node's edge
/// over the `handoff` volume's socket, and a new keeper takes the sockets
/// over from the old one (Swarm: start-first), or from the edge the old one
/// parked them with (compose: stop-first). So an edge update, a new image
/// and a killed edge refuse no connection, and the edges see the clients'
/// own addresses (no routing mesh, no port proxy in between) for
/// `admin_allow`, the rate limits and the logs. It starts as root with
/// nothing but the right to bind ports below 1024 and to change its user,
/// and runs as the image's account once its ports are bound.
fn portkeeper(plan: &Plan) -> Value {
    let swarm = plan.target == Target::Swarm;
    let mut s = Map::new();
    hardened(plan, &mut s);
    s.insert("user".into(), json!("0:0"));
    s.insert(
        "cap_add".into(),
        json!(["NET_BIND_SERVICE", "SETUID", "SETGID"]),
    );
    let mut command = vec![json!("portkeeper"), json!("--http"), json!("0.0.0.0:80")];
    if plan.edge_tls() {
        command.extend([json!("--https"), json!("0.0.0.0:443")]);
    }
    command.extend([json!("--socket"), json!(image::HANDOFF_SOCKET)]);
    s.insert("command".into(), Value::Array(command));
    if swarm {
        s.insert("networks".into(), json!(["host-network"]));
    } else {
        s.insert("network_mode".into(), json!("host"));
    }
    s.insert(
        "volumes".into(),
        json!([format!("handoff:{}", image::HANDOFF_DIR)]),
    );
    s.insert("healthcheck".into(), healthcheck("tcp:127.0.0.1:80"));
    s.insert("stop_grace_period".into(), json!("10s"));
    if !swarm {
        return Value::Object(s);
    }
    let mut deploy = deploy(plan, 1, &plan.deploy.public_nodes);
    let map = deploy.as_object_mut().expect("deploy is a map");
    map.remove("replicas");
    // On the host's network there is no service address to resolve.
    map.remove("endpoint_mode");
    map.insert("mode".into(), json!("global"));
    deploy["restart_policy"]["delay"] = json!("1s");
    deploy["resources"] = json!({
        "limits": { "memory": "64M" },
        "reservations": { "memory": "16M" },
    });
    s.insert("deploy".into(), deploy);
    Value::Object(s)
}

fn php(plan: &Plan, tier: Tier) -> Value {
    let swarm = plan.target == Target::Swarm;
    let mut s = Map::new();
    hardened(plan, &mut s);
    s.insert(
        "command".into(),
        json!([
            "php-fpm",
            "--role",
            tier.name(),
            "--listen",
            format!("0.0.0.0:{}", image::PHP_PORT)
        ]),
    );
    let d = &plan.deploy;
    let mut environment = json!({
        image::ENV_DB_HOST: plan.db_host(),
        image::ENV_DB_NAME: d.db.name,
        image::ENV_DB_USER: d.db.user,
        image::ENV_PURGE_URL: format!("http://edge:{}/purge", image::OPS_PORT),
    });
    let mut secrets = image::php_secret_files();
    if d.redis {
        environment[image::ENV_REDIS] = json!(format!("tcp://{}", plan.redis_host()));
        secrets.push(image::REDIS_PASSWORD.to_string());
    }
    s.insert("environment".into(), environment);
    s.insert("secrets".into(), secret_refs(plan, &secrets));
    let read_only = tier == Tier::Public && d.public_read_only;
    let content = if read_only {
        content_mount(Tier::Public)
    } else {
        content_mount(Tier::Admin)
    };
    s.insert("volumes".into(), json!([content]));
    scratch(plan, &mut s, &[(image::RUN, 64), ("/tmp", 256)]);
    s.insert(
        "healthcheck".into(),
        healthcheck(&format!("tcp:127.0.0.1:{}", image::PHP_PORT)),
    );
    s.insert(
        "stop_grace_period".into(),
        json!(format!("{}s", secs(plan.stop_grace()))),
    );
    if swarm {
        let (replicas, nodes) = match tier {
            Tier::Public => (d.replicas, &d.public_nodes),
            Tier::Admin => (d.admin_replicas, &d.admin_nodes),
        };
        s.insert("deploy".into(), deploy(plan, replicas, nodes));
    } else if plan.db_kind() == DbKind::Bundled {
        s.insert(
            "depends_on".into(),
            json!({ "mariadb": { "condition": "service_healthy" } }),
        );
    }
    Value::Object(s)
}

fn healthcheck(url: &str) -> Value {
    json!({
        "test": ["CMD", "murakumo", "probe", url],
        "interval": "5s",
        "timeout": "3s",
        "retries": 3,
        "start_period": "30s",
    })
}

/// The content volume. Docker fills a new, empty named volume from the
/// image's mount point ("copy-up", which also gives its root to the image's
/// account), and two containers doing so at once race (one fails with
/// "file exists"): only the admin tier, which writes the content, copies;
/// the readers mount it read-only and never copy.
fn content_mount(tier: Tier) -> Value {
    match tier {
        Tier::Admin => json!(format!("content:{}", image::CONTENT)),
        Tier::Public => json!({
            "type": "volume",
            "source": "content",
            "target": image::CONTENT,
            "read_only": true,
            "volume": { "nocopy": true },
        }),
    }
}

/// Swarm node labels are plain keys: a Kubernetes-style zone label
/// (topology.kubernetes.io/zone) is written `zone` there.
fn zone_label<'a>(plan: &'a Plan) -> &'a str {
    let zone = plan.deploy.zone_label.as_str();
    if zone.contains('/') {
        "zone"
    } else {
        zone
    }
}

/// Swarm's `deploy:` for a murakumo service.
fn deploy(plan: &Plan, replicas: u32, nodes: &str) -> Value {
    let d = &plan.deploy;
    let zone = zone_label(plan);
    json!({
        "replicas": replicas,
        "endpoint_mode": d.endpoint_mode.as_str(),
        "placement": {
            "constraints": [format!("node.labels.{} == {nodes}", d.node_label)],
            "preferences": [{ "spread": format!("node.labels.{zone}") }],
        },
        "update_config": {
            "parallelism": 1,
            "delay": "5s",
            "order": "start-first",
            "failure_action": "rollback",
            "monitor": "30s",
            "max_failure_ratio": 0,
        },
        "rollback_config": {
            "parallelism": 1,
            "order": "start-first",
            "failure_action": "pause",
            "monitor": "30s",
        },
        "restart_policy": { "condition": "any", "delay": "5s", "window": "60s" },
        "resources": {
            "limits": { "memory": "1G" },
            "reservations": { "memory": "128M" },
        },
    })
}

/// The bundled MariaDB (`node` None), or node `n` of the Galera cluster
/// (Swarm): a service each, `db-N` with its own volume, all answering to
/// the name `db` as well; they start as [`crate::galera::start_script`]
/// says.
fn mariadb(plan: &Plan, node: Option<u32>) -> Value {
    let d = &plan.deploy;
    let mut s = Map::new();
    s.insert("image".into(), json!(d.db.image));
    if let Some(n) = node {
        let peers: Vec<String> = (1..=d.db.galera_size).map(|i| format!("db-{i}")).collect();
        let script = crate::galera::start_script(
            &d.namespace,
            &format!("[ {n} = 1 ]"),
            &peers,
            &format!("db-{n}"),
            "$(hostname -i | cut -d' ' -f1)",
        );
        // Compose files interpolate `$NAME`: `$$` is a dollar.
        s.insert(
            "entrypoint".into(),
            json!(["/bin/sh", "-c", script.replace('$', "$$")]),
        );
        s.insert("hostname".into(), json!(format!("db-{n}")));
        s.insert(
            "networks".into(),
            json!({ "default": { "aliases": ["db"] } }),
        );
    }
    s.insert(
        "environment".into(),
        json!({
            "MARIADB_DATABASE": d.db.name,
            "MARIADB_USER": d.db.user,
            "MARIADB_PASSWORD_FILE": format!("/run/secrets/{}", image::DB_PASSWORD),
            "MARIADB_ROOT_PASSWORD_FILE": format!("/run/secrets/{}", image::DB_ROOT_PASSWORD),
            "MARIADB_AUTO_UPGRADE": "1",
        }),
    );
    s.insert(
        "secrets".into(),
        json!([image::DB_PASSWORD, image::DB_ROOT_PASSWORD]),
    );
    let volume = match node {
        Some(n) => format!("db-{n}"),
        None => "db".into(),
    };
    s.insert(
        "volumes".into(),
        json!([format!("{volume}:/var/lib/mysql")]),
    );
    // A Galera node is healthy once synced with the others (a state
    // transfer may take a while).
    let (check, start) = match node {
        Some(_) => ("--galera_online", "300s"),
        None => ("--innodb_initialized", "60s"),
    };
    s.insert(
        "healthcheck".into(),
        json!({
            "test": ["CMD", "healthcheck.sh", "--connect", check],
            "interval": "5s",
            "timeout": "5s",
            "retries": 5,
            "start_period": start,
        }),
    );
    // InnoDB needs time to flush on stop: never SIGKILL it early.
    s.insert("stop_grace_period".into(), json!("120s"));
    if plan.target == Target::Swarm {
        s.insert(
            "deploy".into(),
            json!({
                "replicas": 1,
                "endpoint_mode": d.endpoint_mode.as_str(),
                "placement": {
                    "constraints": [format!("node.labels.{} == {}", d.node_label, d.admin_nodes)],
                    "preferences": [{ "spread": format!("node.labels.{}", zone_label(plan)) }],
                },
                "update_config": { "order": "stop-first", "failure_action": "rollback" },
                "restart_policy": { "condition": "any", "delay": "10s" },
            }),
        );
    } else {
        s.insert("restart".into(), json!("unless-stopped"));
    }
    Value::Object(s)
}

/// `deploy.redis`: the object cache of the php tiers and the page cache the
/// edges share, from murakumo's image (`murakumo redis`: Debian's
/// redis-server, the password from its secret file, nothing saved, 256 MB
/// with `allkeys-lru`). On the stack's network only: never published.
fn redis(plan: &Plan) -> Value {
    let mut s = Map::new();
    hardened(plan, &mut s);
    s.insert("command".into(), json!(["redis"]));
    s.insert(
        "secrets".into(),
        secret_refs(plan, &[image::REDIS_PASSWORD.to_string()]),
    );
    scratch(plan, &mut s, &[(image::RUN, 16)]);
    s.insert(
        "healthcheck".into(),
        healthcheck(&format!("tcp:127.0.0.1:{}", image::REDIS_PORT)),
    );
    if plan.target == Target::Swarm {
        s.insert(
            "deploy".into(),
            json!({
                "replicas": 1,
                "endpoint_mode": plan.deploy.endpoint_mode.as_str(),
                "restart_policy": { "condition": "any", "delay": "5s" },
                "resources": {
                    "limits": { "memory": "384M" },
                    "reservations": { "memory": "64M" },
                },
            }),
        );
    }
    Value::Object(s)
}
