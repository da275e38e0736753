//! A bounded load that counts every request: threads that each open a new
//! connection every `period`, ask for a page (the paths given in turn; a
//! path may start with "POST ", which the edge never retries) and record
//! the answer or the failure, so a test can say how many requests each
//! phase lost and for how long.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request: when it ended, and what failed (`None`: a 2xx/3xx). A
/// request counts in the phase it ended in: one still in flight when the
/// next phase's action begins (a kill) is that action's to answer for.
struct Record {
    at: Instant,
    failure: Option<String>,
}

pub struct Probe {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    records: Arc<Mutex<Vec<Record>>>,
    marks: Vec<(String, Instant)>,
}

/// What a phase saw.
#[derive(Debug)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
    pub requests: usize,
    pub failed: usize,
    /// From the first failure to the last one.
    pub failing_for: Duration,
    pub failures: Vec<String>,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<34} {:>6.1} s {:>6} requests {:>4} failed",
            self.name, self.seconds, self.requests, self.failed
        )?;
        if self.failed > 0 {
            write!(
                f,
                " over {:.1?}: {:?}",
                self.failing_for,
                &self.failures[..self.failures.len().min(20)]
            )?;
        }
        Ok(())
    }
}

impl Probe {
    /// `threads` threads, each sending one request every `period` to
    /// `addr` with `host`, alternating `paths`.
    pub fn start(
        addr: SocketAddr,
        host: &str,
        paths: &[&str],
        threads: usize,
        period: Duration,
    ) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicU64::new(0));
        let handles = (0..threads)
            .map(|_| {
                let (stop, records, counter) = (stop.clone(), records.clone(), counter.clone());
                let host = host.to_string();
                let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let path = paths[n as usize % paths.len()].replace("{n}", &n.to_string());
                        let started = Instant::now();
                        let failure = request(addr, &host, &path).err();
                        let at = Instant::now();
                        records.lock().unwrap().push(Record { at, failure });
                        if let Some(rest) = period.checked_sub(started.elapsed()) {
                            std::thread::sleep(rest);
                        }
                    }
                })
            })
            .collect();
        Probe {
            stop,
            threads: handles,
            records,
            marks: vec![("start".into(), Instant::now())],
        }
    }

    /// The load of the orchestrator tests: on 127.0.0.1:80, 2 threads, a
    /// request every 50 ms each, a cached page, an uncached GET and an
    /// uncached POST in turn.
    pub fn site_load() -> Probe {
        Probe::start(
            SocketAddr::from(([127, 0, 0, 1], 80)),
            "127.0.0.1",
            &["/", "/?s=probe{n}", "POST /?s=probe{n}"],
            2,
            Duration::from_millis(50),
        )
    }

    pub fn print(phases: &[Phase]) {
        eprintln!("--- requests on 127.0.0.1:80 (40/s, a new connection each: a cached page, an uncached GET, an uncached POST)");
        for p in phases {
            eprintln!("{p}");
        }
    }

    /// Starts a new phase named `name`.
    pub fn mark(&mut self, name: &str) {
        self.marks.push((name.to_string(), Instant::now()));
    }

    /// Stops the load and splits what it saw by phase.
    pub fn finish(mut self) -> Vec<Phase> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let end = Instant::now();
        let records = self.records.lock().unwrap();
        let mut phases = Vec::new();
        for (i, (name, from)) in self.marks.iter().enumerate() {
            let to = self.marks.get(i + 1).map_or(end, |m| m.1);
            let inside: Vec<&Record> = records
                .iter()
                .filter(|r| r.at >= *from && r.at < to)
                .collect();
            let failed: Vec<&&Record> = inside.iter().filter(|r| r.failure.is_some()).collect();
            let failing_for = match (failed.first(), failed.last()) {
                (Some(a), Some(b)) => b.at - a.at,
                _ => Duration::ZERO,
            };
            phases.push(Phase {
                name: name.clone(),
                seconds: (to - *from).as_secs_f64(),
                requests: inside.len(),
                failed: failed.len(),
                failing_for,
                failures: failed
                    .iter()
                    .filter_map(|r| {
                        let f = r.failure.as_ref()?;
                        Some(format!("+{:.1}s {f}", (r.at - *from).as_secs_f64()))
                    })
                    .collect(),
            });
        }
        phases
    }
}

/// One request on a new connection; the status must be 2xx or 3xx.
fn request(addr: SocketAddr, host: &str, path: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let (method, path) = match path.strip_prefix("POST ") {
        Some(p) => ("POST", p),
        None => ("GET", path),
    };
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: murakumo-probe\r\nContent-Length: 0\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).map_err(|e| format!("read: {e}"))?;
    let head = String::from_utf8_lossy(&got[..got.len().min(64)]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {head:?}"))?;
    if (200..400).contains(&status) {
        Ok(status)
    } else {
        Err(format!("{status} for {method} {path}"))
    }
}
