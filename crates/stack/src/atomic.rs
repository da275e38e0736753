//! Writing files and directories in full or not at all: everything is built
//! beside its final place and renamed in, so an interrupted `up`, `restore`
//! or crash never leaves a half-written config or a half-made directory that
//! the next run would take for a whole one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Writes `text` to `path` with `mode`, through a temporary file and a rename.
pub fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let tmp = sibling(path, "partial");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // The mode given to `open` is masked by the umask; set it exactly.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("creating {}", path.display()))
}

/// Creates directory `dir` by running `build` on a fresh sibling directory
/// and renaming it into place. A sibling left by an interrupted run is
/// removed first.
pub fn create_dir(
    dir: &Path,
    build: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let partial = sibling(dir, "partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    build(&partial)?;
    std::fs::rename(&partial, dir).with_context(|| format!("creating {}", dir.display()))
}

/// `dir/name` -> `dir/name.ext` (unlike `with_extension`, keeps any dot in the name).
fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(ext);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_build_leaves_no_directory_and_the_next_one_succeeds() {
        let tmp = std::env::temp_dir().join(format!("murakumo-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let dir = tmp.join("db");
        let failed = create_dir(&dir, |p| {
            std::fs::create_dir(p)?;
            std::fs::write(p.join("half"), "x")?;
            anyhow::bail!("interrupted")
        });
        assert!(failed.is_err());
        assert!(!dir.exists(), "no half-made directory in place");
        create_dir(&dir, |p| Ok(std::fs::create_dir(p)?)).unwrap();
        assert!(dir.is_dir());
        assert!(!dir.join("half").exists(), "the leftover was removed");

        let file = tmp.join("wp-config.php");
        write_file(&file, "<?php", 0o640).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).unwrap().permissions(),
        );
        assert_eq!(
            (
                std::fs::read_to_string(&file).unwrap().as_str(),
                mode & 0o777
            ),
            ("<?php", 0o640)
        );
        std::fs::remove_dir_all(tmp).unwrap();
    }
}
