//! Pid files and signals for the stack's processes. A pid is trusted only
//! if the process is alive *and* its command line names the site
//! directory, so a stale pid file never leads to signalling a stranger.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// Reads a pid file; `None` when absent or unreadable.
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn write_pid(path: &Path, pid: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(tmp, path)
}

fn to_pid(pid: i32) -> Option<Pid> {
    Pid::from_raw(pid)
}

/// Whether `pid` is a live (not zombie) process whose command line mentions `dir`.
pub fn is_ours(pid: i32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    if stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "Z")) {
        return false;
    }
    let needle = dir.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len().max(1)).any(|w| w == needle)
}

/// The fields of `/proc/PID/stat` after the parenthesised command name
/// (state first, then the parent's pid, …).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(String::from).collect())
}

/// Whether `pid` is a live process (not a zombie).
pub fn is_alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z"))
}

/// The processes whose parent is `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&child| stat_fields(child).and_then(|f| f.get(1)?.parse().ok()) == Some(pid))
        .collect()
}

/// The pid in `pid_file` if that process is alive and belongs to `dir`.
pub fn live_pid(pid_file: &Path, dir: &Path) -> Option<i32> {
    read_pid(pid_file).filter(|pid| is_ours(*pid, dir))
}

pub fn signal(pid: i32, signal: Signal) -> bool {
    to_pid(pid).is_some_and(|p| rustix::process::kill_process(p, signal).is_ok())
}

/// Waits until `pid` no longer belongs to `dir`; true if it went in time.
pub fn wait_gone(pid: i32, dir: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_ours(pid, dir) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Kills what is left of the process group `pgid` (each supervised process
/// leads a group of its own).
pub fn kill_group(pgid: i32) {
    if let Some(p) = to_pid(pgid) {
        let _ = rustix::process::kill_process_group(p, Signal::KILL);
    }
}
