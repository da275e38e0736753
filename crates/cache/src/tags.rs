//! Tags (surrogate keys): what a page shows, as PHP labels it, so a change
//! purges exactly the pages that show it.
//!
//! PHP names them in a response header, [`TAGS_HEADER`] (the mu-plugin
//! sends `p:12` for a post it shows, `q:post` for a listing of posts, `t:5`
//! for a term, …; docs/cache.md has the scheme). The edge removes that
//! header before any client sees it, keeps the tags with the entry, and
//! indexes entries by tag; `POST /purge?tag=` removes every entry carrying
//! one. A page whose label is unreadable or too long is kept untagged, and
//! untagged pages go with every tag purge of their host: a purge may remove
//! more than it must, never less.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use http::HeaderMap;

use crate::key::CacheKey;

/// The response header PHP labels a page with; never sent to clients.
pub const TAGS_HEADER: &str = "x-murakumo-tags";

/// At most this many tags per page; a page with more is kept untagged.
pub const MAX_TAGS: usize = 1024;
/// At most this many bytes per tag.
pub const MAX_TAG_LEN: usize = 128;

/// The tags of one entry, deduplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags(Box<[Arc<str>]>);

impl Tags {
    /// Takes the tags out of a response's headers (the header is removed
    /// whatever its content). `None`: no tags, or a label that cannot be
    /// trusted to be complete (too many, too long, not visible ASCII).
    pub fn take(headers: &mut HeaderMap) -> Option<Tags> {
        let values: Vec<_> = headers.get_all(TAGS_HEADER).iter().cloned().collect();
        headers.remove(TAGS_HEADER);
        let mut texts = Vec::with_capacity(values.len());
        for value in &values {
            texts.push(value.to_str().ok()?);
        }
        Tags::parse(texts.iter().flat_map(|text| {
            text.split(|c: char| c.is_ascii_whitespace() || c == ',')
                .filter(|t| !t.is_empty())
        }))
    }

    /// Tags from a list (a label's words, or tags read back from the shared
    /// tier), by the same rules as [`Tags::take`].
    pub fn parse<'a>(list: impl IntoIterator<Item = &'a str>) -> Option<Tags> {
        let mut seen = HashSet::new();
        for tag in list {
            if tag.is_empty()
                || tag.len() > MAX_TAG_LEN
                || !tag.bytes().all(|b| b.is_ascii_graphic())
            {
                return None;
            }
            seen.insert(tag);
            if seen.len() > MAX_TAGS {
                return None;
            }
        }
        if seen.is_empty() {
            return None;
        }
        let mut tags: Vec<Arc<str>> = seen.into_iter().map(Arc::from).collect();
        tags.sort();
        Some(Tags(tags.into_boxed_slice()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|t| &**t)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes held, for the cache's memory bound (the index holds each once
    /// more).
    pub fn weight(&self) -> usize {
        self.0.iter().map(|t| 2 * t.len() + 64).sum()
    }
}

/// Entry references by tag, and the untagged entries. A reference names the
/// entry's id, so removing an old entry never unindexes its replacement.
#[derive(Default)]
pub(crate) struct TagIndex {
    inner: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    by_tag: HashMap<Arc<str>, HashMap<CacheKey, u64>>,
    untagged: HashMap<CacheKey, u64>,
}

impl TagIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add(&self, key: &CacheKey, id: u64, tags: Option<&Tags>) {
        let mut index = self.lock();
        match tags {
            Some(tags) => {
                for tag in tags.0.iter() {
                    index
                        .by_tag
                        .entry(tag.clone())
                        .or_default()
                        .insert(key.clone(), id);
                }
            }
            None => {
                index.untagged.insert(key.clone(), id);
            }
        }
    }

    pub(crate) fn remove(&self, key: &CacheKey, id: u64, tags: Option<&Tags>) {
        let mut index = self.lock();
        let Some(tags) = tags else {
            if index.untagged.get(key) == Some(&id) {
                index.untagged.remove(key);
            }
            return;
        };
        for tag in tags.0.iter() {
            if let Some(refs) = index.by_tag.get_mut(tag) {
                if refs.get(key) == Some(&id) {
                    refs.remove(key);
                }
                if refs.is_empty() {
                    index.by_tag.remove(tag);
                }
            }
        }
    }

    /// The keys carrying one of `tags`, and the untagged ones.
    pub(crate) fn keys_for(&self, tags: &[&str]) -> Vec<CacheKey> {
        let index = self.lock();
        let mut keys: HashSet<&CacheKey> = HashSet::new();
        for tag in tags {
            if let Some(refs) = index.by_tag.get(*tag) {
                keys.extend(refs.keys());
            }
        }
        keys.extend(index.untagged.keys());
        keys.into_iter().cloned().collect()
    }

    pub(crate) fn usage(&self) -> (usize, usize) {
        let index = self.lock();
        let refs = index.by_tag.values().map(HashMap::len).sum();
        (index.by_tag.len(), refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(TAGS_HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn tags_are_taken_from_the_response() {
        let mut h = headers(&["p:12 q:post,t:5", "p:12  a:1"]);
        let tags = Tags::take(&mut h).unwrap();
        assert_eq!(
            tags.iter().collect::<Vec<_>>(),
            ["a:1", "p:12", "q:post", "t:5"]
        );
        assert!(h.is_empty(), "the header never reaches a client");
        assert_eq!(Tags::take(&mut HeaderMap::new()), None);
        assert_eq!(Tags::take(&mut headers(&["  "])), None);
    }

    #[test]
    fn labels_that_cannot_be_complete_are_refused() {
        let many = (0..=MAX_TAGS)
            .map(|i| format!("p:{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut h = headers(&[&many]);
        assert_eq!(Tags::take(&mut h), None);
        assert!(h.is_empty());
        let long = "x".repeat(MAX_TAG_LEN + 1);
        assert_eq!(Tags::take(&mut headers(&[&format!("p:1 {long}")])), None);
        let mut h = HeaderMap::new();
        h.insert(TAGS_HEADER, HeaderValue::from_bytes(b"p:1 \xff").unwrap());
        assert_eq!(Tags::take(&mut h), None);
        assert!(h.is_empty());
    }
}
