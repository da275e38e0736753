//! Generated secrets: database password, admin password, purge token and
//! WordPress salts. Each is one file in `secrets/` (directory 0700, file
//! 0600), created once and never rewritten, so running `up` again changes
//! nothing. Values are alphanumeric so they are safe in every config syntax
//! they are written into (php-fpm `env[]`, SQL string literals, TOML).

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::Context;

use crate::accounts::{self, Accounts};
use crate::layout::Layout;

/// The secret files `up` shares with the container image's contract: the
/// database password, the purge token, WordPress's eight keys and salts.
pub use murakumo_image::{salt_file, DB_PASSWORD, PURGE_TOKEN, REDIS_PASSWORD, WP_SALTS};

pub const ADMIN_PASSWORD: &str = "admin-password";

/// Every secret a stack needs, by file name.
fn all_names() -> Vec<String> {
    let mut names: Vec<String> = [DB_PASSWORD, ADMIN_PASSWORD, PURGE_TOKEN, REDIS_PASSWORD]
        .map(String::from)
        .to_vec();
    names.extend(WP_SALTS.iter().map(|s| salt_file(s)));
    names
}

/// The secrets the edge reads itself (also on reload), given to its account.
pub const EDGE_READS: [&str; 3] = [DB_PASSWORD, PURGE_TOKEN, REDIS_PASSWORD];

/// Creates the secrets that do not exist yet. Returns whether any was new.
/// With a separate edge account, the directory is 0711 (the edge may open
/// the two files given to it by name, nobody may list it).
pub fn ensure(layout: &Layout, accounts: &Accounts) -> anyhow::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let dir = layout.secrets();
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let dir_mode = if accounts.edge.is_some() {
        0o711
    } else {
        0o700
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(dir_mode))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    let mut created = false;
    for name in all_names() {
        let path = dir.join(&name);
        if !path.exists() {
            let len = if name.starts_with("wp-") { 64 } else { 32 };
            write_new(&path, &random_token(len)?)?;
            created = true;
        }
    }
    for name in EDGE_READS {
        accounts::give(&dir.join(name), accounts.edge.as_ref())?;
    }
    Ok(created)
}

/// Reads a secret (without its trailing newline). A secret someone wrote
/// by hand must still be safe in every syntax it goes into, so only
/// letters, digits and `.`, `_`, `-` are accepted.
pub fn read(layout: &Layout, name: &str) -> anyhow::Result<String> {
    let path = layout.secret(name);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading secret {}", path.display()))?;
    let value = text.trim_end();
    if value.len() < 8
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        anyhow::bail!(
            "{}: a secret must be at least 8 characters of letters, digits, '.', '_' or '-' \
             (delete the file and `murakumo up` generates a new one)",
            path.display()
        );
    }
    Ok(value.to_string())
}

/// Writes a file readable by its owner only, in full or not at all.
pub fn write_new(path: &Path, value: &str) -> anyhow::Result<()> {
    crate::atomic::write_file(path, &format!("{value}\n"), 0o600)
}

/// A random alphanumeric string of `len` characters from the OS's CSPRNG.
pub fn random_token(len: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)
            .map_err(|e| anyhow::anyhow!("reading random bytes from the OS: {e}"))?;
        // Rejection sampling: 248 = 4 * 62 keeps every character equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[(*b % 62) as usize] as char);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_alphanumeric_of_the_asked_length_and_differ() {
        let a = random_token(40).unwrap();
        let b = random_token(40).unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn ensure_creates_private_files_once() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = std::env::temp_dir().join(format!("murakumo-secrets-{}", std::process::id()));
        let layout = Layout::new(tmp.clone());
        let accounts = Accounts {
            db: None,
            web: None,
            edge: None,
            cache: None,
        };
        assert!(ensure(&layout, &accounts).unwrap());
        let first = read(&layout, DB_PASSWORD).unwrap();
        let mode = std::fs::metadata(layout.secret(DB_PASSWORD))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(layout.secrets())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert!(
            !ensure(&layout, &accounts).unwrap(),
            "a second run creates nothing"
        );
        assert_eq!(read(&layout, DB_PASSWORD).unwrap(), first);
        std::fs::remove_dir_all(tmp).unwrap();
    }
}
