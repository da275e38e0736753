//! WordPress as its users meet it, in a real browser: a site made by
//! `murakumo up`, then headless Chromium driven by WebDriver
//! (`tests/browser/wordpress.py`: Debian's chromium, chromium-driver and
//! python3-selenium, which `scripts/install-deps --test` installs) logs in,
//! publishes in the block editor, uploads an image, comments as a visitor
//! and approves it, edits the Home template in the site editor, and checks
//! permalinks, a category archive and Site Health. The screenshot of every
//! step is kept in `target/browser-screenshots/` when a step fails.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::free_port;

/// A 1×1 PNG.
const PIXEL: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xfc, 0xcf, 0xc0, 0x50,
    0x0f, 0x00, 0x04, 0x85, 0x01, 0x80, 0x84, 0xa9, 0x8c, 0x21, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn murakumo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_murakumo"))
        .args(args)
        .output()
        .expect("murakumo")
}

#[test]
fn a_new_site_works_in_a_real_browser() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("site");
    let dir_s = dir.to_str().expect("utf-8");
    let (port, ops) = (free_port().to_string(), free_port().to_string());
    let started = Instant::now();
    let up = murakumo(&[
        "up",
        "--dir",
        dir_s,
        "--port",
        &port,
        "--ops-port",
        &ops,
        "--detach",
    ]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let password = std::fs::read_to_string(dir.join("secrets/admin-password")).expect("password");
    let image = tmp.path().join("pixel.png");
    std::fs::write(&image, PIXEL).expect("image");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/browser-screenshots")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/wordpress.py");
    let browsed = Instant::now();
    // Debian's Python, where python3-selenium lives (not whatever `python3`
    // is first on PATH).
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(format!("http://localhost:{port}"))
        .arg(password.trim())
        .arg(&image)
        .arg(&shots)
        .output()
        .expect("/usr/bin/python3 (scripts/install-deps --test installs python3-selenium)");
    let said = String::from_utf8_lossy(&out.stdout);
    println!(
        "{said}browser steps: {:.1} s (site made in {:.1} s)",
        browsed.elapsed().as_secs_f64(),
        (browsed - started).as_secs_f64()
    );
    let _ = murakumo(&["down", "--dir", dir_s]);
    assert!(
        out.status.success(),
        "{said}{}\nscreenshots: {}",
        String::from_utf8_lossy(&out.stderr),
        shots.display()
    );
    assert!(said.contains("all 9 steps passed"), "{said}");
    let _ = std::fs::remove_dir_all(&shots);
}
