//! The check-in views of recently seen devices, kept in memory on SQLite.
//!
//! A check-in reads five columns of one row and writes nothing. On SQLite that read is most of
//! the cost of a check-in: sqlx runs each SQLite connection on its own thread, so every read is
//! two thread hand-offs. Phones check in far more often than their row changes, so serving the
//! read from memory is what lets one small machine keep up with a large fleet.
//!
//! The cache must never answer with a token older than a committed change: a phone that was
//! just paid for must get its unlock at once. Two facts make that hold:
//! - A SQLite database is served by one Lien process, and every write to the columns a view
//!   holds goes through this store, which calls [`CheckinCache::forget`] once the transaction
//!   has ended, before the write is reported done.
//! - A reader caches what it read only if no device was forgotten while it read (the epoch
//!   below did not move). A view read just before a commit can therefore not be cached after it.
//! - The warm-up at start (see [`super::warm_up`]) reads many rows over seconds, during which
//!   writes go on, so the epoch would refuse all of it. Instead the cache remembers which
//!   devices were forgotten since the warm-up began, and the warm-up keeps only the views of
//!   the others: every row it reads is read after it began, so a write that could have made
//!   the read stale ends after it began too, and its device is in that set by the time the
//!   view is offered (or the view, if offered first, is forgotten by that write as usual).
//!
//! PostgreSQL has no cache: several servers may share one database, and one could not see the
//! others' writes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::CheckinView;

/// How many views to keep: enough for a dealer's or a small market's whole fleet, about
/// 600 bytes each. When full, an arbitrary view is dropped; it is read again on its next use.
pub(super) const CAPACITY: usize = 200_000;

/// What a lookup found.
pub(super) enum Lookup {
    /// The device's current view.
    Hit(CheckinView),
    /// Not cached: read the database, then offer the result with [`CheckinCache::fill`] and
    /// this epoch.
    Miss(u64),
}

/// The cache; see the module documentation for why it stays coherent.
pub(super) struct CheckinCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

struct Inner {
    /// Moves on every [`CheckinCache::forget`].
    epoch: u64,
    views: HashMap<String, CheckinView>,
    /// While a warm-up runs, the devices forgotten since it began.
    forgotten_since_warm_up: Option<HashSet<String>>,
}

impl CheckinCache {
    pub(super) fn new(capacity: usize) -> CheckinCache {
        CheckinCache {
            inner: Mutex::new(Inner {
                epoch: 0,
                views: HashMap::new(),
                forgotten_since_warm_up: None,
            }),
            capacity,
        }
    }

    pub(super) fn lookup(&self, id: &str) -> Lookup {
        let inner = self.lock();
        match inner.views.get(id) {
            Some(view) => Lookup::Hit(view.clone()),
            None => Lookup::Miss(inner.epoch),
        }
    }

    /// Keeps `view`, read from the database after [`CheckinCache::lookup`] returned `epoch`,
    /// unless some device was forgotten since: the read may then predate that write.
    pub(super) fn fill(&self, id: &str, view: &CheckinView, epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if inner.views.len() >= self.capacity {
            let Some(victim) = inner.views.keys().next().cloned() else {
                return;
            };
            inner.views.remove(&victim);
        }
        inner.views.insert(id.to_string(), view.clone());
    }

    /// Drops the device's view after a write to its row, committed or not.
    pub(super) fn forget(&self, id: &str) {
        let mut inner = self.lock();
        inner.views.remove(id);
        inner.epoch += 1;
        if let Some(forgotten) = &mut inner.forgotten_since_warm_up {
            forgotten.insert(id.to_string());
        }
    }

    /// Raises the cached request counters to those just committed by a last-seen batch, in
    /// place: the views stay cached, as a check-in path that wrote on every request would
    /// lose the cache's point. A read that began before the commit may hold a lower counter,
    /// so the epoch moves (such a read is not kept) and a running warm-up skips these devices.
    /// Until this runs, the server's own record of the batch refuses replays.
    pub(super) fn raise_counters(&self, seen: &[crate::Seen]) {
        let mut inner = self.lock();
        inner.epoch += 1;
        for s in seen {
            if let Some(view) = inner.views.get_mut(&s.device_id)
                && view.binding_generation == s.binding_generation
                && view.checkin_counter < s.counter
            {
                view.checkin_counter = s.counter;
            }
            if let Some(forgotten) = &mut inner.forgotten_since_warm_up {
                forgotten.insert(s.device_id.clone());
            }
        }
    }

    /// Starts remembering forgotten devices for [`CheckinCache::warm`]; call it before the
    /// warm-up reads its first row. One warm-up at a time: a second would wipe the record the
    /// first relies on.
    pub(super) fn begin_warm_up(&self) {
        let mut inner = self.lock();
        assert!(
            inner.forgotten_since_warm_up.is_none(),
            "a check-in cache warm-up is already running"
        );
        inner.forgotten_since_warm_up = Some(HashSet::new());
    }

    /// Keeps views the warm-up read (after [`CheckinCache::begin_warm_up`]), except those of
    /// devices forgotten since it began, whose rows may have changed after the read, and those
    /// already cached, which a check-in read no earlier. Never evicts. Returns how many it
    /// kept, and whether there is room for more (`false` ends the warm-up).
    pub(super) fn warm(&self, views: Vec<(String, CheckinView)>) -> (usize, bool) {
        let mut inner = self.lock();
        let Inner {
            views: cached,
            forgotten_since_warm_up,
            ..
        } = &mut *inner;
        let Some(forgotten) = forgotten_since_warm_up else {
            // Not begun, or already ended: coherence cannot be vouched for.
            return (0, false);
        };
        let mut kept = 0;
        for (id, view) in views {
            if cached.len() >= self.capacity {
                return (kept, false);
            }
            if !forgotten.contains(&id) && !cached.contains_key(&id) {
                cached.insert(id, view);
                kept += 1;
            }
        }
        (kept, cached.len() < self.capacity)
    }

    /// Ends the warm-up: [`CheckinCache::warm`] keeps nothing more.
    pub(super) fn end_warm_up(&self) {
        self.lock().forgotten_since_warm_up = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated (each operation is
        // one map call), so a poisoned lock is still safe to use.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for CheckinCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckinCache")
            .field("views", &self.lock().views.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(sequence: i64) -> CheckinView {
        CheckinView {
            financier_id: "fin_1".into(),
            binding_generation: 1,
            token: Some(vec![sequence as u8]),
            token_sequence: sequence,
            applied_sequence: None,
            checkin_counter: 0,
        }
    }

    fn cached_sequence(cache: &CheckinCache, id: &str) -> Option<i64> {
        match cache.lookup(id) {
            Lookup::Hit(v) => Some(v.token_sequence),
            Lookup::Miss(_) => None,
        }
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let cache = CheckinCache::new(10);
        let Lookup::Miss(epoch) = cache.lookup("dev_a") else {
            panic!("empty cache hit");
        };
        // The reader saw sequence 1; meanwhile a payment committed sequence 2 and forgot.
        cache.forget("dev_a");
        cache.fill("dev_a", &view(1), epoch);
        assert_eq!(cached_sequence(&cache, "dev_a"), None);

        let Lookup::Miss(epoch) = cache.lookup("dev_a") else {
            panic!("hit after forget");
        };
        cache.fill("dev_a", &view(2), epoch);
        assert_eq!(cached_sequence(&cache, "dev_a"), Some(2));
    }

    #[test]
    fn forgetting_drops_the_view() {
        let cache = CheckinCache::new(10);
        cache.fill("dev_a", &view(1), 0);
        cache.forget("dev_a");
        assert_eq!(cached_sequence(&cache, "dev_a"), None);
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = CheckinCache::new(2);
        for (i, id) in ["dev_a", "dev_b", "dev_c"].into_iter().enumerate() {
            cache.fill(id, &view(i as i64), 0);
        }
        assert_eq!(cache.lock().views.len(), 2);
        assert_eq!(cached_sequence(&cache, "dev_c"), Some(2));
    }

    #[test]
    fn the_warm_up_skips_devices_written_since_it_began() {
        let cache = CheckinCache::new(10);
        cache.forget("dev_before"); // Before the warm-up: its read is current.
        cache.begin_warm_up();
        // The scan reads dev_a, dev_b, dev_c, dev_before at sequence 1; then dev_b is written
        // (sequence 2) and a check-in caches dev_c's current view (sequence 3).
        cache.forget("dev_b");
        let Lookup::Miss(epoch) = cache.lookup("dev_c") else {
            panic!("hit before any fill");
        };
        cache.fill("dev_c", &view(3), epoch);
        let read = ["dev_a", "dev_b", "dev_c", "dev_before"]
            .map(|id| (id.to_string(), view(1)))
            .to_vec();
        assert_eq!(cache.warm(read), (2, true));
        assert_eq!(cached_sequence(&cache, "dev_a"), Some(1));
        assert_eq!(cached_sequence(&cache, "dev_b"), None);
        assert_eq!(cached_sequence(&cache, "dev_c"), Some(3));
        assert_eq!(cached_sequence(&cache, "dev_before"), Some(1));

        // A view offered before the write is dropped by it, and not offered again.
        cache.forget("dev_a");
        assert_eq!(cached_sequence(&cache, "dev_a"), None);
        assert_eq!(cache.warm(vec![("dev_a".to_string(), view(1))]), (0, true));
        assert_eq!(cached_sequence(&cache, "dev_a"), None);

        cache.end_warm_up();
        assert_eq!(cache.warm(vec![("dev_d".to_string(), view(1))]), (0, false));
        assert_eq!(cached_sequence(&cache, "dev_d"), None);
    }

    #[test]
    fn the_warm_up_stops_when_full_without_evicting() {
        let cache = CheckinCache::new(2);
        cache.fill("dev_a", &view(1), 0);
        cache.begin_warm_up();
        let read = ["dev_b", "dev_c"]
            .map(|id| (id.to_string(), view(2)))
            .to_vec();
        assert_eq!(cache.warm(read), (1, false));
        assert_eq!(cached_sequence(&cache, "dev_a"), Some(1));
        assert_eq!(cached_sequence(&cache, "dev_b"), Some(2));
        assert_eq!(cached_sequence(&cache, "dev_c"), None);
    }
}
