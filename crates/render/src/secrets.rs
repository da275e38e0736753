//! The site's secrets as files in the output directory (`secrets/`, or
//! `base/secrets/` for Kubernetes): database passwords, the purge token,
//! WordPress's salts. Generated from the OS's CSPRNG the first time,
//! never overwritten (rendering again must not log everyone out or lock
//! the database out), written 0600 in a 0700 directory, and kept out of
//! version control by a `.gitignore` beside them. Compose and Swarm read
//! them as `secrets:` files; kustomize turns them into a Secret.
//!
//! Plain compose bind-mounts a secret file as it is on the host (its
//! `uid`/`gid`/`mode` keys are Swarm-only, docker/compose#9648), so for
//! compose the files are given to the image's account ([`image::UID`]).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use murakumo_image as image;

use crate::RenderError;

/// Every secret file, in the order they are listed.
pub fn all() -> Vec<String> {
    let mut v = image::php_secret_files();
    v.insert(1, image::DB_ROOT_PASSWORD.to_string());
    // Generated always: turning `deploy.redis` on later needs no new file.
    v.push(image::REDIS_PASSWORD.to_string());
    v
}

/// What [`ensure`] did.
#[derive(Debug, Default)]
pub struct Created {
    /// The secret files this run created (the others existed).
    pub files: Vec<String>,
    /// What the user must do because the files could not be given to the
    /// owner asked for (render not run as root).
    pub ownership_note: Option<String>,
}

/// Creates the missing secret files in `dir`; with `owner`, makes every
/// secret file belong to that uid and gid.
pub fn ensure(dir: &Path, owner: Option<u32>) -> Result<Created, RenderError> {
    let io = |path: &Path, source| RenderError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io(dir, e))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "# Secrets: never commit them.\n*\n!.gitignore\n")
            .map_err(|e| io(&ignore, e))?;
    }
    let mut created = Created::default();
    for name in all() {
        let path = dir.join(&name);
        if path.exists() {
            continue;
        }
        // Salts may hold any printable character; passwords stay
        // alphanumeric (they end up in SQL, URLs and shell commands).
        let value = token(if name.starts_with("wp-") { 64 } else { 32 })
            .map_err(|e| RenderError::Internal(e.to_string()))?;
        let partial = dir.join(format!(".{name}.partial"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| io(&partial, e))?;
        f.write_all(value.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io(&partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| io(&path, e))?;
        created.files.push(name);
    }
    if let Some(uid) = owner {
        for name in all() {
            let path = dir.join(&name);
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
            if (meta.uid(), meta.gid()) == (uid, uid) {
                continue;
            }
            match std::os::unix::fs::chown(&path, Some(uid), Some(uid)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    created.ownership_note = Some(format!(
                        "the containers run as uid {uid} and read these files as they are: \
                         run `sudo chown {uid}:{uid} {}/*`",
                        dir.display()
                    ));
                    break;
                }
                Err(e) => return Err(io(&path, e)),
            }
        }
    }
    Ok(created)
}

/// A random alphanumeric string of `len` characters.
fn token(len: usize) -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
        // 62 * 4 = 248: rejecting bytes at or above it keeps every
        // character equally likely.
        out.extend(
            buf.iter()
                .filter(|&&b| b < 248)
                .map(|&b| ALPHABET[(b % 62) as usize] as char)
                .take(len - out.len()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_kept() {
        let dir = std::env::temp_dir().join(format!("murakumo-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = ensure(&dir, None).unwrap();
        assert_eq!(first.files, all());
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let pw = dir.join(image::DB_PASSWORD);
        assert_eq!(mode(&pw), 0o600);
        let before = std::fs::read_to_string(&pw).unwrap();
        assert_eq!(before.len(), 32);
        assert!(before.bytes().all(|b| b.is_ascii_alphanumeric()));
        let again = ensure(&dir, None).unwrap();
        assert!(again.files.is_empty());
        assert_eq!(std::fs::read_to_string(&pw).unwrap(), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
