//! Filling the check-in cache when a SQLite store opens.
//!
//! A server restarted with a large fleet would otherwise answer every device's first check-in
//! from the database, one `SELECT` (and several thread hand-offs) each, for as long as it takes
//! the fleet to check in once: hours, with phones that check in every few. One scan of the
//! devices table loads the same views at a small fraction of that cost.
//!
//! The scan runs on a task of its own, so that opening the store (and starting the server)
//! does not wait for it; check-ins meanwhile read the database as before. It reads the table
//! in pages of rows, each page its own short statement, so that it never holds a read
//! transaction open long enough to keep the writer's log from being checkpointed, and offers
//! each page to [`CheckinCache::warm`], which keeps only what it can vouch for (see
//! [`super::checkin_cache`]). With more devices than the cache holds, it loads the most
//! recently seen.

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use sqlx::{AnyPool, Row};

use super::checkin_cache::CheckinCache;
use super::devices::{CHECKIN_COLUMNS, checkin_view_from};

/// Rows per page of the scan: large enough that a page costs little more than its rows, small
/// enough that a check-in waiting for the cache's lock or a read connection hardly notices.
const PAGE: i64 = 1_000;

/// The columns before a view's: the row's `rowid` (the scan's cursor) and the device's id.
const COLUMNS: &str = "rowid, id";

/// How many views the warm-up kept and how long it took, set once it has ended.
pub(super) type Outcome = Arc<OnceLock<(usize, Duration)>>;

/// Starts warming `cache` from the database behind `read` on a task of its own, and returns
/// where its outcome will be. The warm-up begins, for [`CheckinCache::warm`], before this
/// returns; it ends early if the store is dropped, since only a weak reference is kept.
pub(super) fn start(read: AnyPool, cache: &Arc<CheckinCache>, capacity: usize) -> Outcome {
    let outcome = Outcome::default();
    cache.begin_warm_up();
    let guard = EndWarmUp(Arc::downgrade(cache));
    let done = outcome.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        let mut loaded = 0;
        match scan(&read, &guard.0, capacity, &mut loaded).await {
            Ok(()) => tracing::info!(
                views = loaded,
                ms = started.elapsed().as_millis() as u64,
                "check-in cache warmed"
            ),
            // Not fatal: check-ins read the database until their device is cached.
            Err(err) => tracing::warn!(
                error = &err as &dyn std::error::Error,
                views = loaded,
                "warming the check-in cache failed part way"
            ),
        }
        drop(guard);
        let _ = done.set((loaded, started.elapsed()));
    });
    outcome
}

/// Ends the warm-up however its task ends, even if the runtime drops it: the cache would
/// otherwise keep recording forgotten devices for a warm-up that never ends.
struct EndWarmUp(Weak<CheckinCache>);

impl Drop for EndWarmUp {
    fn drop(&mut self) {
        if let Some(cache) = self.0.upgrade() {
            cache.end_warm_up();
        }
    }
}

/// Reads views page by page into the cache until the table or the cache's room runs out,
/// counting in `loaded` the views kept.
async fn scan(
    read: &AnyPool,
    cache: &Weak<CheckinCache>,
    capacity: usize,
    loaded: &mut usize,
) -> Result<(), sqlx::Error> {
    let devices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices")
        .fetch_one(read)
        .await?;
    // Everything when it fits, in table order, which is the cheapest to read. Otherwise the
    // devices seen at or after the last-seen time of the capacity-th most recent, then, if
    // there is room left, those never seen.
    let passes = if usize::try_from(devices).unwrap_or(usize::MAX) <= capacity {
        vec![(String::new(), None)]
    } else {
        let offset = i64::try_from(capacity).unwrap_or(i64::MAX) - 1;
        let cutoff: Option<i64> = sqlx::query(
            "SELECT last_seen_us FROM devices ORDER BY last_seen_us DESC LIMIT 1 OFFSET $1",
        )
        .bind(offset)
        .fetch_one(read)
        .await?
        .try_get(0)?;
        vec![
            (
                " AND last_seen_us >= $3".to_string(),
                Some(cutoff.unwrap_or(i64::MIN)),
            ),
            (" AND last_seen_us IS NULL".to_string(), None),
        ]
    };
    for (filter, cutoff) in passes {
        let sql = format!(
            "SELECT {COLUMNS}, {CHECKIN_COLUMNS} FROM devices WHERE rowid > $1{filter} ORDER BY rowid LIMIT $2"
        );
        let mut after = 0_i64;
        loop {
            // Safe: the text is built from fixed clauses and placeholders; values are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(after)
                .bind(PAGE);
            if let Some(cutoff) = cutoff {
                query = query.bind(cutoff);
            }
            let rows = query.fetch_all(read).await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.try_get(0)?;
            let page = rows
                .iter()
                .map(|row| Ok((row.try_get::<String, _>(1)?, checkin_view_from(row, 2)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let Some(cache) = cache.upgrade() else {
                return Ok(()); // The store is gone.
            };
            let (kept, room) = cache.warm(page);
            *loaded += kept;
            if !room {
                return Ok(());
            }
            if rows.len() < PAGE as usize {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::checkin_cache::Lookup;

    /// Devices `dev_0` to `dev_5`, last seen at these times (`None`: never), in table order.
    const LAST_SEEN: [Option<i64>; 6] = [None, Some(5), Some(1), Some(9), None, Some(7)];

    /// The devices a warm-up with room for `capacity` views loads.
    async fn warmed(capacity: usize) -> Vec<usize> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = crate::SqlStore::open(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO financiers (id, name, contact, created_us) VALUES ('fin_a', 'A', 'a', 0)",
        )
        .execute(&store.write)
        .await
        .unwrap();
        for (i, seen) in LAST_SEEN.iter().enumerate() {
            sqlx::query(
                "INSERT INTO devices (id, financier_id, contract_ref, imei1, serial, model, \
                 plan_json, policy_json, enrolled_us, state, decision_json, amount_due_minor, \
                 currency, last_seen_us) \
                 VALUES ($1, 'fin_a', $1, $1, $1, 'm', '{}', '{}', 0, 'active', '{}', 0, 'KES', $2)",
            )
            .bind(format!("dev_{i}"))
            .bind(*seen)
            .execute(&store.write)
            .await
            .unwrap();
        }
        let cache = Arc::new(CheckinCache::new(capacity));
        let outcome = start(store.read.clone(), &cache, capacity);
        while outcome.get().is_none() {
            tokio::task::yield_now().await;
        }
        let kept: Vec<usize> = (0..LAST_SEEN.len())
            .filter(|i| matches!(cache.lookup(&format!("dev_{i}")), Lookup::Hit(_)))
            .collect();
        assert_eq!(outcome.get().unwrap().0, kept.len());
        kept
    }

    #[tokio::test]
    async fn everything_when_it_fits() {
        assert_eq!(warmed(6).await, [0, 1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn the_most_recently_seen_when_it_does_not() {
        // Seen at 9, 7 and 5.
        assert_eq!(warmed(3).await, [1, 3, 5]);
        // Every device seen, then one never seen.
        assert_eq!(warmed(5).await, [0, 1, 2, 3, 5]);
    }
}
