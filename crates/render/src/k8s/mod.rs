//! Kubernetes: a kustomize tree (`kubectl apply -k OUT`). `base/` holds
//! what every site has (the two tiers, storage, Services, NetworkPolicies,
//! the edge configurations and secrets); `components/` one kustomize
//! Component per chosen option (`ingress` or `load-balancer`, `galera`,
//! `redis`);
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

use murakumo_config::{DbKind, IngressMode};

use crate::plan::{Plan, Tier};
use murakumo_image as image;

use crate::{edge_config, secrets, yaml, OutFile, RenderError};

mod galera;
mod network;
mod redis;
mod services;
mod workloads;

use self::galera::galera;
pub use self::network::SCRAPER_LABEL;
use self::network::{db_network_policy, network_policies};
use self::redis::redis;
use self::services::{admin_php_service, edges_headless, ingress, load_balancer, tier_service};
use self::workloads::{content_pvc, deployment, hpa, pdb};

const PART_OF: &str = "app.kubernetes.io/part-of";

const COMPONENT: &str = "app.kubernetes.io/component";

const INSTANCE: &str = "app.kubernetes.io/instance";

/// Pods whose container runs the edge (purge fan-out, probes).
const EDGE_LABEL: &str = "murakumo.dev/edge";

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
    if plan.deploy.redis {
        chosen.push(("redis", redis(plan)));
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

fn secret_name(plan: &Plan) -> String {
    plan.deploy
        .existing_secret
        .clone()
        .unwrap_or_else(|| plan.name("secrets"))
}

/// Pods run as the image's unprivileged user, with the runtime's default
/// seccomp profile.
fn pod_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": image::UID,
        "runAsGroup": image::UID,
        "fsGroup": image::UID,
        "seccompProfile": { "type": "RuntimeDefault" },
    })
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

/// A Service named `name`, labelled as part of `component`.
fn service(plan: &Plan, name: String, component: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(plan, name, component),
        "spec": spec,
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
