//! `wrk` as the load of a test: started in the background, its summary
//! parsed into requests, socket errors and non-2xx/3xx answers.

use std::process::{Child, Command, Stdio};

pub struct Wrk(Child);

impl Wrk {
    /// Runs `wrk` for `secs` against `url` on `conns` connections, with
    /// each of `headers` ("Name: value").
    pub fn start(url: &str, secs: u64, conns: u32, headers: &[&str]) -> Wrk {
        let mut cmd = Command::new("wrk");
        cmd.args([
            "-t1",
            // A slow answer on this shared 2-core machine is not a lost one.
            "--timeout",
            "10s",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
        ]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let child = cmd
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wrk is not installed (scripts/install-deps --test)");
        Wrk(child)
    }

    /// Waits for the end: (requests, socket errors, non-2xx/3xx, summary).
    pub fn result(self) -> (u64, u64, u64, String) {
        let out = self.0.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let num = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().unwrap_or(0);
        let requests = text
            .lines()
            .find(|l| l.contains("requests in"))
            .map_or(0, |l| num(l.split_whitespace().next().unwrap_or("")));
        let errors = text
            .lines()
            .find(|l| l.contains("Socket errors"))
            .map_or(0, |l| {
                l.split(':')
                    .nth(1)
                    .unwrap_or("")
                    .split(',')
                    .map(|p| num(p.split_whitespace().last().unwrap_or("0")))
                    .sum()
            });
        let non2xx = text
            .lines()
            .find(|l| l.contains("Non-2xx"))
            .map_or(0, |l| num(l.rsplit(':').next().unwrap_or("0")));
        (requests, errors, non2xx, text)
    }
}
