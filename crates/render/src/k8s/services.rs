//! How traffic reaches the tiers: their Services, the admin php-fpm
//! Service public edges route to, the headless Service over every edge
//! (purge fan-out), and the entry point (Ingresses or a LoadBalancer).

use serde_json::{json, Value};

use murakumo_image as image;

use super::{labels, meta, service, EDGE_LABEL, INSTANCE};
use crate::plan::{Plan, Tier};

pub(super) fn tier_service(plan: &Plan, tier: Tier) -> Value {
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

pub(super) fn admin_php_service(plan: &Plan) -> Value {
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
pub(super) fn edges_headless(plan: &Plan) -> Value {
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

/// Admin paths: `/wp-admin` and `wp-login.php` (and `xmlrpc.php`, which
/// takes logins too, when the site serves it).
fn admin_paths(plan: &Plan) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![("/wp-admin", "Prefix"), ("/wp-login.php", "Exact")];
    if plan.site.xmlrpc {
        v.push(("/xmlrpc.php", "Exact"));
    }
    v
}

pub(super) fn ingress(plan: &Plan, tier: Tier) -> Value {
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

pub(super) fn load_balancer(plan: &Plan) -> Value {
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
