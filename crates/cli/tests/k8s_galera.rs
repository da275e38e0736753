//! The Galera StatefulSet `murakumo render k8s` writes, its pods run for
//! real. No Kubernetes API runs here and `podman kube play` has no
//! StatefulSet, so the pod template is played on the Docker engine as the
//! StatefulSet would run it: pods `blog-db-0..2` started in order, each
//! waiting for the one before to be ready, with their stable names
//! (`blog-db-N.blog-db-peers`, as the headless Service publishes them, not
//! yet ready included), the rendered command and environment, the
//! template's security settings (read-only root, uid 10001, no
//! capabilities), a volume per pod and the rendered secrets. The first pod
//! bootstraps, the others join; a killed pod restarted on its volume
//! rejoins without a second cluster and with every write.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::docker::{docker, docker_output, render, site_dir, Docker};
use support::wait_until;

const IMAGE: &str = "murakumo:k8s-galera-test";
const DB_IMAGE: &str = concat!("murakumo-mariadb:", env!("CARGO_PKG_VERSION"));
const NETWORK: &str = "mkm-k8s-galera";
const PODS: [&str; 3] = ["blog-db-0", "blog-db-1", "blog-db-2"];
const NEW_CLUSTER: &str = "starting a new cluster";

/// The rendered container's `sh -c` script and its environment.
fn pod_template(galera_yaml: &str) -> (String, Vec<(String, String)>) {
    let lines: Vec<&str> = galera_yaml.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "- \"-c\"")
        .expect("the StatefulSet runs sh -c")
        + 2;
    let indent = lines[start].len() - lines[start].trim_start().len();
    let script: Vec<&str> = lines[start..]
        .iter()
        .take_while(|l| l.len() - l.trim_start().len() >= indent || l.trim().is_empty())
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect();
    let mut env = Vec::new();
    let mut name = None;
    for l in &lines[start + script.len()..] {
        let t = l.trim();
        if let Some(n) = t.strip_prefix("- name: ") {
            name = Some(n.to_string());
        } else if let (Some(v), Some(n)) = (t.strip_prefix("value: "), name.take()) {
            env.push((n, v.trim_matches('"').to_string()));
        } else if t.starts_with("ports:") {
            break;
        }
    }
    (script.join("\n"), env)
}

/// The rendered secrets, readable by the pods' uid (Kubernetes mounts
/// them 0440 with the pod's group).
fn secrets_for_pods(rendered: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    for f in ["db-password", "db-root-password"] {
        let to = into.join(f);
        std::fs::copy(rendered.join(f), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o440)).unwrap();
        std::os::unix::fs::chown(&to, Some(10001), Some(10001)).unwrap();
    }
    std::fs::set_permissions(into, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The pods, removed with their network and volumes when dropped.
struct Pods;

impl Pods {
    fn remove() {
        for p in PODS {
            let _ = docker_output(&["rm", "-f", p]);
            for v in ["data", "run"] {
                let _ = docker_output(&["volume", "rm", "-f", &format!("{p}-{v}")]);
            }
        }
        let _ = docker_output(&["network", "rm", NETWORK]);
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        Pods::remove();
    }
}

fn start_pod(pod: &str, script: &str, env: &[(String, String)], secrets: &Path) {
    let mut args: Vec<String> = [
        "run",
        "-d",
        // The image was built here; no registry is ever asked.
        "--pull",
        "never",
        "--name",
        pod,
        "--hostname",
        pod,
        "--network",
        NETWORK,
        "--network-alias",
        &format!("{pod}.blog-db-peers"),
        "--read-only",
        "--user",
        "10001:10001",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        // The template's emptyDirs: /run/mysqld as a volume (it takes the
        // image's owner, as an emptyDir takes the pod's fsGroup; Docker's
        // tmpfs here would be root's 0755), /tmp as a tmpfs (the image's
        // /tmp is 1777, which the tmpfs takes).
        "-v",
        &format!("{pod}-run:/run/mysqld"),
        "--tmpfs",
        "/tmp",
        "-v",
        &format!("{pod}-data:/var/lib/mysql"),
        "-v",
        &format!("{}:/run/secrets:ro", secrets.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (k, v) in env {
        args.push("-e".into());
        args.push(format!("{k}={v}"));
    }
    args.extend([
        DB_IMAGE.to_string(),
        "/bin/sh".into(),
        "-c".into(),
        script.to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&args);
}

/// The readiness probe the StatefulSet gives its pods.
fn ready(pod: &str) -> bool {
    docker_output(&[
        "exec",
        pod,
        "healthcheck.sh",
        "--connect",
        "--galera_online",
    ])
    .status
    .success()
}

fn sql(pod: &str, root_pw: &str, query: &str) -> String {
    let out = docker_output(&[
        "exec",
        "-e",
        &format!("MYSQL_PWD={root_pw}"),
        pod,
        "mariadb",
        "-uroot",
        "-N",
        "-B",
        "-e",
        query,
    ]);
    assert!(
        out.status.success(),
        "{pod}: {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn logs(pod: &str) -> String {
    let out = docker_output(&["logs", pod]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn cluster_size(pod: &str, root_pw: &str) -> String {
    sql(pod, root_pw, "SHOW STATUS LIKE 'wsrep_cluster_size'")
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string()
}

#[test]
fn the_kubernetes_galera_pods_bootstrap_once_and_a_killed_pod_rejoins_with_every_write() {
    let engine = Docker::start();
    engine.build_images(IMAGE);
    let tmp = site_dir("murakumo-k8s-galera-", "[deploy.db]\nkind = \"galera\"\n");
    let dir = tmp.path();
    render(dir, "k8s", IMAGE);
    let yaml = std::fs::read_to_string(dir.join("out/components/galera/galera.yaml")).unwrap();
    assert!(yaml.contains(&format!("image: {DB_IMAGE}")), "{yaml}");
    let (script, env) = pod_template(&yaml);
    assert!(
        script.contains("exec docker-entrypoint.sh mariadbd"),
        "{script}"
    );
    assert!(
        env.iter().any(|(k, _)| k == "MARIADB_ROOT_PASSWORD_FILE"),
        "{env:?}"
    );
    let secrets = dir.join("pod-secrets");
    secrets_for_pods(&dir.join("out/base/secrets"), &secrets);
    let root_pw = std::fs::read_to_string(secrets.join("db-root-password")).unwrap();

    // What an interrupted earlier run may have left.
    Pods::remove();
    let pods = Pods;
    docker(&["network", "create", NETWORK]);
    let started = Instant::now();
    for pod in PODS {
        start_pod(pod, &script, &env, &secrets);
        wait_until(
            &format!("{pod} to be ready"),
            Duration::from_secs(300),
            || {
                let running = docker_output(&["inspect", "-f", "{{.State.Running}}", pod]);
                assert!(
                    String::from_utf8_lossy(&running.stdout).trim() == "true",
                    "{pod} stopped:\n{}",
                    logs(pod)
                );
                ready(pod)
            },
        );
    }
    eprintln!(
        "3 pods ready {:.0?} after the first started",
        started.elapsed()
    );
    assert_eq!(cluster_size("blog-db-2", &root_pw), "3");
    let bootstrapped: Vec<&str> = PODS
        .iter()
        .copied()
        .filter(|p| logs(p).contains(NEW_CLUSTER))
        .collect();
    assert_eq!(
        bootstrapped,
        ["blog-db-0"],
        "only the first pod starts a cluster"
    );

    sql(
        "blog-db-1",
        &root_pw,
        "CREATE TABLE wordpress.probe (id INT PRIMARY KEY, note TEXT); INSERT INTO wordpress.probe VALUES (1, 'before')",
    );
    // The first pod killed (its node lost, say) and started again on its
    // volume: it joins the two others, which kept the quorum and the
    // writes made meanwhile.
    let killed = Instant::now();
    docker(&["kill", "blog-db-0"]);
    sql(
        "blog-db-2",
        &root_pw,
        "INSERT INTO wordpress.probe VALUES (2, 'while blog-db-0 was down')",
    );
    docker(&["start", "blog-db-0"]);
    wait_until("blog-db-0 to rejoin", Duration::from_secs(300), || {
        ready("blog-db-0")
    });
    eprintln!(
        "blog-db-0 killed and rejoined after {:.0?}",
        killed.elapsed()
    );
    assert_eq!(
        logs("blog-db-0").matches(NEW_CLUSTER).count(),
        1,
        "the restarted first pod started a second cluster:\n{}",
        logs("blog-db-0")
    );
    assert_eq!(cluster_size("blog-db-0", &root_pw), "3");
    for pod in PODS {
        assert_eq!(
            sql(pod, &root_pw, "SELECT COUNT(*) FROM wordpress.probe"),
            "2",
            "{pod} lacks a write"
        );
    }
    drop(pods);
    drop(engine);
}
