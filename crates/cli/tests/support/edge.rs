//! The murakumo binary as a test's edge, started from a configuration
//! file on free ports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;

/// The murakumo edge, started from a configuration file.
pub struct Edge {
    pub port: u16,
    pub ops_port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    pub proc: Proc,
}

impl Edge {
    /// Starts `murakumo serve` on free ports. `config` may use `{port}` and `{ops_port}`.
    pub fn start(dir: &Path, config: &str) -> Edge {
        let (port, ops_port) = (free_port(), free_port());
        let text = config
            .replace("{port}", &port.to_string())
            .replace("{ops_port}", &ops_port.to_string());
        Edge::start_on(dir, &text, port, ops_port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ops(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ops_port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Edge {
    pub fn start_on(dir: &Path, config: &str, port: u16, ops_port: u16) -> Edge {
        let path = dir.join("murakumo.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.join("edge.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_murakumo"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&path)
            .env("MURAKUMO_LOG", "info");
        let proc = Proc::spawn("murakumo", &mut cmd, &log);
        let mut edge = Edge {
            port,
            ops_port,
            config: path,
            log,
            proc,
        };
        let url = edge.ops("/healthz");
        wait_until("murakumo /healthz", Duration::from_secs(20), || {
            // An edge that exited (a port another test took meanwhile, a
            // bad configuration) says why at once, not after the wait.
            assert!(
                edge.proc.is_running(),
                "murakumo exited while starting: {}",
                edge.log_text()
            );
            Command::new("curl")
                .args(["-sf", "--max-time", "1", &url])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        assert!(
            edge.proc.is_running(),
            "murakumo exited: {}",
            edge.log_text()
        );
        edge
    }
}

/// Another `murakumo serve` on `config` (the same addresses: a successor
/// during a handover), logging to `dir/edge-GENERATION.log`; returns once
/// its log says `ready`.
pub fn another_edge(dir: &Path, config: &Path, generation: u32, ready: &str) -> Proc {
    let log = dir.join(format!("edge-{generation}.log"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_murakumo"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .env("MURAKUMO_LOG", "info");
    let mut p = Proc::spawn("murakumo", &mut cmd, &log);
    wait_until(
        &format!("edge {generation}: {ready:?}"),
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(ready)
        },
    );
    assert!(
        p.is_running(),
        "edge {generation} exited: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    p
}

/// SIGTERM, and a clean exit within 20 s (the drain).
pub fn stop_drained(mut p: Proc, what: &str) {
    p.signal("TERM");
    let status = p.wait_exit(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{what}: {status:?}");
}
