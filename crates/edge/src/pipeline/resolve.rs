//! The front-controller rule WordPress expects (nginx's
//! `try_files $uri $uri/ /index.php?$args`): an existing file is served as
//! itself, a PHP script runs, a directory runs its `index.php`, anything else
//! runs `/index.php`. `PATH_INFO` is split on the normalised path, at the
//! first segment that is an existing `.php` file (never by regex on the raw
//! URI: CVE-2019-11043).

use std::path::{Path, PathBuf};

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::context::Context;
use super::static_files::{self, FromDisk, Served};
use crate::response::{plain, Body, Early, Refusal, Step};
use crate::site::Site;
use crate::state::Edge;

/// The PHP script that serves a path: its URL path (`/index.php`) and
/// `PATH_INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub name: String,
    pub path_info: String,
}

/// A path with nothing to serve as it is.
#[derive(Debug)]
pub enum NotServed {
    /// A directory asked for without its trailing slash: 301 to the
    /// address with it (`location`, the query kept).
    AddSlash {
        location: String,
    },
    NotFound,
}

impl Refusal for NotServed {
    fn response(self) -> Response<Body> {
        match self {
            NotServed::AddSlash { location } => {
                let mut r = plain(StatusCode::MOVED_PERMANENTLY, "moved");
                if let Ok(v) = HeaderValue::from_str(&location) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            NotServed::NotFound => plain(StatusCode::NOT_FOUND, "not found"),
        }
    }
}

/// What the resolve step left to do: run a script, or send a file's bytes
/// from the disk.
pub enum Resolved {
    Script(Script),
    FromDisk(FromDisk),
}

/// The resolve step: a file answers as itself ([`static_files`]), early
/// (or, too large to be kept in memory, as [`Resolved::FromDisk`]);
/// otherwise the script [`resolve`] chose. A file checked within the last
/// second answers without touching the disk.
pub fn php_script(edge: &Edge, ctx: &mut Context<'_>, site: &Site, path: &str) -> Step<Resolved> {
    let root = &site.config.root;
    let file = match edge.files.fresh_at(root, &path[1..], ctx.started) {
        Some(hot) => hot,
        None => match resolve(root, path) {
            Target::Php(script) => return Ok(Resolved::Script(script)),
            Target::Static(file) if !stays_in_uploads(root, path, &file) => {
                return Err(NotServed::NotFound.into())
            }
            Target::Static(file) => edge.files.info(&file).ok_or(NotServed::NotFound)?,
            Target::AddSlash => {
                let location = match ctx.req.uri.query() {
                    Some(q) => format!("{path}/?{q}"),
                    None => format!("{path}/"),
                };
                return Err(NotServed::AddSlash { location }.into());
            }
            Target::NotFound => return Err(NotServed::NotFound.into()),
        },
    };
    let outcome = &mut ctx.outcome;
    let (served, from_head) = static_files::serve(&file, &ctx.req, outcome.security_headers);
    // A file's ready head is final unless the file is to be compressed on
    // the fly, or it is an admin screen's (`finish` adds the framing rule).
    outcome.decorated = from_head && file.settled && !outcome.admin;
    match served {
        Served::Ready(answer) => Err(Early(answer)),
        Served::FromDisk(d) => Ok(Resolved::FromDisk(d)),
    }
}

/// Whether a file asked for under `wp-content/uploads/` is really there:
/// the uploads are written by PHP (and by whoever PHP obeys), so a symlink
/// there could name any file the edge may read (`secrets/`, `/etc`). Its
/// real path must stay inside the real uploads directory; other files are
/// not judged (Debian's core links to its packaged libraries).
fn stays_in_uploads(root: &Path, path: &str, file: &Path) -> bool {
    if !path.starts_with("/wp-content/uploads/") {
        return true;
    }
    let (Ok(uploads), Ok(real)) = (
        std::fs::canonicalize(root.join("wp-content/uploads")),
        std::fs::canonicalize(file),
    ) else {
        return false;
    };
    real.starts_with(&uploads)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file served by the edge.
    Static(PathBuf),
    /// A PHP script.
    Php(Script),
    /// A directory asked for without its trailing slash.
    AddSlash,
    /// Nothing to serve (no front controller either).
    NotFound,
}

/// Resolves a normalised path against the document root. This stats files:
/// call it where blocking briefly is acceptable.
pub fn resolve(root: &Path, path: &str) -> Target {
    // /index.php/some/path → script /index.php, PATH_INFO /some/path
    let mut end = 0;
    for seg in path.split('/').skip(1) {
        end += 1 + seg.len();
        if seg.ends_with(".php") && end < path.len() {
            let script = &path[..end];
            if root.join(&script[1..]).is_file() {
                return Target::Php(Script {
                    name: script.to_string(),
                    path_info: path[end..].to_string(),
                });
            }
            break;
        }
    }
    let full = root.join(&path[1..]);
    match std::fs::metadata(&full) {
        Ok(m) if m.is_file() => {
            if path.ends_with(".php") {
                Target::Php(Script {
                    name: path.to_string(),
                    path_info: String::new(),
                })
            } else {
                Target::Static(full)
            }
        }
        Ok(m) if m.is_dir() => {
            if !path.ends_with('/') {
                return Target::AddSlash;
            }
            if full.join("index.php").is_file() {
                Target::Php(Script {
                    name: format!("{path}index.php"),
                    path_info: String::new(),
                })
            } else if full.join("index.html").is_file() {
                Target::Static(full.join("index.html"))
            } else {
                front_controller(root)
            }
        }
        _ => front_controller(root),
    }
}

fn front_controller(root: &Path) -> Target {
    if root.join("index.php").is_file() {
        Target::Php(Script {
            name: "/index.php".into(),
            path_info: String::new(),
        })
    } else {
        Target::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("murakumo-resolve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("wp-admin")).unwrap();
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        for f in [
            "index.php",
            "wp-login.php",
            "wp-admin/index.php",
            "style.css",
            "docs/index.html",
        ] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        dir
    }

    #[test]
    fn wordpress_rules() {
        let root = site();
        let php = |s: &str, pi: &str| {
            Target::Php(Script {
                name: s.into(),
                path_info: pi.into(),
            })
        };
        assert_eq!(resolve(&root, "/"), php("/index.php", ""));
        assert_eq!(resolve(&root, "/2024/05/hello/"), php("/index.php", ""));
        assert_eq!(resolve(&root, "/wp-login.php"), php("/wp-login.php", ""));
        assert_eq!(resolve(&root, "/wp-admin/"), php("/wp-admin/index.php", ""));
        assert_eq!(resolve(&root, "/wp-admin"), Target::AddSlash);
        assert_eq!(
            resolve(&root, "/style.css"),
            Target::Static(root.join("style.css"))
        );
        assert_eq!(
            resolve(&root, "/docs/"),
            Target::Static(root.join("docs/index.html"))
        );
        assert_eq!(resolve(&root, "/empty/"), php("/index.php", ""));
        assert_eq!(
            resolve(&root, "/index.php/wp-json/wp/v2"),
            php("/index.php", "/wp-json/wp/v2")
        );
        // A missing script in the middle is not a script: front controller.
        assert_eq!(resolve(&root, "/missing.php/x"), php("/index.php", ""));
        assert_eq!(resolve(&root, "/style.css/x.php"), php("/index.php", ""));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
