//! The scheduler: evaluates devices whose decision is due, in batches.
//!
//! Every stored decision carries the time it next changes by itself. The store keeps an index
//! on it, so each pass costs as much as the number of due devices, not of all devices; claims
//! (with `SKIP LOCKED` on PostgreSQL) make several servers share the work without evaluating
//! a device twice.

use std::time::Duration;

use futures_util::StreamExt;

use lien_store::{DeviceChange, DeviceSnapshot, StoreError};
use tokio::sync::watch;

use crate::app::AppState;
use crate::clock::micros;
use crate::error::ApiError;
use crate::routes::{Mutation, complete};

/// How long a claim holds before another server may take the device over.
const CLAIM_SECS: i64 = 60;

/// Runs until `shutdown`: a pass every interval, or sooner when woken.
pub async fn run(state: AppState, mut stopping: watch::Receiver<bool>) {
    let interval = Duration::from_millis(state.settings.scheduler_interval_ms);
    loop {
        if let Err(err) = run_due(&state).await {
            tracing::error!(error = format!("{err:#}"), "scheduler pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = state.scheduler_wake.notified() => {}
            _ = crate::app::until_stopped(&mut stopping) => break,
        }
    }
}

/// Evaluates every device due now; returns how many.
pub async fn run_due(state: &AppState) -> anyhow::Result<usize> {
    let mut total = 0;
    let batch = state.settings.scheduler_batch.max(1);
    loop {
        let now = state.clock.now();
        let now_us = micros(now);
        if let Some(due) = state.store.next_due().await?
            && due <= now_us
        {
            state.metrics.scheduler_lag_ms.set((now_us - due) / 1000);
        }
        let ids = state
            .store
            .claim_due(now_us, now_us + CLAIM_SECS * 1_000_000, batch)
            .await?;
        // On PostgreSQL the groups run side by side on connections of their own. SQLite has
        // one writer: a second group would only wait for it, with any payment behind it.
        let in_flight = match state.store.backend() {
            "sqlite" => 1,
            _ => GROUPS_IN_FLIGHT,
        };
        let groups: Vec<Vec<String>> = ids.chunks(DEVICES_PER_COMMIT).map(<[_]>::to_vec).collect();
        let failures: Vec<anyhow::Error> = futures_util::stream::iter(groups)
            .map(|group| async move { evaluate_group(state, &group).await })
            .buffer_unordered(in_flight)
            .filter_map(|result| async move { result.err() })
            .collect()
            .await;
        // The first failure ends the pass; the claims of the devices not written run out,
        // and the next pass takes them again.
        if let Some(err) = failures.into_iter().next() {
            return Err(err);
        }
        total += ids.len();
        if ids.len() < batch as usize {
            return Ok(total);
        }
    }
}

/// How many devices' evaluations share one transaction, read and written a table at a time:
/// one commit (an `fsync`) and a few statements for the whole group instead of a dozen
/// statements and a commit per device. A bigger group holds SQLite's write lock longer, and a
/// payment waiting behind it waits for the whole group (tens of milliseconds).
const DEVICES_PER_COMMIT: usize = 250;

/// How many groups are evaluated at once on PostgreSQL.
const GROUPS_IN_FLIGHT: usize = 4;

/// Evaluates one group. If its write fails for a reason of its own (one device's write breaking
/// a rule, say), evaluates each of its devices alone, so that one device does not hold back the
/// others. A failure of the database itself ends the pass: retrying device by device would only
/// wait for it once per device.
async fn evaluate_group(state: &AppState, group: &[String]) -> anyhow::Result<()> {
    let Err(err) = evaluate(state, group).await else {
        return Ok(());
    };
    if is_backend(&err) || group.len() == 1 {
        return Err(err);
    }
    tracing::warn!(
        error = format!("{err:#}"),
        "a group evaluation failed; evaluating its devices one by one"
    );
    for id in group {
        if let Err(err) = evaluate(state, std::slice::from_ref(id)).await {
            if is_backend(&err) {
                return Err(err);
            }
            tracing::error!(device = %id, error = format!("{err:#}"), "scheduled evaluation failed");
        }
    }
    Ok(())
}

/// Whether `err` is the database failing, rather than a write it refused.
fn is_backend(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<StoreError>(),
        Some(StoreError::Backend(_))
    )
}

/// Takes the devices' decisions again at the current time, in one transaction. Only a change
/// of state is audited; a lease renewal signs a new token without one. A device whose
/// evaluation is refused is logged and left as it was (its claim runs out and it is tried
/// again); a failed write fails the group.
async fn evaluate(state: &AppState, ids: &[String]) -> anyhow::Result<()> {
    let now = state.clock.now();
    let (sender, transitions) = std::sync::mpsc::channel();
    let changes = ids
        .iter()
        .map(|id| {
            let closure_state = state.clone();
            let sender = sender.clone();
            let change: lien_store::ChangeFn = Box::new(move |snapshot: &DeviceSnapshot| {
                let run = || -> Result<DeviceChange, ApiError> {
                    let mutation = Mutation {
                        action: "scheduled",
                        reason: "the schedule reached its next step".into(),
                        change: DeviceChange::default(),
                        response: Some(serde_json::Value::Null),
                    };
                    let (mut change, _, before, after) =
                        complete(&closure_state, snapshot, "scheduler", mutation, now)?;
                    if before == after {
                        change.audit.clear();
                    } else if after == "released" {
                        change.audit[0].action = "released".into();
                        change.audit[0].reason = "the release became final".into();
                    } else if let Some(unlock) = appeal_unlock_begun(snapshot, micros(now)) {
                        // An appeal's deadline passed unanswered: say so in the history.
                        change.audit[0].action = "appeal_deadline".into();
                        change.audit[0].reason = unlock.reason.clone();
                    }
                    let _ = sender.send((snapshot.device.enrolled.id.clone(), before, after));
                    Ok(change)
                };
                run().map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            });
            (id.clone(), change)
        })
        .collect();
    drop(sender);
    let results = state.store.update_devices(changes).await?;
    let mut written = std::collections::HashSet::new();
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(()) => {
                written.insert(id.clone());
            }
            Err(err) => {
                let err = ApiError::from(err);
                tracing::error!(device = %id, error = ?err, "scheduled evaluation failed");
            }
        }
    }
    // `complete` counted the tokens it signed; the state changes count once written.
    for (id, before, after) in transitions.try_iter() {
        if written.contains(&id) {
            state.metrics.state_changed(&before, &after);
        }
    }
    Ok(())
}

/// A provisional unlock an appeal put in force (its actor is `appeal:<reference>`) that is in
/// effect at `now_us`: the scheduler's change then comes from the appeal's deadline.
fn appeal_unlock_begun(
    snapshot: &DeviceSnapshot,
    now_us: i64,
) -> Option<&lien_store::OverrideRecord> {
    snapshot.overrides.iter().find(|o| {
        o.kind == crate::domain::kind::PROVISIONAL_UNLOCK
            && o.actor.starts_with("appeal:")
            && o.cancelled_us.is_none()
            && o.from_us <= now_us
            && o.until_us.is_some_and(|u| now_us < u)
    })
}
