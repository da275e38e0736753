//! One supervisor per site directory: it holds an exclusive `flock` on
//! `run/supervisor.pid` (which also records its pid) for as long as it
//! lives. The kernel drops the lock when the process dies, however it dies,
//! so a stale pid file never reads as "running".

use std::fs::File;
use std::io::{Read, Seek, Write};

use anyhow::Context;
use rustix::fs::{flock, FlockOperation};

use crate::layout::Layout;

/// The held lock; released on drop (or process exit).
pub struct SupervisorLock {
    _file: File,
}

impl SupervisorLock {
    /// Takes the lock, or says which pid holds it.
    pub fn acquire(layout: &Layout) -> anyhow::Result<Result<SupervisorLock, Option<u32>>> {
        let path = layout.supervisor_pid();
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            return Ok(Err(read_pid(&mut file)));
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(Ok(SupervisorLock { _file: file }))
    }
}

/// The pid of the live supervisor of `layout`, if there is one.
pub fn holder(layout: &Layout) -> Option<u32> {
    let mut file = File::open(layout.supervisor_pid()).ok()?;
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => None,
        Err(_) => read_pid(&mut file).or(Some(0)),
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
