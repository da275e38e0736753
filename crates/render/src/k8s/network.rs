//! NetworkPolicies: only this site's pods reach php-fpm and the database,
//! only its edges and labelled scrapers reach the ops port.

use serde_json::{json, Value};

use murakumo_image as image;

use super::galera::DB_PORTS;
use super::{labels, meta, COMPONENT, EDGE_LABEL, INSTANCE};
use crate::plan::Plan;

/// Pods allowed to read an edge's ops port (`/metrics`, and `/purge` with
/// the token): this site's other edges (purge fan-out) and any pod, in any
/// namespace, labelled `murakumo.dev/metrics-scraper: "true"` (Prometheus).
/// The kubelet's probes come from the node, which a NetworkPolicy never
/// blocks.
pub const SCRAPER_LABEL: &str = "murakumo.dev/metrics-scraper";

pub(super) fn network_policies(plan: &Plan) -> Vec<Value> {
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
pub(super) fn db_network_policy(plan: &Plan) -> Value {
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
