//! The WordPress-aware full-page cache.
//!
//! The edge asks this crate its questions, each answered by one module:
//! - [`policy`]: may this request use the cache, may this response be stored?
//! - [`key`]: which entry does a request map to (tracking parameters dropped)?
//! - [`store`]: lookup (fresh, stale, miss), insert with compression done
//!   once, purge by URL, prefix, tag, site or all, bounded by memory;
//! - [`head`]: the ready response heads of an entry's forms, built once;
//! - `hot`: each thread's memo of the fresh entries it answered last, so a
//!   hit writes nothing the threads share;
//! - [`coalesce`]: one fill per key at a time, others wait for it;
//! - [`tags`]: what a page shows, as PHP labels it, for exact purges;
//! - [`wire`]: an entry as bytes, for the page cache edges share.
//!
//! [`encoding`] negotiates `Accept-Encoding` (shared with static files).

pub mod coalesce;
pub mod encoding;
pub mod head;
mod hot;
pub mod key;
pub mod policy;
mod purge_log;
pub mod store;
pub mod tags;
pub mod wire;

pub use coalesce::{Coalescer, Turn};
pub use encoding::Encoding;
pub use head::{Decoration, Heads};
pub use key::{CacheKey, KeyView};
pub use policy::{Bypass, Policy};
pub use store::{Entry, Lookup, PageCache, Reach, Stats};
pub use tags::Tags;
