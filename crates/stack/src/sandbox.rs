//! `murakumo sandbox`: runs a program that may write only beneath the
//! given directories, enforced by the kernel (Landlock). Reading is not
//! restricted: the point is that a compromised plugin in the public PHP
//! pool cannot rewrite code, drop a web shell next to it, or touch another
//! process's data.
//!
//! A separate command (rather than a `pre_exec` hook) because building the
//! ruleset allocates, which is unsafe between `fork` and `exec` in a
//! threaded program; here it runs in a fresh single-threaded process that
//! then `exec`s the program, which inherits the restriction, as do all its
//! children. On a kernel without Landlock it says so and runs unrestricted
//! (file ownership still applies).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::Context;
use landlock::{
    AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, ABI,
};

/// Paths every process may write beneath: `/dev` for `/dev/null` and ttys.
const ALWAYS_WRITABLE: [&str; 1] = ["/dev"];

/// Restricts this process to writing beneath `allow_write` (paths that do
/// not exist are skipped), then replaces it with `program`. Returns only on
/// failure.
pub fn exec(allow_write: &[PathBuf], program: &OsString, args: &[OsString]) -> anyhow::Error {
    match restrict(allow_write) {
        Ok(RulesetStatus::FullyEnforced) => {}
        Ok(RulesetStatus::PartiallyEnforced) => {
            eprintln!("murakumo sandbox: write restrictions only partly enforced by this kernel")
        }
        Ok(RulesetStatus::NotEnforced) => eprintln!(
            "murakumo sandbox: this kernel has no Landlock; running {} without write restrictions",
            program.to_string_lossy()
        ),
        Err(e) => return e,
    }
    let err = std::process::Command::new(program).args(args).exec();
    anyhow::Error::new(err).context(format!("running {}", program.to_string_lossy()))
}

fn restrict(allow_write: &[PathBuf]) -> anyhow::Result<RulesetStatus> {
    let abi = ABI::V5;
    let write = AccessFs::from_write(abi);
    let mut paths: Vec<PathBuf> = allow_write.iter().filter(|p| p.exists()).cloned().collect();
    paths.extend(ALWAYS_WRITABLE.iter().map(PathBuf::from));
    let mut ruleset = Ruleset::default()
        .handle_access(write)
        .context("building the write sandbox")?
        .create()
        .context("creating the write sandbox")?;
    for path in &paths {
        // A file (a log) takes only the rights that apply to files.
        let access = if path.is_dir() {
            write
        } else {
            write & AccessFs::from_file(abi)
        };
        let fd = PathFd::new(path)
            .with_context(|| format!("opening {} for the sandbox", path.display()))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .with_context(|| format!("allowing writes beneath {}", path.display()))?;
    }
    let status = ruleset
        .restrict_self()
        .context("entering the write sandbox")?;
    Ok(status.ruleset)
}
