//! What `up` tells the user while it works: each step, what it waits for,
//! how long it took, and on failure which step failed and where the log is.
//! A detached `up` runs the steps in its background supervisor, which
//! writes these lines to a pipe that the foreground command echoes.

use std::io::Write;
use std::time::Instant;

/// The line that tells a waiting foreground `up` that the stack is ready.
pub const READY_LINE: &str = "murakumo-up: ready";

pub struct Progress {
    out: Option<Box<dyn Write + Send>>,
    step: usize,
    total: usize,
    current: Option<(String, Instant)>,
}

impl Progress {
    pub fn new(out: Box<dyn Write + Send>, total: usize) -> Progress {
        Progress {
            out: Some(out),
            step: 0,
            total,
            current: None,
        }
    }

    /// Prints a line (a no-op once detached).
    pub fn say(&mut self, line: &str) {
        if let Some(out) = &mut self.out {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        tracing::info!("{line}");
    }

    /// Begins a step: "[3/7] MariaDB (waiting for run/mysqld/mysqld.sock)".
    pub fn begin(&mut self, name: &str, waits_for: Option<&str>) {
        self.step += 1;
        let line = match waits_for {
            Some(w) => format!("[{}/{}] {name} (waiting for {w})", self.step, self.total),
            None => format!("[{}/{}] {name}", self.step, self.total),
        };
        self.say(&line);
        self.current = Some((name.to_string(), Instant::now()));
    }

    /// Ends the current step with a short result.
    pub fn done(&mut self, result: &str) {
        if let Some((_, t)) = self.current.take() {
            let line = format!("      {result} ({:.1}s)", t.elapsed().as_secs_f64());
            self.say(&line);
        }
    }

    /// The step that was running, for the failure message.
    pub fn failed_step(&self) -> Option<String> {
        self.current
            .as_ref()
            .map(|(name, _)| format!("step {}/{} ({name})", self.step, self.total))
    }

    /// Tells a waiting foreground `up` that the stack is ready, then stops
    /// writing to it.
    pub fn ready(&mut self) {
        if let Some(out) = &mut self.out {
            let _ = writeln!(out, "{READY_LINE}");
            let _ = out.flush();
        }
    }

    pub fn detach(&mut self) {
        self.out = None;
    }
}
