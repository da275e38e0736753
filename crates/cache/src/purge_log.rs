//! Recent purges and what each reached, so that a fill can tell whether a
//! purge overtook it: PHP may have read the database before the change a
//! purge was sent for, and nothing would remove the old page it rendered if
//! it were stored afterwards. Only a purge that reaches the fill's own page
//! (its URL, a prefix of it, one of its tags, everything) drops it; an
//! unrelated purge (another post's comment) leaves it alone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::tags::Tags;

/// This many purges are remembered; a fill older than all of them is
/// treated as overtaken.
const KEEP: usize = 4096;

/// What one purge reaches, on every host of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    All,
    /// A path and query, on every host of the site.
    Url(String),
    Prefix(String),
    /// Entries with one of these tags, and untagged ones.
    Tags(Box<[Arc<str>]>),
}

impl Reach {
    /// Whether this purge removes the page at `target` (a key's target)
    /// labelled with `tags`.
    pub fn reaches(&self, target: &str, tags: Option<&Tags>) -> bool {
        match self {
            Reach::All => true,
            Reach::Url(t) => t == target,
            Reach::Prefix(p) => target.starts_with(p.as_str()),
            Reach::Tags(purged) => match tags {
                None => true,
                Some(tags) => tags.iter().any(|t| purged.iter().any(|p| &**p == t)),
            },
        }
    }
}

#[derive(Default)]
struct Log {
    /// The number the next purge gets (purges so far).
    next: u64,
    recent: VecDeque<(u64, Reach)>,
}

#[derive(Default)]
pub(crate) struct PurgeLog {
    inner: Mutex<Log>,
}

impl PurgeLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Purges so far; a fill notes it before asking PHP.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().next
    }

    /// Records a purge, before it removes anything.
    pub(crate) fn record(&self, reach: Reach) {
        let mut log = self.lock();
        let n = log.next;
        log.recent.push_back((n, reach));
        log.next += 1;
        if log.recent.len() > KEEP {
            log.recent.pop_front();
        }
    }

    /// Whether a purge numbered `since` or later reached the page at
    /// `target` with `tags`, and the generation this answer covers.
    pub(crate) fn overtook(&self, since: u64, target: &str, tags: Option<&Tags>) -> (bool, u64) {
        let log = self.lock();
        let forgotten = log
            .recent
            .front()
            .is_some_and(|(oldest, _)| *oldest > since);
        let reached = forgotten
            || log
                .recent
                .iter()
                .rev()
                .take_while(|(n, _)| *n >= since)
                .any(|(_, r)| r.reaches(target, tags));
        (reached, log.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn tags(t: &str) -> Tags {
        let mut h = HeaderMap::new();
        h.insert(crate::tags::TAGS_HEADER, HeaderValue::from_str(t).unwrap());
        Tags::take(&mut h).unwrap()
    }

    #[test]
    fn only_purges_that_reach_the_page_overtake_it() {
        let log = PurgeLog::default();
        let since = log.generation();
        log.record(Reach::Url("/other/".into()));
        log.record(Reach::Tags(vec![Arc::from("p:9")].into()));
        let page = tags("p:1 q:post");
        assert!(!log.overtook(since, "/one/", Some(&page)).0);
        log.record(Reach::Tags(vec![Arc::from("q:post")].into()));
        assert!(log.overtook(since, "/one/", Some(&page)).0);
        // Untagged pages go with every tag purge; URL and prefix purges by target.
        let since = log.generation();
        log.record(Reach::Tags(vec![Arc::from("p:9")].into()));
        assert!(log.overtook(since, "/one/", None).0);
        let since = log.generation();
        log.record(Reach::Prefix("/on".into()));
        assert!(log.overtook(since, "/one/", Some(&page)).0);
        assert!(!log.overtook(since, "/two/", Some(&page)).0);
        let (_, now) = log.overtook(since, "/two/", None);
        assert_eq!(now, log.generation());
    }

    #[test]
    fn a_fill_older_than_the_log_is_overtaken() {
        let log = PurgeLog::default();
        let since = log.generation();
        for _ in 0..=KEEP {
            log.record(Reach::Url("/x/".into()));
        }
        assert!(log.overtook(since, "/unrelated/", None).0);
        assert!(!log.overtook(log.generation(), "/unrelated/", None).0);
    }
}
