//! Keeping the stack's logs bounded. Each process writes its log through a
//! descriptor opened in append mode, so the supervisor can rotate by copy
//! and truncate: the log is copied to `NAME.log.1` (replacing the previous
//! one) and cut to zero, and the writer goes on at the new end. At most
//! twice the limit per log stays on disk; lines written during the copy
//! itself may be lost, which is the price of not signalling every process.

use std::path::Path;

use anyhow::Context;

/// Rotates `path` if it is larger than `limit` bytes; returns whether it did.
pub fn rotate_if_larger(path: &Path, limit: u64) -> anyhow::Result<bool> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(false);
    };
    if meta.len() <= limit {
        return Ok(false);
    }
    let mut old = path.as_os_str().to_os_string();
    old.push(".1");
    std::fs::copy(path, &old)
        .with_context(|| format!("copying {} for rotation", path.display()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(0))
        .with_context(|| format!("truncating {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_large_log_is_kept_once_and_the_writer_continues_at_the_start() {
        let dir = std::env::temp_dir().join(format!("murakumo-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("edge.log");
        let mut writer = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        writer.write_all(&[b'x'; 100]).unwrap();
        assert!(!rotate_if_larger(&path, 100).unwrap(), "at the limit: kept");
        writer.write_all(b"y").unwrap();
        assert!(rotate_if_larger(&path, 100).unwrap());
        assert_eq!(
            std::fs::metadata(dir.join("edge.log.1")).unwrap().len(),
            101
        );
        writer.write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "after\n",
            "no hole before new lines"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
