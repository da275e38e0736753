//! A YAML writer for manifests built as [`serde_json::Value`] trees (keys in
//! insertion order). Only writing is needed and only block style, which is
//! a small, well-defined subset; `serde_yaml` is archived, so we write it
//! here. Strings are written plain only when no YAML 1.1 or 1.2 reader can
//! take them for anything else (booleans like `on`, numbers, nulls,
//! indicators); otherwise double-quoted, whose escapes JSON's are a subset
//! of. Multi-line text (configuration files in ConfigMaps) is a literal
//! block (`|`) so it stays readable and diffable.

use serde_json::Value;

/// The document for `value` (a map or a list at the top).
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => seq(&mut out, a, 0),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

/// Several documents in one stream, `---` between them.
pub fn documents(values: &[Value]) -> String {
    values
        .iter()
        .map(to_string)
        .collect::<Vec<_>>()
        .join("---\n")
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => literal_ok(s),
        _ => false,
    }
}

fn map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    let mut first = true;
    for (k, v) in m {
        if !first {
            pad(out, indent);
        }
        first = false;
        out.push_str(&scalar(k));
        out.push(':');
        value_after_key(out, v, indent);
    }
}

/// Writes what follows `key:` (or `- ` for lists).
fn value_after_key(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            pad(out, indent + 2);
            map(out, m, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            pad(out, indent + 2);
            seq(out, a, indent + 2);
        }
        Value::String(s) if literal_ok(s) => {
            literal(out, s, indent + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn seq(out: &mut String, a: &[Value], indent: usize) {
    let mut first = true;
    for v in a {
        if !first {
            pad(out, indent);
        }
        first = false;
        out.push('-');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push(' ');
                map(out, m, indent + 2);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push(' ');
                seq(out, inner, indent + 2);
            }
            other if is_block(other) => value_after_key(out, other, indent),
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Multi-line text that a literal block keeps exactly.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control())
        && !s.lines().any(|l| l.ends_with([' ', '\t']))
        && !s.contains("\n\n\n")
        && !s.ends_with("\n\n")
}

fn literal(out: &mut String, s: &str, indent: usize) {
    out.push_str(if s.ends_with('\n') { " |\n" } else { " |-\n" });
    for line in s.lines() {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// A string as a plain scalar when that is unambiguous, else quoted.
pub fn scalar(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
    }
}

fn plain_ok(s: &str) -> bool {
    const RESERVED: [&str; 22] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "<<", "=", ".nan",
        ".inf", "-.inf", "+.inf", "nan", "inf", "-inf", "+inf", "---", "...",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    if RESERVED.iter().any(|r| s.eq_ignore_ascii_case(r)) {
        return false;
    }
    // Anything that starts like a number (or a sign, or a dot) is quoted:
    // YAML 1.1 reads `1:20`, `0o17`, `1_000` and `.5` as numbers.
    if first.is_ascii_digit() || matches!(first, '-' | '+' | '.') {
        return false;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_./@%-+=:, ()$".contains(c);
    let starts_ok = first.is_ascii_alphabetic() || "_/$".contains(first);
    starts_ok
        && s.chars().all(allowed)
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "",
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "null",
            "~",
            "1",
            "1.5",
            "0o17",
            "1:20",
            "-x",
            ".5",
            "a: b",
            "a #b",
            "x:",
            " lead",
            "trail ",
            "*.example.com",
            "&a",
            "!tag",
            "{a}",
            "[a]",
            "a\tb",
            "'q'",
            "\"q\"",
            "@x",
            "`x`",
            "|",
            ">",
            "%x",
            "a\u{0}b",
        ] {
            let q = scalar(s);
            assert!(q.starts_with('"'), "{s:?} was written {q}");
            let back: String = serde_json::from_str(&q).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn ordinary_names_are_plain() {
        for s in [
            "apps/v1",
            "murakumo-public",
            "app.kubernetes.io/name",
            "http://127.0.0.1:9090/readyz",
            "RuntimeDefault",
            "node.labels.env == user",
            "$(POD_IP)",
            "/srv/wordpress",
        ] {
            assert_eq!(scalar(s), s);
        }
    }

    #[test]
    fn nested_blocks() {
        let v = json!({
            "a": 1,
            "b": {"c": [1, {"d": "e", "f": [true]}], "g": {}},
            "h": [],
            "text": "line one\n  indented\n\nlast\n",
            "list": [["x"], "multi\nline"],
        });
        assert_eq!(
            to_string(&v),
            "a: 1\nb:\n  c:\n    - 1\n    - d: e\n      f:\n        - true\n  g: {}\nh: []\ntext: |\n  line one\n    indented\n\n  last\nlist:\n  - - x\n  - |-\n    multi\n    line\n"
        );
    }

    #[test]
    fn documents_are_separated() {
        let s = documents(&[json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(s, "a: 1\n---\nb: 2\n");
    }
}
