//! Each thread's memo of the fresh entries it answered last: a hit on a key
//! the memo holds is answered from it, with no lock taken and no reference
//! count shared between threads written.
//!
//! A store lookup takes its shard's read lock and clones the entry's `Arc`:
//! four atomic writes a hit to words every worker thread writes, which
//! bounce their cache lines between the cores (on this 2-core machine, 16
//! such writes a request cost `bench/ceiling` a tenth of its throughput).
//! The memo is a small table per thread, indexed by the key's hash; a slot
//! holds the key, the entry and the store's epoch when it was filled. The
//! store bumps its epoch after every change to its entries (insert, remove,
//! purge), so a slot filled before a change is never used after it: a purge
//! is seen by every thread's next lookup, as with the store itself.
//!
//! Bounds: [`SLOTS`] slots a thread, entries of up to [`MAX_WEIGHT`] bytes.
//! A slot keeps its entry alive until it is reused or looked up after a
//! change, so a purged or evicted entry may hold its memory that long (at
//! most `SLOTS × MAX_WEIGHT`, 8 MiB, a thread). One hit in [`TOUCH_EVERY`]
//! answered from a slot also looks the key up in the store, so the store's
//! eviction still sees the entry as used.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use crate::key::{CacheKey, KeyView};
use crate::store::Entry;

/// Slots a thread (a power of two).
pub const SLOTS: usize = 32;
/// The heaviest entry ([`Entry::weight`]) the memo keeps.
pub const MAX_WEIGHT: u64 = 256 << 10;
/// One hit in this many from a slot is also a store lookup.
pub const TOUCH_EVERY: u32 = 64;

struct Slot {
    /// The store it came from ([`crate::PageCache`]'s id) and its epoch then.
    store: u64,
    epoch: u64,
    hash: u64,
    key: CacheKey,
    entry: Arc<Entry>,
    hits: u32,
}

thread_local! {
    static MEMO: RefCell<[Option<Slot>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

/// The memo's hash of a key ([`KeyView::memo_hash`]): cheap and unseeded.
/// A client that aims keys at one slot only makes them miss the memo (the
/// store's hash is seeded).
pub fn hash(view: &KeyView<'_>) -> u64 {
    view.memo_hash()
}

/// What [`lend`] did.
pub enum Lent<R, F> {
    /// The memo held a fresh entry for the key: `f`'s answer; `touch`: the
    /// store should see this hit too.
    Hit { answer: R, touch: bool },
    /// It did not: `f` back, not called.
    Miss(F),
}

/// Lends the memo's entry for `view` to `f`, if the slot for `hash` holds
/// it, filled from `store` at `epoch`, and it is fresh at `now`.
pub fn lend<R, F: FnOnce(&Entry) -> R>(
    store: u64,
    epoch: u64,
    hash: u64,
    view: &KeyView<'_>,
    now: Instant,
    f: F,
) -> Lent<R, F> {
    MEMO.with(|memo| {
        // Never re-entered (`f` makes a response); if it were, a miss.
        let Ok(mut memo) = memo.try_borrow_mut() else {
            return Lent::Miss(f);
        };
        let slot = &mut memo[index(hash)];
        match slot {
            Some(s)
                if s.store == store
                    && s.epoch == epoch
                    && s.hash == hash
                    // One store is one site's: the site is the same.
                    && view.names_in_site(&s.key)
                    && s.entry.is_fresh(now) =>
            {
                s.hits = s.hits.wrapping_add(1);
                let touch = s.hits % TOUCH_EVERY == 0;
                Lent::Hit {
                    answer: f(&s.entry),
                    touch,
                }
            }
            // Filled before the store changed: of no use again.
            Some(s) if s.store == store && s.epoch != epoch => {
                *slot = None;
                Lent::Miss(f)
            }
            _ => Lent::Miss(f),
        }
    })
}

/// Keeps `entry`, found fresh in `store` at `epoch` (read before the store
/// was asked), in this thread's slot for `hash`.
pub fn keep(store: u64, epoch: u64, hash: u64, key: CacheKey, entry: Arc<Entry>) {
    if entry.weight() > MAX_WEIGHT {
        return;
    }
    MEMO.with(|memo| {
        if let Ok(mut memo) = memo.try_borrow_mut() {
            memo[index(hash)] = Some(Slot {
                store,
                epoch,
                hash,
                key,
                entry,
                hits: 0,
            });
        }
    });
}

fn index(hash: u64) -> usize {
    (hash >> 32) as usize % SLOTS
}
