//! Writing devices' changes. Every device write in Lien ends in [`apply_all`], for one device
//! or a scheduler's group: the devices' rows, and the rows most changes add (tokens, audit
//! records), a table at a time for the whole group.

use sqlx::{Any, Transaction};

use super::audit_log::append_audits;
use std::collections::{BTreeMap, HashSet};

use super::rows::{Value, insert_rows, update_from_values};
use super::{backend, unique_or_backend};
use crate::{DeviceChange, DeviceRecord, StoreError};

/// Refuses a change the store must not write, before anything of it is: a token whose
/// sequence is not above the device's current one.
pub(super) fn check(current: &DeviceRecord, change: &DeviceChange) -> Result<(), StoreError> {
    if let Some(t) = &change.token {
        let current_sequence = current.token.as_ref().map_or(0, |t| t.sequence);
        if t.sequence <= current_sequence {
            return Err(StoreError::Conflict(format!(
                "token sequence {} is not above the current {current_sequence}",
                t.sequence
            )));
        }
    }
    Ok(())
}

/// Whether a device's row is written whatever its version, or only if it is still at the
/// version of the record its change was decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Versions {
    /// The change was decided on the row read under its lock, in this transaction.
    Any,
    /// The change was decided on a read made earlier, outside any lock.
    AsRead,
}

/// Applies each device's change inside `tx`; a device may appear only once. Returns the ids
/// of the devices left out because their version moved ([`Versions::AsRead`] only): nothing
/// of theirs is written. Callers that write a group [`check`] each change first, to leave out
/// only the devices it refuses; on any error here the transaction must be abandoned, as some
/// of the writes may have been made.
pub(super) async fn apply_all(
    tx: &mut Transaction<'_, Any>,
    changes: &[(&DeviceRecord, &DeviceChange)],
    versions: Versions,
) -> Result<HashSet<String>, StoreError> {
    for (current, change) in changes {
        check(current, change)?;
    }
    // The devices' own rows first: the versions are checked in the same statements, so that
    // nothing else is written for a device that moved.
    let moved = update_rows(tx, changes, versions).await?;
    let changes: Vec<(&DeviceRecord, &DeviceChange)> = changes
        .iter()
        .filter(|(current, _)| !moved.contains(&current.enrolled.id))
        .copied()
        .collect();
    for (current, change) in &changes {
        apply_own_rows(tx, &current.enrolled.id, change).await?;
        if !change.outbox.is_empty() {
            // Every write moves the version by one (`update_rows`), and the version read here
            // is the one written over (under the row lock, or checked by `Versions::AsRead`).
            super::webhooks::insert_events(
                tx,
                &current.enrolled.financier_id,
                Some(&current.enrolled.id),
                Some(current.version + 1),
                &change.outbox,
            )
            .await?;
        }
    }
    let tokens = changes
        .iter()
        .filter_map(|(current, change)| {
            Some((current.enrolled.id.as_str(), change.token.as_ref()?))
        })
        .map(|(id, t)| {
            vec![
                Value::from(id),
                Value::from(t.sequence),
                Value::from(&t.state),
                Value::from(t.issued_us),
                Value::from(&t.status_code),
                Value::from(&t.bytes),
            ]
        })
        .collect::<Vec<_>>();
    if !tokens.is_empty() {
        insert_rows(
            tx,
            "tokens (device_id, sequence, state, issued_us, status_code, token)",
            tokens,
            "this token sequence was already issued",
        )
        .await?;
    }
    // A token whose state is not its predecessor's is a transition (a lock, an unlock...):
    // kept apart so that a day's are counted without reading every token.
    let transitions = changes
        .iter()
        .filter_map(|(current, change)| {
            let token = change.token.as_ref()?;
            let before = current.token.as_ref().map(|t| t.state.as_str());
            (before != Some(token.state.as_str())).then(|| {
                vec![
                    Value::from(&current.enrolled.id),
                    Value::from(&current.enrolled.financier_id),
                    Value::from(token.sequence),
                    Value::Text(before.map(str::to_string)),
                    Value::from(&token.state),
                    Value::from(token.issued_us),
                ]
            })
        })
        .collect::<Vec<_>>();
    if !transitions.is_empty() {
        insert_rows(
            tx,
            "token_transitions (device_id, financier_id, sequence, from_state, to_state, at_us)",
            transitions,
            "this token sequence was already issued",
        )
        .await?;
    }
    let audits: Vec<(&str, &[crate::AuditEntry])> = changes
        .iter()
        .map(|(current, change)| (current.enrolled.id.as_str(), change.audit.as_slice()))
        .collect();
    append_audits(tx, &audits).await?;
    for (_, change) in changes {
        if let Some(r) = &change.idempotency {
            sqlx::query(
                "INSERT INTO idempotency (scope, key, request_hash, status, body, created_us) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.scope)
            .bind(&r.key)
            .bind(r.request_hash.clone())
            .bind(i64::from(r.status))
            .bind(&r.body)
            .bind(change.audit.first().map_or(0, |a| a.at_us))
            .execute(&mut **tx)
            .await
            .map_err(|e| match unique_or_backend(e, "") {
                StoreError::Conflict(_) => StoreError::IdempotencyConflict,
                other => other,
            })?;
        }
    }
    Ok(moved)
}

/// The rows only some changes write (payments, reversals, overrides, events, appeals, a
/// release's IMEI claims), one statement each.
async fn apply_own_rows(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    change: &DeviceChange,
) -> Result<(), StoreError> {
    if let Some(p) = &change.payment {
        sqlx::query(
            "INSERT INTO payments (device_id, reference, amount_minor, currency, received_us, \
             recorded_us, token_sequence) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(&p.reference)
        .bind(p.amount_minor)
        .bind(&p.currency)
        .bind(p.received_us)
        .bind(p.recorded_us)
        .bind(change.token.as_ref().map(|t| t.sequence))
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            unique_or_backend(
                e,
                format!(
                    "a payment with reference {:?} is already recorded for this device",
                    p.reference
                ),
            )
        })?;
    }
    if let (Some(applied), Some(at_us)) = (change.applied_sequence, change.acknowledged_us) {
        sqlx::query(
            "UPDATE payments SET acked_us = $1 WHERE device_id = $2 AND acked_us IS NULL \
             AND token_sequence <= $3",
        )
        .bind(at_us)
        .bind(id)
        .bind(applied)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    if let Some(r) = &change.reversal {
        sqlx::query(
            "INSERT INTO reversals (device_id, reference, at_us, recorded_us, reason) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&r.reference)
        .bind(r.at_us)
        .bind(r.recorded_us)
        .bind(&r.reason)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            unique_or_backend(e, format!("payment {:?} is already reversed", r.reference))
        })?;
    }
    for o in change.new_override.iter().chain(&change.more_overrides) {
        sqlx::query(
            "INSERT INTO overrides (device_id, kind, reason, from_us, until_us, cancelled_us, actor, created_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(&o.kind)
        .bind(&o.reason)
        .bind(o.from_us)
        .bind(o.until_us)
        .bind(o.cancelled_us)
        .bind(&o.actor)
        .bind(o.created_us)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    for u in &change.override_updates {
        sqlx::query(
            "UPDATE overrides SET until_us = COALESCE($1, until_us), cancelled_us = COALESCE($2, cancelled_us) \
             WHERE id = $3 AND device_id = $4",
        )
        .bind(u.until_us)
        .bind(u.cancelled_us)
        .bind(u.id)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    if change.released_us.is_some() {
        // The financier's claim ends: the IMEIs may be financed again.
        sqlx::query("DELETE FROM device_imeis WHERE device_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    if let Some(old) = &change.superseded_plan {
        super::plans::keep(tx, id, old).await?;
    }
    for e in &change.events {
        sqlx::query(
            "INSERT INTO device_events (device_id, at_us, kind, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(e.at_us)
        .bind(&e.kind)
        .bind(&e.detail)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    super::appeals::apply(tx, id, change.appeal.as_ref()).await
}

/// The columns of the device's own row that `change` sets, and their values; `next_eval_us`
/// always (writing it also ends any scheduler's claim on the row).
fn row_values(change: &DeviceChange) -> (Vec<&'static str>, Vec<Value>) {
    let mut columns = Vec::new();
    let mut values = Vec::new();
    let mut set = |column: &'static str, value: Value| {
        columns.push(column);
        values.push(value);
    };
    if let Some(policy) = &change.policy_json {
        set("policy_json", Value::from(policy));
    }
    if let Some(plan) = &change.plan_json {
        set("plan_json", Value::from(plan));
    }
    if let Some(d) = &change.decision {
        set("state", Value::from(&d.state));
        set("decision_json", Value::from(&d.json));
        set("amount_due_minor", Value::from(d.amount_due_minor));
        set("currency", Value::from(&d.currency));
        set("overdue_since", Value::from(&d.overdue_since));
    }
    set("next_eval_us", Value::from(change.next_eval_us));
    if let Some(t) = &change.token {
        set("token_sequence", Value::from(t.sequence));
        set("token_state", Value::from(&t.state));
        set("token_issued_us", Value::from(t.issued_us));
        set("token_lease_end_us", Value::from(t.lease_end_us));
        set("token", Value::from(&t.bytes));
    }
    if let Some((key, bound_us)) = &change.binding {
        set("device_key", Value::from(key));
        set("bound_us", Value::from(*bound_us));
    }
    if let Some(counter) = change.ocra_counter {
        set("ocra_counter", Value::from(counter));
    }
    if let Some(counter) = change.checkin_counter {
        set("checkin_counter", Value::from(counter));
    }
    if let Some(at) = change.released_us {
        set("released_us", Value::from(at));
    }
    if let Some(applied) = change.applied_sequence {
        set("applied_sequence", Value::from(applied));
    }
    (columns, values)
}

/// The devices' own rows: one `UPDATE` for all the devices whose changes set the same columns
/// (in a scheduler's group, nearly all of them). Returns the devices not written: with
/// [`Versions::AsRead`], those whose version is no longer the one their change was decided on.
async fn update_rows(
    tx: &mut Transaction<'_, Any>,
    changes: &[(&DeviceRecord, &DeviceChange)],
    versions: Versions,
) -> Result<HashSet<String>, StoreError> {
    let mut by_columns: BTreeMap<Vec<&'static str>, Vec<Vec<Value>>> = BTreeMap::new();
    for (current, change) in changes {
        let (columns, values) = row_values(change);
        let mut row = vec![Value::from(&current.enrolled.id)];
        row.extend(values);
        if versions == Versions::AsRead {
            row.push(Value::from(current.version));
        }
        by_columns.entry(columns).or_default().push(row);
    }
    let guard = (versions == Versions::AsRead).then_some("version");
    let mut written = HashSet::new();
    for (columns, rows) in by_columns {
        // Any write moves the version, so that a change decided on an earlier read can tell.
        let mut also = vec!["claimed_until_us = NULL", "version = version + 1"];
        if columns.contains(&"device_key") {
            // A new binding: one generation above the current, whatever it is, with a new
            // credential and offline key, so both of the phone's counters start again.
            also.push("binding_generation = binding_generation + 1");
            also.push("checkin_counter = 0");
            also.push("ocra_counter = 0");
        }
        written
            .extend(update_from_values(tx, "devices", "id", &columns, &also, guard, rows).await?);
    }
    Ok(changes
        .iter()
        .map(|(current, _)| &current.enrolled.id)
        .filter(|id| !written.contains(*id))
        .cloned()
        .collect())
}
