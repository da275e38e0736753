//! `deploy.redis`: the object cache of the php containers and the page
//! cache every edge shares, as a kustomize Component: one Deployment
//! (murakumo's image, `murakumo redis`: nothing saved, so nothing to keep
//! across restarts), its Service, and a NetworkPolicy that admits only
//! this site's tier pods.

use serde_json::{json, Value};

use murakumo_image as image;

use super::workloads::tcp_probe;
use super::{
    container_security, labels, meta, pod_security, secret_name, service, COMPONENT, INSTANCE,
};
use crate::plan::Plan;

pub(super) fn redis(plan: &Plan) -> Vec<Value> {
    vec![deployment(plan), redis_service(plan), network_policy(plan)]
}

fn deployment(plan: &Plan) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(plan, plan.name("redis"), "redis"),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 5,
            "selector": { "matchLabels": labels(plan, "redis") },
            // A cache: the old one goes first, nothing is lost that a
            // render cannot make again.
            "strategy": { "type": "Recreate" },
            "template": {
                "metadata": { "labels": labels(plan, "redis") },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": pod_security(),
                    "containers": [{
                        "name": "redis",
                        "image": "murakumo",
                        "imagePullPolicy": "Always",
                        "args": ["redis"],
                        "ports": [{ "name": "redis", "containerPort": image::REDIS_PORT }],
                        "env": [{ "name": image::ENV_REDIS_MAXMEMORY, "value": "256mb" }],
                        "volumeMounts": [
                            { "name": "secrets", "mountPath": image::SECRETS, "readOnly": true },
                            { "name": "run", "mountPath": image::RUN },
                        ],
                        "securityContext": container_security(),
                        "resources": {
                            "requests": { "cpu": "100m", "memory": "128Mi" },
                            "limits": { "cpu": "1", "memory": "384Mi" },
                        },
                        "startupProbe": tcp_probe("redis", 2, 30),
                        "livenessProbe": tcp_probe("redis", 10, 3),
                        "readinessProbe": tcp_probe("redis", 5, 2),
                    }],
                    "volumes": [
                        // Only the password: the other secrets are not Redis's.
                        { "name": "secrets", "secret": {
                            "secretName": secret_name(plan),
                            "defaultMode": 0o440,
                            "items": [{ "key": image::REDIS_PASSWORD, "path": image::REDIS_PASSWORD }],
                        } },
                        { "name": "run", "emptyDir": { "medium": "Memory", "sizeLimit": "16Mi" } },
                    ],
                },
            },
        },
    })
}

fn redis_service(plan: &Plan) -> Value {
    service(
        plan,
        plan.name("redis"),
        "redis",
        json!({
            "selector": labels(plan, "redis"),
            "ports": [{ "name": "redis", "port": image::REDIS_PORT, "targetPort": "redis" }],
        }),
    )
}

/// Only this site's tier pods (edges and php-fpm) reach Redis.
fn network_policy(plan: &Plan) -> Value {
    let site = plan.site.name.to_ascii_lowercase();
    let pods_of = |component: &str| json!({ "podSelector": { "matchLabels": { INSTANCE: site, COMPONENT: component } } });
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(plan, plan.name("redis"), "redis"),
        "spec": {
            "podSelector": { "matchLabels": labels(plan, "redis") },
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [pods_of("public"), pods_of("admin")],
                "ports": [{ "port": image::REDIS_PORT }],
            }],
        },
    })
}
