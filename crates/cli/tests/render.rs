//! `murakumo render` through the binary: each target writes its files, the
//! rendered edge configuration passes `murakumo check`'s parser, the
//! security settings are present, secrets are created once and kept, and
//! contradictions are refused naming the key (or flag) and writing nothing.

use std::path::Path;
use std::process::Command;

const CONFIG: &str = r#"
[server]
trusted_proxies = ["10.0.0.0/8"]
[[site]]
name = "blog"
hosts = ["blog.example.com"]
root = "/var/www/blog"
php = ["unix:/run/php/php8.2-fpm.sock"]
admin_allow = ["203.0.113.0/24"]
"#;

fn render(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_murakumo"))
        .arg("render")
        .args(args)
        .arg("--config")
        .arg(dir.join("murakumo.toml"))
        .current_dir(dir)
        .output()
        .expect("running murakumo render")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn each_target_renders_hardened_files_and_keeps_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("murakumo.toml"), CONFIG).unwrap();

    let out = render(dir, &["k8s", "--out", "k8s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = read(&dir.join("k8s/base/public.yaml"));
    for needle in [
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "- ALL",
        "type: RuntimeDefault",
        "automountServiceAccountToken: false",
        "path: /readyz",
        "path: /healthz",
        "startupProbe:",
        "maxUnavailable: 0",
        "terminationGracePeriodSeconds: 37",
        "kind: HorizontalPodAutoscaler",
        "kind: PodDisruptionBudget",
        "topologyKey: topology.kubernetes.io/zone",
        "medium: Memory",
    ] {
        assert!(public.contains(needle), "public.yaml lacks {needle:?}");
    }
    let edge = read(&dir.join("k8s/base/edge-public.toml"));
    assert!(edge.contains("purge_fanout = [\"blog-edges.murakumo.svc.cluster.local:9090\"]"));
    murakumo_config::Config::parse(&edge, "edge-public.toml").expect("rendered config is valid");
    assert!(read(&dir.join("k8s/base/galera.yaml")).contains("replicas: 3"));
    let ingress = read(&dir.join("k8s/base/ingress.yaml"));
    assert!(ingress.contains("whitelist-source-range: \"203.0.113.0/24\""));

    let secret = dir.join("k8s/base/secrets/db-password");
    let first = read(&secret);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = render(dir, &["k8s", "--out", "k8s"]);
    assert!(again.status.success());
    assert_eq!(
        read(&secret),
        first,
        "a second render must keep the secrets"
    );

    for (target, file) in [("compose", "compose.yaml"), ("swarm", "stack.yaml")] {
        let out = render(dir, &[target, "--out", target]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = read(&dir.join(target).join(file));
        assert!(text.contains("read_only: true"), "{file}");
        assert!(
            text.contains("/srv/wordpress/content:ro"),
            "{file}: public content read-only"
        );
        assert!(text.contains("stop_grace_period: \"37s\""), "{file}");
    }
    let stack = read(&dir.join("swarm/stack.yaml"));
    for needle in [
        "order: start-first",
        "failure_action: rollback",
        "node.labels.env == user",
        "node.labels.env == admin",
        "spread: node.labels.zone",
    ] {
        assert!(stack.contains(needle), "stack.yaml lacks {needle:?}");
    }
}

#[test]
fn contradictions_are_refused_naming_the_key_and_writing_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("murakumo.toml"), CONFIG).unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["k8s", "--out", "x", "--galera-size", "4"],
            "deploy.db.galera_size (set by --galera-size)",
        ),
        (
            &["swarm", "--out", "x", "--db", "external"],
            "deploy.db.host",
        ),
        (
            &["swarm", "--out", "x", "--db", "galera"],
            "deploy.db.kind (set by --db)",
        ),
    ];
    for (args, key) in cases {
        let out = render(dir, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(key), "{args:?}: {err}");
        assert!(err.contains("murakumo.toml"), "{err}");
    }
    std::fs::write(
        dir.join("murakumo.toml"),
        format!("{CONFIG}\n[deploy]\nstop_grace = \"10s\"\n"),
    )
    .unwrap();
    let out = render(dir, &["k8s", "--out", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("deploy.stop_grace"));
    std::fs::write(
        dir.join("murakumo.toml"),
        CONFIG.replace("trusted_proxies = [\"10.0.0.0/8\"]", ""),
    )
    .unwrap();
    let out = render(dir, &["k8s", "--out", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin_allow"));
    assert!(!dir.join("x").exists(), "a refused render wrote files");
}
