//! ARCHITECTURE.md's import rules for the edge, checked on the source: no
//! import circle between files or between top-level modules, and each
//! top-level module imports only the modules the rules allow. A change
//! that breaks a rule fails here and says which import did.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Who may import whom, between the edge's top-level modules (the table
/// in ARCHITECTURE.md).
const ALLOWED: &[(&str, &[&str])] = &[
    ("conn", &[]),
    ("response", &[]),
    ("forwarded", &["conn"]),
    ("router", &[]),
    ("rate_limit", &[]),
    ("metrics", &[]),
    ("certificates", &[]),
    ("file_cache", &[]),
    ("admission", &["metrics"]),
    ("php", &["conn", "response"]),
    ("site", &["conn", "php", "rate_limit", "router"]),
    (
        "state",
        &["admission", "certificates", "file_cache", "metrics", "site"],
    ),
    (
        "pipeline",
        &[
            "conn",
            "file_cache",
            "forwarded",
            "php",
            "rate_limit",
            "response",
            "site",
            "state",
        ],
    ),
    ("ops", &["metrics", "php", "response", "site", "state"]),
    ("wp_cron", &["conn", "php", "site", "state"]),
    (
        "server",
        &[
            "admission",
            "certificates",
            "conn",
            "forwarded",
            "ops",
            "pipeline",
            "state",
            "wp_cron",
        ],
    ),
];

/// Module path (`pipeline::guard::files`) → source file, for every file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(src).unwrap().with_extension("");
                let parts: Vec<String> = rel
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect();
                let parts: Vec<&str> = parts
                    .iter()
                    .map(String::as_str)
                    .filter(|s| *s != "mod")
                    .collect();
                let name = if parts == ["lib"] {
                    String::new()
                } else {
                    parts.join("::")
                };
                out.insert(name, p);
            }
        }
    }
    out
}

/// The code of a file without comments and without its tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The files a file imports: `crate::…`, `super::…`, `self::…`, and for a
/// `mod.rs`, its child modules named as `child::…`.
fn imports(module: &str, path: &Path, all: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let text = code(path);
    let is_mod_file = path.ends_with("mod.rs") || path.ends_with("lib.rs");
    let own: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let parent: Vec<&str> = own[..own.len().saturating_sub(1)].to_vec();
    let mut found = BTreeSet::new();
    let mut add = |segments: Vec<String>| {
        for n in (1..=segments.len()).rev() {
            let m = segments[..n].join("::");
            if all.contains_key(&m) {
                if m != module {
                    found.insert(m);
                }
                return;
            }
        }
    };
    let bytes = text.as_bytes();
    let part_of_a_path =
        |i: usize| i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || b"_:".contains(&bytes[i - 1]));
    for start in ["crate::", "super::", "self::"] {
        for (at, _) in text.match_indices(start) {
            if part_of_a_path(at) {
                continue;
            }
            // `super::` is the parent of a file (`a/b.rs` and `a/b/mod.rs`
            // alike: both are module `a::b`, whose parent is `a`).
            let mut segs: Vec<String> = match start {
                "crate::" => vec![],
                "super::" => parent.iter().map(|s| s.to_string()).collect(),
                _ => own.iter().map(|s| s.to_string()).collect(),
            };
            let rest = &text[at + start.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            segs.extend(path.split("::").filter(|s| !s.is_empty()).map(String::from));
            let after = &rest[path.len()..];
            if after.starts_with('{') && path.ends_with("::") {
                let group: String = after[1..].chars().take_while(|c| *c != '}').collect();
                for item in group.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("");
                    let first = first.split(' ').next().unwrap_or("");
                    let mut s = segs.clone();
                    if !first.is_empty() && first != "self" {
                        s.push(first.to_string());
                    }
                    add(s);
                }
            } else {
                add(segs);
            }
        }
    }
    if is_mod_file {
        for line in text.lines() {
            let l = line.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            if let Some(child) = l.strip_prefix("mod ").and_then(|c| c.strip_suffix(';')) {
                let name = if module.is_empty() {
                    child.to_string()
                } else {
                    format!("{module}::{child}")
                };
                let uses = text
                    .match_indices(&format!("{child}::"))
                    .any(|(i, _)| !part_of_a_path(i));
                if uses && all.contains_key(&name) {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// The strongly connected groups of more than one node (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct S<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        out: Vec<Vec<String>>,
    }
    fn visit(s: &mut S<'_>, v: &str) {
        let i = s.index.len();
        s.index.insert(v.into(), i);
        s.low.insert(v.into(), i);
        s.stack.push(v.into());
        s.on.insert(v.into());
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(&w);
                let done = w == v;
                group.push(w);
                if done {
                    break;
                }
            }
            if group.len() > 1 {
                s.out.push(group);
            }
        }
    }
    let mut s = S {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = modules(&src);
    all.iter()
        .filter(|(m, _)| !m.is_empty())
        .map(|(m, p)| {
            let deps = imports(m, p, &all)
                .into_iter()
                .filter(|d| !d.is_empty())
                .collect();
            (m.clone(), deps)
        })
        .collect()
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

#[test]
fn no_file_imports_itself_through_others() {
    let g = graph();
    assert!(g.len() > 40, "the scan found the edge's files: {}", g.len());
    assert_eq!(circles(&g), Vec::<Vec<String>>::new());
}

#[test]
fn top_level_modules_import_only_what_architecture_md_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut between: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (m, deps) in graph() {
        for d in deps {
            let (from, to) = (top(&m), top(&d));
            if from == to {
                continue;
            }
            between.entry(from.into()).or_default().insert(to.into());
            match allowed.get(from) {
                Some(ok) if ok.contains(&to) => {}
                Some(_) => wrong.push(format!("{m} imports {d}")),
                None => wrong.push(format!(
                    "{from} is not in the table (ARCHITECTURE.md, ALLOWED)"
                )),
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
    assert_eq!(circles(&between), Vec::<Vec<String>>::new());
}
