//! End to end with docker-compose (Debian's, v1) on this machine's Docker
//! engine: the file `murakumo render compose` writes is started unchanged
//! from murakumo's own images, WordPress is installed through it, a file
//! uploaded through the admin tier is fetched through the edge, and under
//! a bounded load on 127.0.0.1 the site is rolled over to a new image with
//! `docker-compose up -d` (compose replaces every container stop-first, the
//! port keeper included): every request is counted, and none may fail.
//! The project and its volumes are removed at the end; a dockerd this test
//! started is stopped.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::docker::{http_status, render, site_dir, Docker};
use support::probe::Probe;
use support::wait_until;
use support::wp_admin::WpAdmin;

const PROJECT: &str = "mkmcompose";
const IMAGE: &str = "murakumo:compose-test-1";
const IMAGE_2: &str = "murakumo:compose-test-2";

fn compose(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("docker-compose")
        .args(["-p", PROJECT])
        .args(args)
        .current_dir(dir.join("out"))
        .output()
        .expect("docker-compose is not installed (scripts/install-deps --test)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "docker-compose {args:?}: {text}");
    text
}

/// The project, removed with its volumes when dropped (and first, in case
/// a run stopped half-way left it).
struct Project<'a>(&'a Path);

impl<'a> Project<'a> {
    fn new(dir: &'a Path) -> Project<'a> {
        Project(dir).down();
        Project(dir)
    }

    fn down(&self) {
        let _ = Command::new("docker-compose")
            .args(["-p", PROJECT, "down", "-v", "--timeout", "40"])
            .current_dir(self.0.join("out"))
            .output();
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        self.down();
    }
}

#[test]
fn the_rendered_compose_file_runs_on_compose_v1_and_rolls_over() {
    let engine = Docker::start();
    engine.build_images(IMAGE);
    engine.derive_image(IMAGE, IMAGE_2, "2");
    let tmp = site_dir("murakumo-compose-", "");
    let dir = tmp.path();
    render(dir, "compose", IMAGE);
    let _project = Project::new(dir);
    let started = Instant::now();
    compose(dir, &["up", "-d"]);
    wait_until("the site to answer", Duration::from_secs(180), || {
        http_status("http://127.0.0.1/") == 302
    });
    eprintln!("up and answering in {:.0?}", started.elapsed());

    // WordPress through the stack; an upload through the admin tier is
    // served by the edge from the content volume.
    WpAdmin::new("http://127.0.0.1", dir)
        .install_and_upload("Compose test", &dir.join("compose-upload.png"));

    let mut probe = Probe::site_load();
    std::thread::sleep(Duration::from_secs(3));
    probe.mark("roll out a new image (up -d)");
    render(dir, "compose", IMAGE_2);
    let out = compose(dir, &["up", "-d"]);
    assert!(out.contains("Recreating"), "{out}");
    wait_until(
        "the new containers to be healthy",
        Duration::from_secs(180),
        || {
            let ps = compose(dir, &["ps"]);
            ps.matches("(healthy)").count() == 4
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let phases = probe.finish();
    Probe::print(&phases);
    for p in &phases {
        assert!(p.requests > 10, "{}: too few requests to judge", p.name);
        assert_eq!(p.failed, 0, "{p}");
    }
}
