//! The scheduler's claims on a SQLite database, kept in memory.
//!
//! A claim keeps a due device from being evaluated twice at once. On PostgreSQL, where several
//! servers share the work, it is a column of the device's row (`claimed_until_us`). A SQLite
//! file is served by one process (its lock file sees to that), so its claims are kept here
//! instead: writing them would cost a page of the log for every device claimed, about as much
//! as evaluating the device. They follow the column's rules: a claim holds until its end time
//! has passed or until the device is written, whichever comes first.

use std::collections::HashMap;
use std::sync::Mutex;

/// The claims in force, by device id, with their end times.
#[derive(Debug, Default)]
pub(super) struct Claims {
    held: Mutex<HashMap<String, i64>>,
    /// Taken by each claimer in turn: two that read the same due devices before either took
    /// them would both try to take the same ones, and the second would get none.
    turn: tokio::sync::Mutex<()>,
}

impl Claims {
    /// Claims until `until_us` up to `limit` due devices that no claim in force at `now_us`
    /// holds. `read_due(n)` reads the first `n` devices due, in order; it is asked for as many
    /// more as there are claims held, as it cannot tell which of them those are.
    pub(super) async fn claim<E, Fut>(
        &self,
        now_us: i64,
        until_us: i64,
        limit: usize,
        read_due: impl FnOnce(usize) -> Fut,
    ) -> Result<Vec<String>, E>
    where
        Fut: std::future::Future<Output = Result<Vec<String>, E>>,
    {
        let _turn = self.turn.lock().await;
        let held = self.lock().len();
        let due = read_due(limit + held).await?;
        Ok(self.take(due, now_us, until_us, limit))
    }

    /// Claims until `until_us` up to `limit` of `due`, in its order, leaving out the devices
    /// a claim in force at `now_us` holds.
    fn take(&self, due: Vec<String>, now_us: i64, until_us: i64, limit: usize) -> Vec<String> {
        let mut held = self.lock();
        held.retain(|_, end| *end >= now_us);
        let mut taken = Vec::with_capacity(limit.min(due.len()));
        for id in due {
            if taken.len() == limit {
                break;
            }
            if !held.contains_key(&id) {
                held.insert(id.clone(), until_us);
                taken.push(id);
            }
        }
        taken
    }

    /// Ends the device's claim, if it has one: it was written.
    pub(super) fn release(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // The map stays consistent whatever panicked while holding it.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::Claims;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn a_claim_holds_until_it_ends_or_its_device_is_written() {
        let claims = Claims::default();
        assert_eq!(
            claims.take(ids(&["a", "b", "c"]), 0, 60, 2),
            ids(&["a", "b"])
        );
        assert_eq!(claims.take(ids(&["a", "b", "c"]), 10, 70, 5), ids(&["c"]));
        claims.release("a");
        assert_eq!(claims.take(ids(&["a", "b"]), 20, 80, 5), ids(&["a"]));
        assert_eq!(claims.lock().len(), 3);
        // b's claim ended at 60; c's at 70 holds at 70 and ends after it.
        assert_eq!(claims.take(ids(&["b", "c"]), 70, 130, 5), ids(&["b"]));
        assert_eq!(claims.take(ids(&["c"]), 71, 131, 5), ids(&["c"]));
    }
}
