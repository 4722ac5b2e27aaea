//! The scheduler: evaluates devices whose decision is due, in batches.
//!
//! Every stored decision carries the time it next changes by itself. The store keeps an index
//! on it, so each pass costs as much as the number of due devices, not of all devices; claims
//! (with `SKIP LOCKED` on PostgreSQL) make several servers share the work without evaluating
//! a device twice.
//!
//! A group of devices is read and decided (its tokens signed) without a write lock, while the
//! group before it is being written; the store then writes each decision only if its device
//! was not written in between (`Devices::write_decided`). The few devices a payment or an
//! override reached in between are decided again under their row locks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;

use lien_store::{DeviceChange, DeviceRecord, DeviceSnapshot, DevicesExt, StoreError, UpdateError};
use tokio::sync::{Semaphore, watch};

use crate::app::AppState;
use crate::clock::micros;
use crate::commands::scheduled::decide;
use crate::error::ApiError;
use crate::wire::DeviceStateJson;

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
///
/// Claims come in batches, cut into groups. Each group is read and decided on a task of its
/// own, one group at a time, while the groups before it are written: the deciding (the reads,
/// the signatures) goes on, on another core, while the writer waits for the disk. After a
/// failure no more devices are claimed, the groups already decided are still written, and the
/// first failure is returned.
pub async fn run_due(state: &AppState) -> anyhow::Result<usize> {
    // On PostgreSQL the groups' writes run side by side on connections of their own. SQLite
    // has one writer: a second group would only wait for it, with any payment behind it.
    let in_flight = match state.store.backend() {
        "sqlite" => 1,
        _ => GROUPS_IN_FLIGHT,
    };
    let (decisions, decided) = tokio::sync::mpsc::channel(in_flight);
    let failed = &AtomicBool::new(false);
    // One group decided at a time: more would only take CPU from the requests, and on
    // PostgreSQL connections from the pool.
    let deciding = Arc::new(Semaphore::new(1));
    // Owns the sender, so that the writes end when the claims do.
    let claim = async move {
        let batch = state.settings.scheduler_batch.max(1);
        let mut total = 0;
        while !failed.load(Ordering::Relaxed) {
            let ids = claim_batch(state, batch).await?;
            total += ids.len();
            for group in ids.chunks(DEVICES_PER_COMMIT) {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let turn = deciding.clone().acquire_owned().await?;
                let (state, group) = (state.clone(), group.to_vec());
                let decision = tokio::spawn(async move {
                    let decided = decide_group(&state, group).await;
                    drop(turn);
                    decided
                });
                if decisions.send(decision).await.is_err() {
                    return Ok(total);
                }
            }
            if ids.len() < batch as usize {
                break;
            }
        }
        anyhow::Ok(total)
    };
    let write = futures_util::stream::unfold(decided, |mut decided| async move {
        let decision = decided.recv().await?;
        Some((decision, decided))
    })
    .map(|decision| async move {
        let decided = decision.await.map_err(anyhow::Error::from)??;
        write_group(state, decided).await
    })
    .buffer_unordered(in_flight)
    .fold(None, |first: Option<anyhow::Error>, result| {
        let failure = result.err();
        if failure.is_some() {
            failed.store(true, Ordering::Relaxed);
        }
        async move { first.or(failure) }
    });
    let (claimed, failure) = tokio::join!(claim, write);
    match failure {
        Some(err) => Err(err),
        None => claimed,
    }
}

/// Claims the next `batch` devices due now, for this server alone until the claim runs out.
async fn claim_batch(state: &AppState, batch: u32) -> anyhow::Result<Vec<String>> {
    let now_us = micros(state.clock.now());
    if let Some(due) = state.store.next_due().await?
        && due <= now_us
    {
        state.metrics.scheduler_lag_ms.set((now_us - due) / 1000);
    }
    let claim_until_us = now_us + CLAIM_SECS * 1_000_000;
    Ok(state.store.claim_due(now_us, claim_until_us, batch).await?)
}

/// How many devices' evaluations share one transaction, read and written a table at a time:
/// one commit (an `fsync`) and a few statements for the whole group instead of a dozen
/// statements and a commit per device. A bigger group holds SQLite's write lock longer, and a
/// payment waiting behind it waits for the group's write: about a tenth of a second for 500
/// on a 2-core machine, as the reading and deciding happen before the lock is taken. Groups of
/// 1,000 were no faster with 1,000,000 plans (BENCHMARKS.md, the scheduler's section).
const DEVICES_PER_COMMIT: usize = 500;

/// How many groups are evaluated at once on PostgreSQL.
const GROUPS_IN_FLIGHT: usize = 4;

/// A group's changes, each decided on the device as it was read, with the state it moves
/// from and to (counted once written).
struct Decided {
    changes: Vec<(DeviceRecord, DeviceChange)>,
    transitions: Vec<(DeviceStateJson, DeviceStateJson)>,
}

/// Reads the group's devices and decides each at the current time, without a write lock. A
/// device whose decision fails is logged and left as it was: its claim runs out and it is
/// tried again.
async fn decide_group(state: &AppState, ids: Vec<String>) -> anyhow::Result<Decided> {
    let now = state.clock.now();
    let snapshots = state.store.snapshots(&ids).await?;
    // Signing a group's tokens takes tens of milliseconds of CPU: on a thread of its own, so
    // that the runtime's workers stay free for requests.
    let state = state.clone();
    let decided = tokio::task::spawn_blocking(move || {
        let mut decided = Decided {
            changes: Vec::with_capacity(snapshots.len()),
            transitions: Vec::with_capacity(snapshots.len()),
        };
        for snapshot in snapshots {
            match decide(&state, &snapshot, now) {
                Ok((change, before, after)) => {
                    decided.changes.push((snapshot.device, change));
                    decided.transitions.push((before, after));
                }
                Err(err) => log_failed(&snapshot.device.enrolled.id, err),
            }
        }
        decided
    })
    .await?;
    Ok(decided)
}

/// Writes a group's decisions. The devices written since they were read, or all of them when
/// the group's write fails for a reason of its own, are evaluated again under their locks.
async fn write_group(state: &AppState, decided: Decided) -> anyhow::Result<()> {
    let ids: Vec<String> = decided
        .changes
        .iter()
        .map(|(device, _)| device.enrolled.id.clone())
        .collect();
    let again = match state.store.write_decided(decided.changes).await {
        Ok(results) => {
            let mut again = Vec::new();
            for ((id, (before, after)), result) in
                ids.into_iter().zip(decided.transitions).zip(results)
            {
                match result {
                    Ok(()) => state.metrics.state_changed(&before, &after),
                    // Decided on what is no longer true.
                    Err(StoreError::VersionConflict { .. }) => again.push(id),
                    Err(err) => log_failed(&id, err.into()),
                }
            }
            again
        }
        Err(err @ (StoreError::Backend(_) | StoreError::Unavailable(_))) => return Err(err.into()),
        Err(err) => {
            tracing::warn!(
                error = format!("{err:#}"),
                "a group's write failed; evaluating it again under its locks"
            );
            ids
        }
    };
    if again.is_empty() {
        return Ok(());
    }
    evaluate_group(state, &again).await
}

/// Evaluates one group under its devices' locks. If its write fails for a reason of its own
/// (one device's write breaking a rule, say), evaluates each of its devices alone, so that one
/// device does not hold back the others. A failure of the database itself ends the pass:
/// retrying device by device would only wait for it once per device.
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

/// Logs why a device's evaluation was left out; its claim runs out and it is tried again.
fn log_failed(id: &str, err: ApiError) {
    tracing::error!(device = %id, error = ?err, "scheduled evaluation failed");
}

/// Whether `err` is the database failing, rather than a write it refused.
fn is_backend(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<StoreError>(),
        Some(StoreError::Backend(_) | StoreError::Unavailable(_))
    )
}

/// Takes the devices' decisions again at the current time, in one transaction, each on the
/// device read under its lock. A device whose evaluation is refused is logged and left as it
/// was (its claim runs out and it is tried again); a failed write fails the group.
async fn evaluate(state: &AppState, ids: &[String]) -> anyhow::Result<()> {
    let now = state.clock.now();
    let changes = ids
        .iter()
        .map(|id| {
            let closure_state = state.clone();
            let change = move |snapshot: &DeviceSnapshot| {
                let (change, before, after) = decide(&closure_state, snapshot, now)?;
                Ok::<_, ApiError>((change, (before, after)))
            };
            (id.clone(), change)
        })
        .collect();
    let results = state.store.update_devices_with(changes).await?;
    for (id, result) in ids.iter().zip(results) {
        match result {
            // `complete` counted the tokens it signed; the state changes count once written.
            Ok((before, after)) => state.metrics.state_changed(&before, &after),
            Err(UpdateError::Refused(err)) => log_failed(id, err),
            Err(UpdateError::Store(err)) => log_failed(id, err.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jiff::Timestamp;
    use lien_store::{AuditEntry, DeviceChange, Financier, OverrideRecord};

    use super::{decide_group, write_group};
    use crate::app::AppState;
    use crate::clock::{Clock, ManualClock, micros};
    use crate::commands::prepare_enrollment;
    use crate::config::Settings;
    use crate::domain::StoredKind;
    use crate::secrets::Secrets;
    use crate::wire::DeviceStateJson;

    /// A device written between its group's read and the group's write (here, support's
    /// provisional unlock, which signs no token of its own) is not given the decision taken
    /// before it: the group's write leaves it out, and it is decided again, unlocked.
    #[tokio::test]
    async fn a_device_written_while_its_group_is_decided_is_decided_again() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            data_dir: dir.path().to_path_buf(),
            ..Settings::default()
        };
        let store = crate::open_store(&settings).await.unwrap();
        let secrets = Secrets::load_or_create(dir.path()).unwrap();
        let clock = ManualClock::new("2026-01-10T09:00:00Z".parse::<Timestamp>().unwrap());
        let state = AppState::new(store, Arc::new(clock.clone()), secrets, settings);
        let now = clock.now();
        let financier = Financier {
            id: "fin_1".into(),
            name: "Duka Phones".into(),
            contact: "+254 700 000 000".into(),
            payment_link: None,
            created_us: micros(now),
        };
        let audit = AuditEntry {
            at_us: micros(now),
            actor: "test".into(),
            action: "financier_created".into(),
            reason: "test".into(),
            before_json: "null".into(),
            after_json: "null".into(),
        };
        state
            .store
            .create_financier(&financier, &audit)
            .await
            .unwrap();
        let request = serde_json::from_value(serde_json::json!({
            "contract_ref": "C-1",
            "imei1": "356938035643809",
            "serial": "SN1",
            "model": "Phone X",
            "plan": {
                "currency": "KES",
                "time_zone": "Africa/Nairobi",
                "down_payment_minor": 200000,
                "installments": [{"due": "2026-02-01", "amount_minor": 100000}]
            },
            "policy": {"preset": "kenya"}
        }))
        .unwrap();
        let (device, change) =
            prepare_enrollment(&state, &financier, "test", &request, now).unwrap();
        let id = state
            .store
            .enroll(&device, change)
            .await
            .unwrap()
            .enrolled
            .id;

        // The phone was never seen: the Kenya preset serves its notice 3 days after it was
        // shown (5 February), and the 3 days to cure end on 8 February: the scheduler locks.
        clock.set("2026-02-08T10:00:00+03:00".parse().unwrap());
        let now_us = micros(clock.now());
        let decided = decide_group(&state, vec![id.clone()]).await.unwrap();
        assert_eq!(decided.transitions[0].1, DeviceStateJson::Locked);

        // Support unlocks the phone for three days before the scheduler writes.
        let unlock = OverrideRecord {
            id: 0,
            kind: StoredKind::ProvisionalUnlock.as_str().into(),
            reason: "payment being traced".into(),
            from_us: now_us,
            until_us: Some(now_us + 3 * 86_400_000_000),
            cancelled_us: None,
            actor: "support".into(),
            created_us: now_us,
        };
        let current = state.store.device(&id).await.unwrap();
        let written = DeviceChange {
            new_override: Some(unlock),
            next_eval_us: current.next_eval_us,
            ..DeviceChange::default()
        };
        state
            .store
            .update_device(&id, Box::new(move |_| Ok(written)))
            .await
            .unwrap();

        write_group(&state, decided).await.unwrap();
        let stored = state.store.device(&id).await.unwrap();
        assert_ne!(stored.decision.state, "locked", "{:?}", stored.decision);
        assert_ne!(stored.token.map(|t| t.state).as_deref(), Some("locked"));
    }
}
