//! What `render` refuses before writing anything: settings that contradict
//! each other or the operational rules the manifests carry (an odd Galera
//! cluster, a stop grace period longer than the drain, a read-only public
//! tier, an admin allowlist that can see the client's address, ...).
//! Each error names the file, the key (or the flag that set it), what is
//! wrong and what would be right.

use murakumo_config::{DbKind, IngressMode, TlsSource};

use crate::plan::{secs, Plan};
use crate::{RenderError, Target};

pub fn check(plan: &Plan) -> Result<(), RenderError> {
    let d = &plan.deploy;
    let err = |key: String, message: String| RenderError::Invalid {
        file: plan.file.clone(),
        key,
        message,
    };
    if d.image.trim().is_empty() || d.image.contains(char::is_whitespace) {
        return Err(err(
            plan.key("deploy.image"),
            format!("{:?} is not an image reference; write e.g. \"registry.example.com/murakumo:0.1.0\"", d.image),
        ));
    }
    if !dns_label(&d.namespace) {
        return Err(err(
            plan.key("deploy.namespace"),
            format!("{:?} is not a DNS label: lowercase letters, digits and '-', at most 63, starting with a letter", d.namespace),
        ));
    }
    if d.replicas == 0 || d.admin_replicas == 0 {
        return Err(err(
            plan.key(if d.replicas == 0 {
                "deploy.replicas"
            } else {
                "deploy.admin_replicas"
            }),
            "is 0; each tier needs at least one replica".into(),
        ));
    }
    if plan.max_replicas() < d.replicas {
        return Err(err(
            plan.key("deploy.max_replicas"),
            format!(
                "{} is below deploy.replicas ({})",
                plan.max_replicas(),
                d.replicas
            ),
        ));
    }
    for (key, value) in [
        ("deploy.node_label", &d.node_label),
        ("deploy.public_nodes", &d.public_nodes),
        ("deploy.admin_nodes", &d.admin_nodes),
        ("deploy.zone_label", &d.zone_label),
    ] {
        if !label_text(value) {
            return Err(err(
                plan.key(key),
                format!("{value:?} is not a label key or value: letters, digits, '-', '_', '.' and one '/'"),
            ));
        }
    }
    let server = &plan.config.server;
    let drain = server.drain_delay + server.grace;
    if plan.stop_grace() <= drain {
        return Err(err(
            plan.key("deploy.stop_grace"),
            format!(
                "{}s is not longer than server.drain_delay + server.grace ({}s): the orchestrator would kill edges still draining; give at least {}s, or shorten the drain",
                secs(plan.stop_grace()),
                secs(drain),
                secs(drain) + 5
            ),
        ));
    }
    if !d.public_read_only && plan.target != Target::Compose {
        return Err(err(
            plan.key("deploy.public_read_only"),
            "is false, but on Swarm and Kubernetes every public replica shares the content volume: a plugin writing files through one public replica (the usual way WordPress sites are compromised) writes them for all. Keep it true; uploads, plugins and themes are written through the admin tier".into(),
        ));
    }
    let db = &d.db;
    match plan.db_kind() {
        DbKind::External => {
            let host = db.host.as_deref().unwrap_or("");
            if host.is_empty() || host.contains(['/', ' ', '@']) {
                return Err(err(
                    plan.key("deploy.db.host"),
                    "names no host; an external database needs host = \"db.example.com\" (or \"host:3306\")".into(),
                ));
            }
        }
        DbKind::Galera => {
            if plan.target == Target::Compose {
                return Err(err(
                    plan.key("deploy.db.kind"),
                    "\"galera\" is a cluster of nodes on several hosts: render it for Swarm or Kubernetes; on compose (one host) use \"bundled\" or \"external\"".into(),
                ));
            }
            if db.galera_size < 3 || db.galera_size.is_multiple_of(2) {
                return Err(err(
                    plan.key("deploy.db.galera_size"),
                    format!(
                        "{} nodes cannot keep a quorum through a failure or a split; give an odd size, at least 3 (3, 5, 7)",
                        db.galera_size
                    ),
                ));
            }
        }
        DbKind::Bundled => {
            if plan.target == Target::K8s {
                return Err(err(
                    plan.key("deploy.db.kind"),
                    "\"bundled\" is one unreplicated container; on Kubernetes use \"galera\" (a StatefulSet of 3) or \"external\" with deploy.db.host".into(),
                ));
            }
        }
    }
    for (key, value) in [("deploy.db.name", &db.name), ("deploy.db.user", &db.user)] {
        if value.is_empty()
            || value.len() > 32
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(err(
                plan.key(key),
                format!("{value:?} must be 1 to 32 letters, digits or '_'"),
            ));
        }
    }
    let ingress = plan.target == Target::K8s && d.ingress == IngressMode::Ingress;
    if ingress && plan.site.admin_allow.is_some() && server.trusted_proxies.is_none() {
        return Err(err(
            format!("{}.admin_allow", site_key(plan)),
            "behind an Ingress every request comes from the ingress controller, so the allowlist would see its address, not the client's; set server.trusted_proxies to the controller's pod network (e.g. [\"10.0.0.0/8\"])".into(),
        ));
    }
    let replicated = plan.target == Target::Swarm || (plan.target == Target::K8s && !ingress);
    if let Some(tls) = &plan.site.tls {
        match tls.source() {
            // Several edges order one certificate together only through
            // the stack's Redis (challenges, the lead, the certificate).
            Some(TlsSource::Acme) if replicated && !d.redis => {
                return Err(err(
                    plan.key("deploy.redis"),
                    format!(
                        "is off, but {}.tls uses acme on several edges: without Redis each would order its own certificate and the CA's challenge could reach another edge; set deploy.redis = true (the edges then share the challenges, one orders, all serve it), or give the edges certificate files{}",
                        site_key(plan),
                        if plan.target == Target::K8s {
                            " (e.g. from cert-manager), or terminate TLS at the Ingress"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            Some(TlsSource::Files { .. })
                if plan.target == Target::K8s && !ingress && d.tls_secret.is_none() =>
            {
                return Err(err(
                    plan.key("deploy.tls_secret"),
                    "is unset, but the edges terminate TLS (ingress = \"edge\"): name the kubernetes.io/tls Secret holding the site's certificate".into(),
                ));
            }
            _ => {}
        }
    }
    if let Some(class) = &d.storage_class {
        if !dns_subdomain(class) {
            return Err(err(
                plan.key("deploy.storage_class"),
                format!("{class:?} is not a storage class name"),
            ));
        }
    }
    for (key, value) in [
        ("deploy.content_size", &d.content_size),
        ("deploy.db.size", &db.size),
    ] {
        if !quantity(value) {
            return Err(err(
                plan.key(key),
                format!("{value:?} is not a size; write e.g. \"10Gi\" or \"500Mi\""),
            ));
        }
    }
    Ok(())
}

fn site_key(plan: &Plan) -> String {
    let i = plan
        .config
        .site
        .iter()
        .position(|s| s.name == plan.site.name)
        .unwrap_or(0);
    format!("site[{i}]")
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn label_text(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 316
        && s.matches('/').count() <= 1
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

/// A Kubernetes quantity such as "10Gi" or "500Mi".
fn quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ["", "Ki", "Mi", "Gi", "Ti", "Pi", "k", "M", "G", "T", "P"].contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        assert!(dns_label("murakumo"));
        assert!(!dns_label("Murakumo"));
        assert!(!dns_label("-x"));
        assert!(!dns_label("1x"));
        assert!(quantity("10Gi"));
        assert!(quantity("500"));
        assert!(!quantity("10 GiB"));
        assert!(!quantity("Gi"));
        assert!(label_text("topology.kubernetes.io/zone"));
        assert!(!label_text("a/b/c"));
        assert!(!label_text("env=user"));
    }
}
