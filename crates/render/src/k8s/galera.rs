//! The `galera` component: a MariaDB Galera cluster as a StatefulSet with
//! its Services, for `deploy.db = "galera"`.

use serde_json::{json, Value};

use murakumo_image as image;

use super::{container_security, labels, meta, pod_security, secret_name, service};
use crate::plan::Plan;

/// A Galera node's ports: clients, state transfers (SST), replication,
/// incremental state transfers (IST).
pub(super) const DB_PORTS: [(&str, u16); 4] = [
    ("mysql", 3306),
    ("sst", 4444),
    ("galera", 4567),
    ("ist", 4568),
];

/// A MariaDB Galera cluster: a StatefulSet of an odd size, a headless
/// Service for the peers, a Service for clients, a disruption budget that
/// keeps the quorum.
pub(super) fn galera(plan: &Plan) -> Vec<Value> {
    let name = plan.name("db");
    let peers = plan.name("db-peers");
    let selector = labels(plan, "db");
    vec![
        service(
            plan,
            peers,
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
            "metadata": meta(plan, name, "db"),
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": selector } },
        }),
        stateful_set(plan),
    ]
}

/// The nodes: one pod a host, spread over zones, each with its own volume.
fn stateful_set(plan: &Plan) -> Value {
    let d = &plan.deploy;
    let selector = labels(plan, "db");
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(plan, plan.name("db"), "db"),
        "spec": {
            "serviceName": plan.name("db-peers"),
            "replicas": d.db.galera_size,
            "podManagementPolicy": "OrderedReady",
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": { "labels": selector },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 120,
                    // The mariadb image runs as any uid; a high one shares
                    // nothing with the node's accounts.
                    "securityContext": pod_security(),
                    "affinity": { "podAntiAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": [
                        { "topologyKey": "kubernetes.io/hostname", "labelSelector": { "matchLabels": selector } },
                    ] } },
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": d.zone_label,
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": { "matchLabels": selector },
                    }],
                    "containers": [mariadb(plan)],
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
    })
}

/// One Galera node's container, started by [`start_script`].
fn mariadb(plan: &Plan) -> Value {
    let d = &plan.deploy;
    json!({
        "name": "mariadb",
        "image": d.db.image,
        "imagePullPolicy": "Always",
        "command": ["/bin/sh", "-c", start_script(plan)],
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
    })
}

/// The nodes start as [`crate::galera::start_script`] says: the first is
/// `SITE-db-0`, the peers are the pods by their stable names.
fn start_script(plan: &Plan) -> String {
    let name = plan.name("db");
    let peers_svc = plan.name("db-peers");
    let peers: Vec<String> = (0..plan.deploy.db.galera_size)
        .map(|i| format!("{name}-{i}.{peers_svc}"))
        .collect();
    let me = format!("$(hostname).{peers_svc}");
    crate::galera::start_script(&name, r#"[ "${HOSTNAME##*-}" = 0 ]"#, &peers, &me, &me)
}

fn db_probe(period: u32, failures: u32) -> Value {
    json!({
        "exec": { "command": ["healthcheck.sh", "--connect"] },
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    })
}
