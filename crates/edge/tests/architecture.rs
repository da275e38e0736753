//! ARCHITECTURE.md's import rules for the edge, checked on the source: no
//! import circle between files or between top-level modules, and each
//! top-level module imports only the modules the rules allow. A change
//! that breaks a rule fails here and says which import did.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Who may import whom between the edge's top-level modules: the table
/// under "Import rules inside the edge" in ARCHITECTURE.md, read as it is.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ARCHITECTURE.md");
    let doc = std::fs::read_to_string(doc).unwrap();
    let section = doc
        .split("### Import rules inside the edge")
        .nth(1)
        .expect("ARCHITECTURE.md has the import rules");
    let names = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect()
    };
    let mut table = BTreeMap::new();
    for row in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !row.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = row.split('|').collect();
        let (Some(who), Some(may)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let may: BTreeSet<String> = names(may).into_iter().collect();
        for m in names(who) {
            table.insert(m, may.clone());
        }
    }
    assert!(table.len() > 10, "the table was read: {table:?}");
    table
}

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
    // Test modules (`#[cfg(test)] mod …`) are left out; anything else
    // marked for tests is read like the rest.
    let end = text
        .match_indices("#[cfg(test)]")
        .find(|(i, m)| text[i + m.len()..].trim_start().starts_with("mod "))
        .map_or(text.len(), |(i, _)| i);
    let text = &text[..end];
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The files a file imports: `crate::…`, `super::…`, `self::…`, and for a
/// `mod.rs`, its child modules named as `child::…`.
fn imports(
    module: &str,
    path: &Path,
    all: &BTreeMap<String, PathBuf>,
    reexports: &BTreeMap<String, String>,
) -> BTreeSet<String> {
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
        // `crate::Edge`: a name the crate root re-exports.
        if let Some(m) = segments.first().and_then(|n| reexports.get(n)) {
            if m != module {
                found.insert(m.clone());
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
            let base: Vec<String> = match start {
                "crate::" => vec![],
                "super::" => parent.iter().map(|s| s.to_string()).collect(),
                _ => own.iter().map(|s| s.to_string()).collect(),
            };
            for segs in expand(base, &text[at + start.len()..]) {
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

/// The paths a use-tree names: `a::b::{c, d::{e, f}}` after `base` is
/// `base::a::b::c`, `base::a::b::d::e` and `base::a::b::d::f`.
fn expand(base: Vec<String>, text: &str) -> Vec<Vec<String>> {
    let path: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let mut segs = base;
    segs.extend(path.split("::").filter(|s| !s.is_empty()).map(String::from));
    let rest = &text[path.len()..];
    if !(rest.starts_with('{') && (path.is_empty() || path.ends_with("::"))) {
        return vec![segs];
    }
    // The group, up to its closing brace, split at its own commas.
    let (mut depth, mut items, mut item) = (0, Vec::new(), String::new());
    for c in rest[1..].chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty() && *i != "self")
        .flat_map(|i| expand(segs.clone(), i))
        .collect()
}

/// Names the crate root re-exports (`pub use state::{Edge, …}`) → the
/// module they come from.
fn reexports(lib: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in code(lib).lines() {
        let Some(used) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        for path in expand(vec![], used.trim_end_matches(';')) {
            if let (Some(first), Some(last)) = (path.first(), path.last()) {
                out.insert(last.clone(), first.clone());
            }
        }
    }
    out
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
    let reexports = reexports(&src.join("lib.rs"));
    all.iter()
        .filter(|(m, _)| !m.is_empty())
        .map(|(m, p)| {
            let deps = imports(m, p, &all, &reexports)
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
fn the_scan_sees_the_imports_that_are_there() {
    let g = graph();
    for (from, to) in [
        ("server::connection", "pipeline"), // use crate::pipeline;
        ("pipeline::page_cache", "pipeline::uncached"), // use super::uncached::{…}
        ("site", "php::target"),            // use crate::php::target::PhpTarget;
        ("pipeline", "pipeline::front"),    // front::path(ctx) in mod.rs
        ("server::lifecycle", "server::serve"), // use super::serve::{serve, Listeners};
        ("state", "admission"),
    ] {
        assert!(
            g.get(from).is_some_and(|d| d.contains(to)),
            "{from} → {to}: {:?}",
            g.get(from)
        );
    }
    // The forms a use may take, each resolved.
    let all: BTreeMap<String, PathBuf> = ["a", "a::b", "c", "state"]
        .iter()
        .map(|m| (m.to_string(), PathBuf::new()))
        .collect();
    let reexports = BTreeMap::from([("Edge".to_string(), "state".to_string())]);
    let dir = tempfile_dir();
    let file = dir.join("x.rs");
    std::fs::write(
        &file,
        "use crate::{a::b::B, c::C};\nuse crate::Edge;\n#[cfg(test)]\nfn t() {}\nuse crate::a::A;\n#[cfg(test)]\nmod tests { use crate::c; }\n",
    )
    .unwrap();
    let found = imports("x", &file, &all, &reexports);
    assert_eq!(
        found,
        ["a", "a::b", "c", "state"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A scratch directory of this test process.
fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("murakumo-architecture-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn no_file_imports_itself_through_others() {
    let g = graph();
    assert!(g.len() > 40, "the scan found the edge's files: {}", g.len());
    assert_eq!(circles(&g), Vec::<Vec<String>>::new());
}

#[test]
fn top_level_modules_import_only_what_architecture_md_allows() {
    let allowed = allowed();
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
                Some(ok) if ok.contains(to) => {}
                Some(_) => wrong.push(format!("{m} imports {d}")),
                None => wrong.push(format!("{from} is not in ARCHITECTURE.md's table")),
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
    assert_eq!(circles(&between), Vec::<Vec<String>>::new());
}
