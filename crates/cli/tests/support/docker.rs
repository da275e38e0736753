//! A real Docker engine and a one-node Swarm for the orchestrator tests.
//! The engine is started if it is not running (and stopped by its pid at
//! the end), the Swarm is made on 127.0.0.1 if this machine is in none
//! (and left at the end), the node gets the labels the rendered stack
//! places on (removed at the end); images are built with
//! `scripts/build-image`, whose layers Docker keeps between runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{wait_until, Proc};

pub struct Docker {
    dockerd: Option<Proc>,
    swarm_made: bool,
    labels_added: Vec<String>,
    node: String,
    _dir: tempfile::TempDir,
}

/// Runs `docker ARGS`; its output, or a panic naming what failed.
pub fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "docker {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker is not installed (scripts/install-deps --test installs docker.io)")
}

impl Docker {
    /// The engine, started when it is not running.
    pub fn start() -> Docker {
        let dir = tempfile::Builder::new()
            .prefix("murakumo-docker-")
            .tempdir()
            .unwrap();
        let mut dockerd = None;
        if !docker_output(&["info"]).status.success() {
            let mut cmd = Command::new("dockerd");
            cmd.args(["--data-root", "/var/lib/docker"]);
            dockerd = Some(Proc::spawn(
                "dockerd",
                &mut cmd,
                &dir.path().join("dockerd.log"),
            ));
            wait_until("dockerd to answer", Duration::from_secs(60), || {
                docker_output(&["info"]).status.success()
            });
        }
        Docker {
            dockerd,
            swarm_made: false,
            labels_added: Vec::new(),
            node: String::new(),
            _dir: dir,
        }
    }

    /// A Swarm this node manages, with `labels` ("key=value") on the node.
    pub fn swarm(&mut self, labels: &[&str]) {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if state != "active" {
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
            self.swarm_made = true;
        }
        self.node = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
        let have = docker(&[
            "node",
            "inspect",
            &self.node,
            "--format",
            "{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}} {{end}}",
        ]);
        for label in labels {
            if !have.split_whitespace().any(|l| l == *label) {
                docker(&["node", "update", "--label-add", label, &self.node]);
                self.labels_added
                    .push(label.split('=').next().unwrap().to_string());
            }
        }
    }

    /// Builds murakumo's images (`scripts/build-image`, Docker engine) from
    /// this test's own binary as `image`; the database image is built when
    /// missing.
    pub fn build_images(&self, image: &str) {
        let repo = repo();
        let started = Instant::now();
        let out = Command::new(repo.join("scripts/build-image"))
            .current_dir(&repo)
            .env("ENGINE", "docker")
            .env("IMAGE", image)
            .env("BINARY", env!("CARGO_BIN_EXE_murakumo"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/build-image: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "images built in {:.0?}: {}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }

    /// `base` with one more label: a new image (a new id) with the same
    /// contents, as a release would be.
    pub fn derive_image(&self, base: &str, image: &str, generation: &str) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Containerfile"),
            format!("FROM {base}\nLABEL dev.murakumo.test-generation=\"{generation}\"\n"),
        )
        .unwrap();
        docker(&[
            "build",
            "--quiet",
            "-t",
            image,
            "-f",
            &dir.path().join("Containerfile").display().to_string(),
            &dir.path().display().to_string(),
        ]);
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for key in &self.labels_added {
            let _ = docker_output(&["node", "update", "--label-rm", key, &self.node]);
        }
        if self.swarm_made {
            let _ = docker_output(&["swarm", "leave", "--force"]);
        }
        if let Some(d) = self.dockerd.take() {
            d.signal("TERM");
            let mut d = d;
            let _ = d.wait_exit(Duration::from_secs(30));
        }
    }
}

/// A deployed stack, removed (services, then its volumes) when dropped.
pub struct Stack {
    pub name: String,
}

impl Stack {
    /// Deploys `file` as `name`, after removing what a run that was
    /// stopped half-way may have left of a stack of that name.
    pub fn deploy(name: &str, file: &Path) -> Stack {
        remove_stack(name);
        let stack = Stack {
            name: name.to_string(),
        };
        docker(&["stack", "deploy", "-c", &file.display().to_string(), name]);
        stack
    }

    /// `docker stack deploy` again (an update of the same stack).
    pub fn redeploy(name: &str, file: &Path) {
        docker(&["stack", "deploy", "-c", &file.display().to_string(), name]);
    }

    pub fn service(&self, s: &str) -> String {
        format!("{}_{s}", self.name)
    }

    /// `docker service ps` of the running tasks: (image, state) each.
    pub fn running(&self, service: &str) -> Vec<(String, String)> {
        docker(&[
            "service",
            "ps",
            &self.service(service),
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Image}}\t{{.CurrentState}}",
        ])
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(i, s)| (i.to_string(), s.to_string()))
        .collect()
    }

    /// The container of a running task of `service` on this node.
    pub fn container(&self, service: &str) -> String {
        docker(&[
            "ps",
            "-q",
            "--filter",
            &format!(
                "label=com.docker.swarm.service.name={}",
                self.service(service)
            ),
        ])
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no running container of {service}"))
        .to_string()
    }

    /// Waits until every task of each service runs `image` and no update
    /// is under way; panics with the services' states after `timeout`.
    pub fn converge(&self, services: &[&str], image: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            let mut pending = Vec::new();
            for s in services {
                let update = docker(&[
                    "service",
                    "inspect",
                    &self.service(s),
                    "--format",
                    "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                ]);
                if update.contains("paused") {
                    panic!("{s}: update {update}: {}", self.describe(s));
                }
                let tasks = self.running(s);
                let settled = matches!(update.as_str(), "" | "completed" | "rollback_completed");
                let ok = settled
                    && !tasks.is_empty()
                    && tasks
                        .iter()
                        .all(|(i, st)| i == image && st.starts_with("Running"));
                if !ok {
                    pending.push(format!("{s}: update {update:?}, tasks {tasks:?}"));
                }
            }
            if pending.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "not converged on {image} in {timeout:?}: {pending:?}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Waits until the container of each service reports healthy.
    pub fn healthy(&self, services: &[&str], timeout: Duration) {
        let started = Instant::now();
        for s in services {
            loop {
                let name = format!("label=com.docker.swarm.service.name={}", self.service(s));
                let health = docker(&["ps", "--filter", &name, "--format", "{{.Status}}"]);
                if health.lines().any(|l| l.contains("(healthy)")) {
                    break;
                }
                assert!(
                    started.elapsed() < timeout,
                    "{s} not healthy in {timeout:?}: {health}; {}\n{}",
                    self.describe(s),
                    self.logs(s)
                );
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }

    fn describe(&self, service: &str) -> String {
        docker(&[
            "service",
            "ps",
            &self.service(service),
            "--no-trunc",
            "--format",
            "{{.Name}} {{.Image}} {{.CurrentState}} {{.Error}}",
        ])
    }

    /// The last lines of a service's logs, for a failure's message.
    pub fn logs(&self, service: &str) -> String {
        let out = docker_output(&["service", "logs", "--tail", "40", &self.service(service)]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        remove_stack(&self.name);
    }
}

/// `docker stack rm`, then waits for its containers to go and removes its
/// volumes, secrets and configs.
fn remove_stack(name: &str) {
    {
        let _ = docker_output(&["stack", "rm", name]);
        let label = format!("label=com.docker.stack.namespace={name}");
        let deadline = Instant::now() + Duration::from_secs(120);
        // Containers stop with their grace; the volumes go once they have.
        while Instant::now() < deadline {
            let left = docker_output(&["ps", "-aq", "--filter", &label]);
            if String::from_utf8_lossy(&left.stdout).trim().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        for kind in ["volume", "secret", "config"] {
            let listed = docker_output(&[kind, "ls", "-q", "--filter", &label]);
            for id in String::from_utf8_lossy(&listed.stdout).lines() {
                let _ = docker_output(&[kind, "rm", id]);
            }
        }
        let networks = docker_output(&["network", "ls", "-q", "--filter", &label]);
        for id in String::from_utf8_lossy(&networks.stdout).lines() {
            let _ = docker_output(&["network", "rm", id]);
        }
    }
}

/// A directory with a one-site `murakumo.toml` (hosts 127.0.0.1 and
/// localhost; `root` and `php` are set by render) and `deploy` as its
/// `[deploy]` section.
pub fn site_dir(prefix: &str, deploy: &str) -> tempfile::TempDir {
    let tmp = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::write(
        tmp.path().join("murakumo.toml"),
        format!(
            "[[site]]\nname = \"blog\"\nhosts = [\"127.0.0.1\", \"localhost\"]\nroot = \"/srv/wordpress/core\"\nphp = [\"127.0.0.1:9000\"]\n\n[deploy]\n{deploy}"
        ),
    )
    .unwrap();
    tmp
}

/// `murakumo render TARGET --out out --image IMAGE` in `dir`.
pub fn render(dir: &Path, target: &str, image: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_murakumo"))
        .args(["render", target, "--out", "out", "--image", image])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The status of a GET of `url` (0 when nothing answers).
pub fn http_status(url: &str) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}
