//! The workloads: the two tiers' Deployments (edge and php-fpm side by
//! side in each pod), the content volume, the public tier's autoscaler and
//! disruption budget, and the probes they use.

use murakumo_config::TlsSource;
use serde_json::{json, Value};

use murakumo_image as image;

use super::{container_security, labels, meta, pod_security, secret_name, EDGE_LABEL};
use crate::plan::{secs, Plan, Tier};

pub(super) fn content_pvc(plan: &Plan) -> Value {
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

fn http_probe(path: &str, period: u32, failures: u32) -> Value {
    json!({
        "httpGet": { "path": path, "port": "ops" },
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    })
}

/// A probe that a connection to the container's port named `port` is
/// accepted.
pub(super) fn tcp_probe(port: &str, period: u32, failures: u32) -> Value {
    json!({
        "tcpSocket": { "port": port },
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    })
}

/// A tier: its pods run the edge and php-fpm side by side, on the tier's
/// nodes, spread over zones and hosts, rolled one at a time.
pub(super) fn deployment(plan: &Plan, tier: Tier) -> Value {
    let d = &plan.deploy;
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
        "metadata": meta(plan, plan.name(tier.name()), tier.name()),
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
                    "securityContext": pod_security(),
                    "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{ "matchExpressions": [
                            { "key": d.node_label, "operator": "In", "values": [nodes] },
                        ] }],
                    } } },
                    "topologySpreadConstraints": [
                        zone_and_host(&d.zone_label),
                        zone_and_host("kubernetes.io/hostname"),
                    ],
                    "containers": [edge_container(plan, tier), php_container(plan, tier)],
                    "volumes": volumes(plan, tier),
                },
            },
        },
    })
}

/// The Secret holding the public edge's certificate files, when it
/// terminates TLS with files (`deploy.tls_secret`).
fn tls_secret<'a>(plan: &'a Plan<'_>, tier: Tier) -> Option<&'a str> {
    let files = matches!(
        plan.site.tls.as_ref().and_then(|t| t.source()),
        Some(TlsSource::Files { .. })
    );
    let edge_tls = plan.edge_tls() && tier == Tier::Public;
    (edge_tls && files)
        .then_some(plan.deploy.tls_secret.as_deref())
        .flatten()
}

/// Whether `tier`'s edges order their certificate over ACME (sharing the
/// orders through Redis: `check` refuses ACME on these edges without it).
/// Their ACME storage is scratch space: the certificate lives in Redis,
/// and a new pod takes it from there.
fn acme(plan: &Plan, tier: Tier) -> bool {
    plan.edge_tls()
        && tier == Tier::Public
        && plan.site.tls.as_ref().and_then(|t| t.source()) == Some(TlsSource::Acme)
}

/// A tier pod's volumes: the edge's configuration and the secrets, bounded
/// scratch space, the content (read-only on the public tier).
fn volumes(plan: &Plan, tier: Tier) -> Vec<Value> {
    let mut volumes = vec![
        json!({ "name": "edge-config", "configMap": { "name": plan.name(&format!("edge-{}", tier.name())) } }),
        json!({ "name": "secrets", "secret": { "secretName": secret_name(plan), "defaultMode": 0o440 } }),
        // Request bodies beyond 256 KiB are spooled here: disk, bounded.
        json!({ "name": "edge-tmp", "emptyDir": { "sizeLimit": "256Mi" } }),
        json!({ "name": "php-run", "emptyDir": { "medium": "Memory", "sizeLimit": "64Mi" } }),
        json!({ "name": "php-tmp", "emptyDir": { "medium": "Memory", "sizeLimit": "128Mi" } }),
        json!({
            "name": "content",
            "persistentVolumeClaim": { "claimName": plan.name("content"), "readOnly": tier == Tier::Public },
        }),
    ];
    if let Some(secret) = tls_secret(plan, tier) {
        volumes.push(
            json!({ "name": "tls", "secret": { "secretName": secret, "defaultMode": 0o440 } }),
        );
    }
    if acme(plan, tier) {
        volumes.push(json!({ "name": "acme", "emptyDir": { "sizeLimit": "16Mi" } }));
    }
    volumes
}

/// The edge: `murakumo serve`, probed on its ops port.
fn edge_container(plan: &Plan, tier: Tier) -> Value {
    let mut ports = vec![
        json!({ "name": "http", "containerPort": image::HTTP_PORT }),
        json!({ "name": "ops", "containerPort": image::OPS_PORT }),
    ];
    if plan.edge_tls() && tier == Tier::Public {
        ports.insert(
            1,
            json!({ "name": "https", "containerPort": image::HTTPS_PORT }),
        );
    }
    let mut mounts = vec![
        json!({ "name": "edge-config", "mountPath": "/etc/murakumo", "readOnly": true }),
        json!({ "name": "secrets", "mountPath": image::SECRETS, "readOnly": true }),
        json!({ "name": "edge-tmp", "mountPath": "/tmp" }),
        // Uploads are files the edge serves: the content, read-only.
        json!({ "name": "content", "mountPath": image::CONTENT, "subPath": plan.site.name, "readOnly": true }),
    ];
    if tls_secret(plan, tier).is_some() {
        mounts.push(json!({ "name": "tls", "mountPath": image::TLS_DIR, "readOnly": true }));
    }
    if acme(plan, tier) {
        mounts.push(json!({ "name": "acme", "mountPath": image::ACME_DIR }));
    }
    json!({
        "name": "edge",
        "image": "murakumo",
        "imagePullPolicy": "Always",
        "args": ["serve", "--config", image::EDGE_CONFIG],
        "ports": ports,
        "env": [{ "name": "MURAKUMO_LOG", "value": "info" }],
        "volumeMounts": mounts,
        "securityContext": container_security(),
        "resources": {
            "requests": { "cpu": "100m", "memory": "128Mi" },
            "limits": { "cpu": "1", "memory": "512Mi" },
        },
        "startupProbe": http_probe("/healthz", 2, 30),
        "livenessProbe": http_probe("/healthz", 10, 3),
        "readinessProbe": http_probe("/readyz", 2, 1),
    })
}

/// php-fpm: `murakumo php-fpm --role TIER`, probed on its FastCGI port.
fn php_container(plan: &Plan, tier: Tier) -> Value {
    let d = &plan.deploy;
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
    let mut env = vec![
        json!({ "name": image::ENV_DB_HOST, "value": plan.db_host() }),
        json!({ "name": image::ENV_DB_NAME, "value": d.db.name }),
        json!({ "name": image::ENV_DB_USER, "value": d.db.user }),
        json!({ "name": image::ENV_PURGE_URL, "value": format!("http://127.0.0.1:{}/purge", image::OPS_PORT) }),
    ];
    if d.redis {
        env.push(
            json!({ "name": image::ENV_REDIS, "value": format!("tcp://{}", plan.redis_host()) }),
        );
    }
    json!({
        "name": "php",
        "image": "murakumo",
        "imagePullPolicy": "Always",
        "args": ["php-fpm", "--role", tier.name(), "--listen", listen],
        "ports": [{ "name": "fastcgi", "containerPort": image::PHP_PORT }],
        "env": env,
        "volumeMounts": [
            { "name": "secrets", "mountPath": image::SECRETS, "readOnly": true },
            { "name": "php-run", "mountPath": image::RUN },
            { "name": "php-tmp", "mountPath": "/tmp" },
            { "name": "content", "mountPath": image::CONTENT, "subPath": plan.site.name, "readOnly": tier == Tier::Public },
        ],
        "securityContext": container_security(),
        "resources": {
            "requests": { "cpu": cpu_req, "memory": mem_req },
            "limits": { "cpu": cpu_lim, "memory": mem_lim },
        },
        "startupProbe": tcp_probe("fastcgi", 2, 30),
        "livenessProbe": tcp_probe("fastcgi", 10, 3),
        "readinessProbe": tcp_probe("fastcgi", 5, 2),
    })
}

pub(super) fn hpa(plan: &Plan) -> Value {
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

pub(super) fn pdb(plan: &Plan) -> Value {
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
