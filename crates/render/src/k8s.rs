//! Kubernetes: a kustomize tree (`kubectl apply -k OUT`). `base/` holds
//! what every site has (the two tiers, storage, Services, NetworkPolicies,
//! the edge configurations and secrets); `components/` one kustomize
//! Component per chosen option (`ingress` or `load-balancer`, `galera`);
//! `OUT/kustomization.yaml` puts them together and sets the namespace, the
//! image and the replica counts (the knobs edited most).
//!
//! Each tier is a Deployment whose pods run the edge and php-fpm side by
//! side (same image, FastCGI over the pod's loopback):
//! - public: nodeAffinity `node_label=public_nodes`, spread over zones and
//!   hosts, read-only root and content, tmp in `emptyDir: Memory`,
//!   autoscaled (HPA) and protected by a PodDisruptionBudget;
//! - admin: on `node_label=admin_nodes`, writes content; its php-fpm is
//!   also a Service (`SITE-admin-php`) so public edges can route admin
//!   paths themselves when they are the entry point (`ingress = "edge"`).
//!
//! Every pod: non-root, all capabilities dropped, no privilege escalation,
//! seccomp RuntimeDefault, no service-account token, resources set,
//! liveness `/healthz`, readiness `/readyz`, a startup probe, and a
//! termination grace longer than the edge's drain. A headless Service over
//! every edge lets a purge reach all replicas. NetworkPolicies let only
//! this site's pods reach php-fpm and the database, and only its edges and
//! labelled scrapers ([`SCRAPER_LABEL`]) reach the ops port.

use serde_json::{json, Value};

use murakumo_config::{DbKind, IngressMode, TlsSource};

use crate::plan::{secs, Plan, Tier};
use murakumo_image as image;

use crate::{edge_config, secrets, yaml, OutFile, RenderError};

const PART_OF: &str = "app.kubernetes.io/part-of";
const COMPONENT: &str = "app.kubernetes.io/component";
const INSTANCE: &str = "app.kubernetes.io/instance";
/// Pods whose container runs the edge (purge fan-out, probes).
const EDGE_LABEL: &str = "murakumo.dev/edge";
/// A Galera node's ports: clients, state transfers (SST), replication,
/// incremental state transfers (IST).
const DB_PORTS: [(&str, u16); 4] = [
    ("mysql", 3306),
    ("sst", 4444),
    ("galera", 4567),
    ("ist", 4568),
];

pub fn render(plan: &Plan) -> Result<Vec<OutFile>, RenderError> {
    let mut files = Vec::new();
    let mut base_resources = Vec::new();
    let mut add = |files: &mut Vec<OutFile>, name: &str, docs: Vec<Value>| {
        base_resources.push(name.to_string());
        files.push(yaml_file(
            plan,
            format!("base/{name}"),
            yaml::documents(&docs),
        ));
    };
    add(&mut files, "storage.yaml", vec![content_pvc(plan)]);
    add(
        &mut files,
        "public.yaml",
        vec![
            deployment(plan, Tier::Public),
            tier_service(plan, Tier::Public),
            hpa(plan),
            pdb(plan),
        ],
    );
    add(
        &mut files,
        "admin.yaml",
        vec![
            deployment(plan, Tier::Admin),
            tier_service(plan, Tier::Admin),
            admin_php_service(plan),
        ],
    );
    add(&mut files, "edges.yaml", vec![edges_headless(plan)]);
    add(&mut files, "network-policy.yaml", network_policies(plan));
    files.push(OutFile {
        path: "base/edge-public.toml".into(),
        text: edge_config::render(plan, Tier::Public)?,
    });
    files.push(OutFile {
        path: "base/edge-admin.toml".into(),
        text: edge_config::render(plan, Tier::Admin)?,
    });

    let mut base = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": base_resources,
        "configMapGenerator": [
            { "name": plan.name("edge-public"), "files": ["murakumo.toml=edge-public.toml"] },
            { "name": plan.name("edge-admin"), "files": ["murakumo.toml=edge-admin.toml"] },
        ],
    });
    if plan.deploy.existing_secret.is_none() {
        let files: Vec<String> = secrets::all()
            .into_iter()
            .map(|n| format!("{n}=secrets/{n}"))
            .collect();
        base["secretGenerator"] = json!([{ "name": plan.name("secrets"), "files": files }]);
    }
    files.push(yaml_file(
        plan,
        "base/kustomization.yaml",
        yaml::to_string(&base),
    ));

    // The options, each a kustomize Component with its own resources.
    let mut chosen: Vec<(&str, Vec<Value>)> = Vec::new();
    match plan.deploy.ingress {
        IngressMode::Ingress => chosen.push((
            "ingress",
            vec![ingress(plan, Tier::Public), ingress(plan, Tier::Admin)],
        )),
        IngressMode::Edge => chosen.push(("load-balancer", vec![load_balancer(plan)])),
    }
    if plan.db_kind() == DbKind::Galera {
        let mut docs = galera(plan);
        docs.push(db_network_policy(plan));
        chosen.push(("galera", docs));
    }
    let mut components = Vec::new();
    for (name, docs) in chosen {
        files.push(yaml_file(
            plan,
            format!("components/{name}/{name}.yaml"),
            yaml::documents(&docs),
        ));
        let component = json!({
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "resources": [format!("{name}.yaml")],
        });
        files.push(yaml_file(
            plan,
            format!("components/{name}/kustomization.yaml"),
            yaml::to_string(&component),
        ));
        components.push(format!("components/{name}"));
    }

    let d = &plan.deploy;
    let (image_name, tag) = split_image(&d.image);
    let mut images = json!({ "name": "murakumo", "newName": image_name });
    if let Some(tag) = tag {
        images["newTag"] = json!(tag);
    }
    let top = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": d.namespace,
        "resources": ["namespace.yaml", "base"],
        "components": components,
        "labels": [{ "pairs": { PART_OF: "murakumo", INSTANCE: plan.site.name.to_ascii_lowercase() } }],
        "images": [images],
        "replicas": [
            { "name": plan.name("public"), "count": d.replicas },
            { "name": plan.name("admin"), "count": d.admin_replicas },
        ],
    });
    files.push(yaml_file(
        plan,
        "kustomization.yaml",
        format!(
            "# Build: kubectl kustomize .   Apply: kubectl apply -k .\n{}",
            yaml::to_string(&top)
        ),
    ));
    files.push(yaml_file(
        plan,
        "namespace.yaml",
        yaml::to_string(&namespace(plan)),
    ));
    Ok(files)
}

/// A YAML file of the tree, opened by a line saying where it comes from.
fn yaml_file(plan: &Plan, path: impl Into<std::path::PathBuf>, body: String) -> OutFile {
    OutFile {
        path: path.into(),
        text: format!(
            "# Rendered by `murakumo render k8s` from {}; edit that and render again.\n{body}",
            plan.file
        ),
    }
}

/// `registry/name:tag` → (`registry/name`, `tag`); digests stay whole.
fn split_image(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (image, None),
    }
}

fn labels(plan: &Plan, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "murakumo",
        INSTANCE: plan.site.name.to_ascii_lowercase(),
        COMPONENT: component,
    })
}

fn meta(plan: &Plan, name: String, component: &str) -> Value {
    json!({ "name": name, "labels": labels(plan, component) })
}

fn namespace(plan: &Plan) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": plan.deploy.namespace,
            "labels": {
                // Every pod here meets the "restricted" Pod Security profile.
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    })
}

fn content_pvc(plan: &Plan) -> Value {
    let mut spec = json!({
        "accessModes": ["ReadWriteMany"],
        "resources": { "requests": { "storage": plan.deploy.content_size } },
    });
    if let Some(class) = &plan.deploy.storage_class {
        spec["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(plan, plan.name("content"), "content"),
        "spec": spec,
    })
}

fn secret_name(plan: &Plan) -> String {
    plan.deploy
        .existing_secret
        .clone()
        .unwrap_or_else(|| plan.name("secrets"))
}

fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

fn http_probe(path: &str, period: u32, failures: u32) -> Value {
    json!({
        "httpGet": { "path": path, "port": "ops" },
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    })
}

fn tcp_probe(period: u32, failures: u32) -> Value {
    json!({
        "tcpSocket": { "port": "fastcgi" },
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    })
}

fn deployment(plan: &Plan, tier: Tier) -> Value {
    let d = &plan.deploy;
    let name = plan.name(tier.name());
    let read_only = tier == Tier::Public;
    let nodes = match tier {
        Tier::Public => &d.public_nodes,
        Tier::Admin => &d.admin_nodes,
    };
    let replicas = match tier {
        Tier::Public => d.replicas,
        Tier::Admin => d.admin_replicas,
    };
    let mut pod_labels = labels(plan, tier.name());
    pod_labels[EDGE_LABEL] = json!("true");
    let selector = labels(plan, tier.name());
    let edge_tls = plan.edge_tls() && tier == Tier::Public;
    let mut edge_ports = vec![
        json!({ "name": "http", "containerPort": image::HTTP_PORT }),
        json!({ "name": "ops", "containerPort": image::OPS_PORT }),
    ];
    if edge_tls {
        edge_ports.insert(
            1,
            json!({ "name": "https", "containerPort": image::HTTPS_PORT }),
        );
    }
    let mut edge_mounts = vec![
        json!({ "name": "edge-config", "mountPath": "/etc/murakumo", "readOnly": true }),
        json!({ "name": "secrets", "mountPath": image::SECRETS, "readOnly": true }),
        json!({ "name": "edge-tmp", "mountPath": "/tmp" }),
    ];
    let mut volumes = vec![
        json!({ "name": "edge-config", "configMap": { "name": plan.name(&format!("edge-{}", tier.name())) } }),
        json!({ "name": "secrets", "secret": { "secretName": secret_name(plan), "defaultMode": 0o440 } }),
        // Request bodies beyond 256 KiB are spooled here: disk, bounded.
        json!({ "name": "edge-tmp", "emptyDir": { "sizeLimit": "256Mi" } }),
        json!({ "name": "php-run", "emptyDir": { "medium": "Memory", "sizeLimit": "64Mi" } }),
        json!({ "name": "php-tmp", "emptyDir": { "medium": "Memory", "sizeLimit": "128Mi" } }),
        json!({
            "name": "content",
            "persistentVolumeClaim": { "claimName": plan.name("content"), "readOnly": read_only },
        }),
    ];
    if edge_tls {
        let tls_files = matches!(
            plan.site.tls.as_ref().and_then(|t| t.source()),
            Some(TlsSource::Files { .. })
        );
        if tls_files {
            if let Some(secret) = &d.tls_secret {
                edge_mounts
                    .push(json!({ "name": "tls", "mountPath": image::TLS_DIR, "readOnly": true }));
                volumes.push(json!({ "name": "tls", "secret": { "secretName": secret, "defaultMode": 0o440 } }));
            }
        }
    }
    let edge = json!({
        "name": "edge",
        "image": "murakumo",
        "imagePullPolicy": "Always",
        "args": ["serve", "--config", image::EDGE_CONFIG],
        "ports": edge_ports,
        "env": [{ "name": "MURAKUMO_LOG", "value": "info" }],
        "volumeMounts": edge_mounts,
        "securityContext": container_security(),
        "resources": {
            "requests": { "cpu": "100m", "memory": "128Mi" },
            "limits": { "cpu": "1", "memory": "512Mi" },
        },
        "startupProbe": http_probe("/healthz", 2, 30),
        "livenessProbe": http_probe("/healthz", 10, 3),
        "readinessProbe": http_probe("/readyz", 2, 1),
    });
    // Public edges route admin paths that reach them to the admin pool
    // (the `SITE-admin-php` Service; a NetworkPolicy admits only them).
    let listen = match tier {
        Tier::Admin => format!("0.0.0.0:{}", image::PHP_PORT),
        Tier::Public => format!("127.0.0.1:{}", image::PHP_PORT),
    };
    let (cpu_req, mem_req, cpu_lim, mem_lim) = match tier {
        Tier::Public => ("250m", "256Mi", "2", "1Gi"),
        Tier::Admin => ("500m", "512Mi", "4", "2Gi"),
    };
    let php = json!({
        "name": "php",
        "image": "murakumo",
        "imagePullPolicy": "Always",
        "args": ["php-fpm", "--role", tier.name(), "--listen", listen],
        "ports": [{ "name": "fastcgi", "containerPort": image::PHP_PORT }],
        "env": [
            { "name": image::ENV_DB_HOST, "value": plan.db_host() },
            { "name": image::ENV_DB_NAME, "value": d.db.name },
            { "name": image::ENV_DB_USER, "value": d.db.user },
            { "name": image::ENV_PURGE_URL, "value": format!("http://127.0.0.1:{}/purge", image::OPS_PORT) },
        ],
        "volumeMounts": [
            { "name": "secrets", "mountPath": image::SECRETS, "readOnly": true },
            { "name": "php-run", "mountPath": image::RUN },
            { "name": "php-tmp", "mountPath": "/tmp" },
            { "name": "content", "mountPath": image::CONTENT, "subPath": plan.site.name, "readOnly": read_only },
        ],
        "securityContext": container_security(),
        "resources": {
            "requests": { "cpu": cpu_req, "memory": mem_req },
            "limits": { "cpu": cpu_lim, "memory": mem_lim },
        },
        "startupProbe": tcp_probe(2, 30),
        "livenessProbe": tcp_probe(10, 3),
        "readinessProbe": tcp_probe(5, 2),
    });
    let zone_and_host = |key: &str| {
        json!({
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": { "matchLabels": selector.clone() },
        })
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(plan, name, tier.name()),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": { "matchLabels": selector.clone() },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxUnavailable": 0, "maxSurge": 1 },
            },
            "template": {
                "metadata": { "labels": pod_labels },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": secs(plan.stop_grace()),
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": image::UID,
                        "runAsGroup": image::UID,
                        "fsGroup": image::UID,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{ "matchExpressions": [
                            { "key": d.node_label, "operator": "In", "values": [nodes] },
                        ] }],
                    } } },
                    "topologySpreadConstraints": [
                        zone_and_host(&d.zone_label),
                        zone_and_host("kubernetes.io/hostname"),
                    ],
                    "containers": [edge, php],
                    "volumes": volumes,
                },
            },
        },
    })
}

fn tier_service(plan: &Plan, tier: Tier) -> Value {
    let mut ports = vec![json!({ "name": "http", "port": 80, "targetPort": "http" })];
    if plan.edge_tls() && tier == Tier::Public {
        ports.push(json!({ "name": "https", "port": 443, "targetPort": "https" }));
    }
    service(
        plan,
        plan.name(tier.name()),
        tier.name(),
        json!({ "selector": labels(plan, tier.name()), "ports": ports }),
    )
}

/// A Service named `name`, labelled as part of `component`.
fn service(plan: &Plan, name: String, component: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(plan, name, component),
        "spec": spec,
    })
}

fn admin_php_service(plan: &Plan) -> Value {
    service(
        plan,
        plan.name("admin-php"),
        "admin",
        json!({
            "selector": labels(plan, "admin"),
            "ports": [{ "name": "fastcgi", "port": image::PHP_PORT, "targetPort": "fastcgi" }],
        }),
    )
}

/// One DNS record per edge pod, ready or not, for purge fan-out.
fn edges_headless(plan: &Plan) -> Value {
    service(
        plan,
        plan.name("edges"),
        "edges",
        json!({
            "clusterIP": "None",
            // A pod still draining has served pages: purge it too.
            "publishNotReadyAddresses": true,
            "selector": { INSTANCE: plan.site.name.to_ascii_lowercase(), EDGE_LABEL: "true" },
            "ports": [{ "name": "ops", "port": image::OPS_PORT, "targetPort": "ops" }],
        }),
    )
}

fn hpa(plan: &Plan) -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(plan, plan.name("public"), "public"),
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": plan.name("public") },
            "minReplicas": plan.deploy.replicas,
            "maxReplicas": plan.max_replicas(),
            "metrics": [{
                "type": "Resource",
                "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 70 } },
            }],
            "behavior": {
                "scaleDown": { "stabilizationWindowSeconds": 300 },
            },
        },
    })
}

fn pdb(plan: &Plan) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(plan, plan.name("public"), "public"),
        "spec": {
            "maxUnavailable": 1,
            "selector": { "matchLabels": labels(plan, "public") },
        },
    })
}

/// Admin paths: `/wp-admin` and `wp-login.php` (and `xmlrpc.php`, which
/// takes logins too, when the site serves it).
fn admin_paths(plan: &Plan) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![("/wp-admin", "Prefix"), ("/wp-login.php", "Exact")];
    if plan.site.xmlrpc {
        v.push(("/xmlrpc.php", "Exact"));
    }
    v
}

fn ingress(plan: &Plan, tier: Tier) -> Value {
    let d = &plan.deploy;
    let paths: Vec<Value> = match tier {
        Tier::Public => vec![json!({ "path": "/", "pathType": "Prefix",
            "backend": { "service": { "name": plan.name("public"), "port": { "name": "http" } } } })],
        Tier::Admin => admin_paths(plan)
            .into_iter()
            .map(|(path, kind)| json!({ "path": path, "pathType": kind,
                "backend": { "service": { "name": plan.name("admin"), "port": { "name": "http" } } } }))
            .collect(),
    };
    let rules: Vec<Value> = plan
        .site
        .hosts
        .iter()
        .map(|h| json!({ "host": h, "http": { "paths": paths.clone() } }))
        .collect();
    let mut spec = json!({ "rules": rules });
    if let Some(class) = &d.ingress_class {
        spec["ingressClassName"] = json!(class);
    }
    if let Some(secret) = &d.tls_secret {
        spec["tls"] = json!([{ "hosts": plan.site.hosts, "secretName": secret }]);
    }
    let mut metadata = meta(plan, plan.name(tier.name()), tier.name());
    if tier == Tier::Admin {
        if let Some(allow) = &plan.site.admin_allow {
            let ranges: Vec<String> = allow.iter().map(|n| n.to_string()).collect();
            // ingress-nginx's name; the edge enforces admin_allow as well.
            metadata["annotations"] =
                json!({ "nginx.ingress.kubernetes.io/whitelist-source-range": ranges.join(",") });
        }
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    })
}

fn load_balancer(plan: &Plan) -> Value {
    let mut ports = vec![json!({ "name": "http", "port": 80, "targetPort": "http" })];
    if plan.edge_tls() {
        ports.push(json!({ "name": "https", "port": 443, "targetPort": "https" }));
    }
    service(
        plan,
        plan.name("edge"),
        "public",
        json!({
            "type": "LoadBalancer",
            // Keeps the client's address (admin_allow, rate limits).
            "externalTrafficPolicy": "Local",
            "selector": labels(plan, "public"),
            "ports": ports,
        }),
    )
}

/// Pods allowed to read an edge's ops port (`/metrics`, and `/purge` with
/// the token): this site's other edges (purge fan-out) and any pod, in any
/// namespace, labelled `murakumo.dev/metrics-scraper: "true"` (Prometheus).
/// The kubelet's probes come from the node, which a NetworkPolicy never
/// blocks.
pub const SCRAPER_LABEL: &str = "murakumo.dev/metrics-scraper";

fn network_policies(plan: &Plan) -> Vec<Value> {
    let site = plan.site.name.to_ascii_lowercase();
    let pods_of = |component: &str| json!({ "podSelector": { "matchLabels": { INSTANCE: site, COMPONENT: component } } });
    let ops_from = json!({
        "from": [
            { "podSelector": { "matchLabels": { INSTANCE: site, EDGE_LABEL: "true" } } },
            { "namespaceSelector": {}, "podSelector": { "matchLabels": { SCRAPER_LABEL: "true" } } },
        ],
        "ports": [{ "port": image::OPS_PORT }],
    });
    let mut public_ports = vec![json!({ "port": image::HTTP_PORT })];
    if plan.edge_tls() {
        public_ports.push(json!({ "port": image::HTTPS_PORT }));
    }
    vec![
        // Visitors (through the Ingress or the load balancer).
        ingress_policy(
            plan,
            "public",
            vec![json!({ "ports": public_ports }), ops_from.clone()],
        ),
        // The Ingress reaches the admin edge; FastCGI only from this site's
        // public edges.
        ingress_policy(
            plan,
            "admin",
            vec![
                json!({ "ports": [{ "port": image::HTTP_PORT }] }),
                ops_from,
                json!({ "from": [pods_of("public")], "ports": [{ "port": image::PHP_PORT }] }),
            ],
        ),
    ]
}

/// A NetworkPolicy admitting only `rules` into the pods of `component`.
fn ingress_policy(plan: &Plan, component: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(plan, plan.name(component), component),
        "spec": {
            "podSelector": { "matchLabels": labels(plan, component) },
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    })
}

/// Only this site's php pods reach the database; Galera's peers reach each
/// other (replication, state transfers).
fn db_network_policy(plan: &Plan) -> Value {
    let site = plan.site.name.to_ascii_lowercase();
    let pods_of = |component: &str| json!({ "podSelector": { "matchLabels": { INSTANCE: site, COMPONENT: component } } });
    ingress_policy(
        plan,
        "db",
        vec![
            json!({ "from": [pods_of("public"), pods_of("admin")], "ports": [{ "port": 3306 }] }),
            json!({ "from": [pods_of("db")], "ports": DB_PORTS.map(|(_, port)| json!({ "port": port })) }),
        ],
    )
}

/// A MariaDB Galera cluster: a StatefulSet of an odd size, a headless
/// Service for the peers, a Service for clients, a disruption budget that
/// keeps the quorum.
fn galera(plan: &Plan) -> Vec<Value> {
    let d = &plan.deploy;
    let n = d.db.galera_size;
    let name = plan.name("db");
    let peers_svc = plan.name("db-peers");
    let peers: Vec<String> = (0..n).map(|i| format!("{name}-{i}.{peers_svc}")).collect();
    // The first node bootstraps a new cluster only when it has no state;
    // every other start joins the others. The SST password is passed in an
    // option file, never on the command line.
    let start = format!(
        r#"set -eu
ord="${{HOSTNAME##*-}}"
umask 077
printf '[mariadbd]\nwsrep_sst_auth=root:%s\n' "$(cat {secrets}/{root})" > /run/mysqld/sst.cnf
new=""
if [ "$ord" = 0 ] && [ ! -e /var/lib/mysql/grastate.dat ]; then new="--wsrep-new-cluster"; fi
exec docker-entrypoint.sh mariadbd --defaults-extra-file=/run/mysqld/sst.cnf \
  --wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so \
  --wsrep-cluster-name={name} --wsrep-cluster-address=gcomm://{peers} \
  --wsrep-node-address="$(hostname -f)" --wsrep-sst-method=mariabackup \
  --binlog-format=ROW --default-storage-engine=InnoDB --innodb-autoinc-lock-mode=2 $new
"#,
        secrets = image::SECRETS,
        root = image::DB_ROOT_PASSWORD,
        peers = peers.join(","),
    );
    let selector = labels(plan, "db");
    vec![
        service(
            plan,
            peers_svc.clone(),
            "db",
            json!({
                "clusterIP": "None",
                "publishNotReadyAddresses": true,
                "selector": selector,
                "ports": DB_PORTS.map(|(name, port)| json!({ "name": name, "port": port })),
            }),
        ),
        service(
            plan,
            name.clone(),
            "db",
            json!({ "selector": selector, "ports": [{ "name": "mysql", "port": 3306 }] }),
        ),
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(plan, name.clone(), "db"),
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": selector } },
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta(plan, name.clone(), "db"),
            "spec": {
                "serviceName": peers_svc,
                "replicas": n,
                "podManagementPolicy": "OrderedReady",
                "selector": { "matchLabels": selector },
                "template": {
                    "metadata": { "labels": selector },
                    "spec": {
                        "automountServiceAccountToken": false,
                        "enableServiceLinks": false,
                        "terminationGracePeriodSeconds": 120,
                        "securityContext": {
                            "runAsNonRoot": true,
                            // The mariadb image runs as any uid; a high
                            // one shares nothing with the node's accounts.
                            "runAsUser": image::UID,
                            "runAsGroup": image::UID,
                            "fsGroup": image::UID,
                            "seccompProfile": { "type": "RuntimeDefault" },
                        },
                        "affinity": { "podAntiAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": [
                            { "topologyKey": "kubernetes.io/hostname", "labelSelector": { "matchLabels": selector } },
                        ] } },
                        "topologySpreadConstraints": [{
                            "maxSkew": 1,
                            "topologyKey": d.zone_label,
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": { "matchLabels": selector },
                        }],
                        "containers": [{
                            "name": "mariadb",
                            "image": d.db.image,
                            "imagePullPolicy": "Always",
                            "command": ["/bin/sh", "-c", start],
                            "env": [
                                { "name": "MARIADB_DATABASE", "value": d.db.name },
                                { "name": "MARIADB_USER", "value": d.db.user },
                                { "name": "MARIADB_PASSWORD_FILE", "value": format!("{}/{}", image::SECRETS, image::DB_PASSWORD) },
                                { "name": "MARIADB_ROOT_PASSWORD_FILE", "value": format!("{}/{}", image::SECRETS, image::DB_ROOT_PASSWORD) },
                            ],
                            "ports": DB_PORTS.map(|(name, port)| json!({ "name": name, "containerPort": port })),
                            "volumeMounts": [
                                { "name": "data", "mountPath": "/var/lib/mysql" },
                                { "name": "run", "mountPath": "/run/mysqld" },
                                { "name": "tmp", "mountPath": "/tmp" },
                                { "name": "secrets", "mountPath": image::SECRETS, "readOnly": true },
                            ],
                            "securityContext": container_security(),
                            "resources": {
                                "requests": { "cpu": "250m", "memory": "512Mi" },
                                "limits": { "cpu": "2", "memory": "2Gi" },
                            },
                            "startupProbe": db_probe(10, 60),
                            "livenessProbe": db_probe(10, 6),
                            "readinessProbe": {
                                "exec": { "command": ["healthcheck.sh", "--connect", "--galera_online"] },
                                "periodSeconds": 5,
                                "timeoutSeconds": 5,
                                "failureThreshold": 2,
                            },
                        }],
                        "volumes": [
                            { "name": "run", "emptyDir": { "medium": "Memory", "sizeLimit": "16Mi" } },
                            { "name": "tmp", "emptyDir": { "sizeLimit": "1Gi" } },
                            { "name": "secrets", "secret": { "secretName": secret_name(plan), "defaultMode": 0o440 } },
                        ],
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": { "name": "data" },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": { "requests": { "storage": d.db.size } },
                    },
                }],
            },
        }),
    ]
}

fn db_probe(period: u32, failures: u32) -> Value {
    json!({
        "exec": { "command": ["healthcheck.sh", "--connect"] },
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert_eq!(split_image("murakumo:0.1"), ("murakumo", Some("0.1")));
        assert_eq!(
            split_image("registry:5000/murakumo:0.1"),
            ("registry:5000/murakumo", Some("0.1"))
        );
        assert_eq!(
            split_image("registry:5000/murakumo"),
            ("registry:5000/murakumo", None)
        );
        assert_eq!(split_image("m@sha256:ab"), ("m@sha256:ab", None));
    }
}
