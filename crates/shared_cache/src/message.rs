//! A purge as announced on the channel, so every edge can apply it to its
//! own memory (L1): `STAMP\tORIGIN\tSITE\tKIND\tVALUE...`, where `KIND`
//! is `all`, `url`, `prefix` or `tags` and the values are the target, the
//! prefix or the tags (none of which can hold a tab: targets are
//! percent-encoded, tags visible ASCII).

use std::sync::Arc;

use murakumo_cache::Reach;

/// One announced purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announced {
    pub(crate) stamp: u64,
    /// The edge that was asked (it has applied it already).
    pub(crate) origin: u64,
    pub(crate) site: String,
    pub(crate) reach: Reach,
}

/// The kind and values of a purge, as the `PURGE` script takes them.
pub(crate) fn parts(reach: &Reach) -> (&'static str, Vec<&str>) {
    match reach {
        Reach::All => ("all", vec![]),
        Reach::Url(t) => ("url", vec![t.as_str()]),
        Reach::Prefix(p) => ("prefix", vec![p.as_str()]),
        Reach::Tags(tags) => ("tags", tags.iter().map(|t| &**t).collect()),
    }
}

/// What the script appends to the stamp: `ORIGIN\tSITE\tKIND\tVALUE...`.
pub(crate) fn body(origin: u64, site: &str, reach: &Reach) -> String {
    let (kind, values) = parts(reach);
    let mut s = format!("{origin}\t{site}\t{kind}");
    for v in values {
        s.push('\t');
        s.push_str(v);
    }
    s
}

/// Reads an announcement; `None` for anything else on the channel.
pub(crate) fn parse(text: &str) -> Option<Announced> {
    let mut fields = text.split('\t');
    let stamp = fields.next()?.parse().ok()?;
    let origin = fields.next()?.parse().ok()?;
    let site = fields.next()?.to_string();
    let kind = fields.next()?;
    let values: Vec<&str> = fields.collect();
    let reach = match (kind, values.as_slice()) {
        ("all", []) => Reach::All,
        ("url", [t]) => Reach::Url(t.to_string()),
        ("prefix", [p]) => Reach::Prefix(p.to_string()),
        ("tags", tags) if !tags.is_empty() => {
            Reach::Tags(tags.iter().map(|t| Arc::from(*t)).collect())
        }
        _ => return None,
    };
    Some(Announced {
        stamp,
        origin,
        site,
        reach,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_read_back_as_sent() {
        for reach in [
            Reach::All,
            Reach::Url("/2024/hello/?p=1".into()),
            Reach::Prefix("/shop/".into()),
            Reach::Tags(vec![Arc::from("p:1"), Arc::from("q:post")].into()),
        ] {
            let text = format!("1733000000000001\t{}", body(42, "blog", &reach));
            let a = parse(&text).unwrap();
            assert_eq!(
                (a.stamp, a.origin, a.site.as_str()),
                (1733000000000001, 42, "blog")
            );
            assert_eq!(a.reach, reach);
        }
        for bad in [
            "",
            "x\t1\tblog\tall",
            "1\t2\tblog\turl",
            "1\t2\tblog\ttags",
            "1\t2\tblog\tall\textra",
            "1\t2\tblog\tnuke",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
