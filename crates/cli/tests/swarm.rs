//! End to end on a real Docker Swarm (one node, on this machine): the
//! stack `murakumo render swarm` writes is deployed unchanged from
//! murakumo's own images, WordPress is installed through it, a file
//! uploaded through the admin tier is fetched through the edge, and under a
//! bounded load on 127.0.0.1 a new image is rolled out (php tiers, edge,
//! port keeper), rolled back, a php task and the edge are killed: every
//! request is counted and each phase's losses are printed. The machine is
//! left as it was (stack and volumes removed, a dockerd this test started
//! stopped, a Swarm it made left, its node labels removed); the images stay
//! for the next run.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::docker::{docker, Docker, Stack};
use support::probe::Probe;
use support::wait_until;
use support::wp_admin::WpAdmin;

const STACK: &str = "mkmtest";
const IMAGE: &str = "murakumo:swarm-test-1";
const IMAGE_2: &str = "murakumo:swarm-test-2";
const SERVICES: [&str; 4] = ["portkeeper", "edge", "php-public", "php-admin"];

fn render(dir: &Path, image: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_murakumo"))
        .args(["render", "swarm", "--out", "out", "--image", image])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn http_status(url: &str) -> u16 {
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

#[test]
fn the_rendered_stack_runs_on_a_real_swarm_and_rolls_over_losing_nothing() {
    let mut engine = Docker::start();
    engine.swarm(&["env=user", "zone=a"]);
    engine.build_images(IMAGE);
    engine.derive_image(IMAGE, IMAGE_2, "2");

    let tmp = tempfile::Builder::new()
        .prefix("murakumo-swarm-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    // One node carries both tiers.
    std::fs::write(
        dir.join("murakumo.toml"),
        format!(
            "[[site]]\nname = \"blog\"\nhosts = [\"127.0.0.1\", \"localhost\"]\nroot = \"/srv/wordpress/core\"\nphp = [\"127.0.0.1:9000\"]\n\n[deploy]\nnamespace = \"{STACK}\"\nadmin_nodes = \"user\"\n"
        ),
    )
    .unwrap();
    render(dir, IMAGE);
    let started = Instant::now();
    let stack = Stack::deploy(STACK, &dir.join("out/stack.yaml"));
    stack.converge(&SERVICES, IMAGE, Duration::from_secs(240));
    wait_until(
        "the site to answer through the keeper",
        Duration::from_secs(120),
        || http_status("http://127.0.0.1/") == 302,
    );
    eprintln!("deployed and answering in {:.0?}", started.elapsed());

    // WordPress through the stack; an upload through the admin tier is
    // served by the edge from the content volume.
    // WordPress through the stack; an upload through the admin tier is
    // served by the edge from the content volume.
    WpAdmin::new("http://127.0.0.1", dir)
        .install_and_upload("Swarm test", &dir.join("swarm-upload.png"));

    let mut probe = Probe::site_load();
    std::thread::sleep(Duration::from_secs(3));

    probe.mark("roll out a new image (stack deploy)");
    render(dir, IMAGE_2);
    Stack::redeploy(STACK, &dir.join("out/stack.yaml"));
    stack.converge(&SERVICES, IMAGE_2, Duration::from_secs(300));

    probe.mark("roll back (docker service rollback)");
    for s in SERVICES {
        docker(&["service", "rollback", "--detach", &stack.service(s)]);
    }
    stack.converge(&SERVICES, IMAGE, Duration::from_secs(300));

    probe.mark("kill a php-public task");
    docker(&["kill", &stack.container("php-public")]);
    std::thread::sleep(Duration::from_secs(2));
    stack.converge(&["php-public"], IMAGE, Duration::from_secs(120));

    probe.mark("kill the edge (SIGKILL)");
    let killed = Instant::now();
    docker(&["kill", &stack.container("edge")]);
    std::thread::sleep(Duration::from_secs(1));
    stack.converge(&["edge"], IMAGE, Duration::from_secs(120));
    let back = killed.elapsed();
    std::thread::sleep(Duration::from_secs(3));

    let phases = probe.finish();
    eprintln!(
        "--- requests on 127.0.0.1:80 (40/s, a new connection each: a cached page, an uncached GET, an uncached POST)"
    );
    for p in &phases {
        eprintln!("{p}");
    }
    eprintln!("a killed edge was running again after {back:.1?}");
    for p in &phases {
        assert!(p.requests > 10, "{}: too few requests to judge", p.name);
        if p.name.starts_with("kill the edge") {
            // SIGKILL takes the requests the edge was serving with it (at
            // most one per probe thread); every later one waits for the new
            // edge in the keeper's queue and is answered.
            assert!(
                p.failed <= 2 && p.failing_for < Duration::from_secs(1),
                "{p}"
            );
        } else {
            assert_eq!(p.failed, 0, "{p}");
        }
    }
    drop(stack);
    drop(engine);
}
