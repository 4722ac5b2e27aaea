//! Overrides: the financier's explicit, audited acts on a device (manual lock and unlock,
//! provisional unlock, reminder message, release and its cancellation, offline unlock code) and
//! the policy change. Each is a command; the rules they share are written once here: released
//! is final ([`not_released`]), and an override is ended at once if it has begun, or cancelled
//! if it has not ([`end_or_cancel`]).

use jiff::{SignedDuration, Timestamp};
use lien_proto::ocra::{OcraInput, OcraSuite};
use lien_store::{DeviceChange, DeviceSnapshot, OverrideRecord, OverrideUpdate};

use super::device_change::{
    Applied, Changed, IdempotencyKey, Mutation, change_device, pending_release,
};
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::micros;
use crate::domain::{self, StoredKind, rfc3339};
use crate::error::ApiError;
use crate::input::required_text;
use crate::wire::{
    LockRequest, OfflineCode, OfflineCodeRequest, PolicyChangeRequest, ReleaseRequest,
    ReminderRequest, UnlockRequest,
};

/// The OCRA suite of offline unlock codes: SHA-256, 8 digits, a counter and an 8-digit challenge.
pub const OFFLINE_SUITE: &str = "OCRA-1:HOTP-SHA256-8:C-QN08";

/// The longest note a financier may keep with a manual lock.
const MAX_NOTE_LEN: usize = 500;

/// Refuses changes to a released device: released is final.
pub fn not_released(snapshot: &DeviceSnapshot) -> Result<(), ApiError> {
    if snapshot.device.released_us.is_some() {
        Err(ApiError::Conflict(
            "the device is released, which is final".into(),
        ))
    } else {
        Ok(())
    }
}

/// Ends the overrides of `overrides` still in force or to come at `now_us`: one that has begun
/// ends now; one that has not begun (or begins now) never applied, so it is cancelled.
pub fn end_or_cancel<'a>(
    overrides: impl IntoIterator<Item = &'a OverrideRecord>,
    now_us: i64,
) -> Vec<OverrideUpdate> {
    overrides
        .into_iter()
        .filter(|o| o.cancelled_us.is_none())
        .filter(|o| o.until_us.is_none_or(|u| u > now_us))
        .map(|o| {
            if o.from_us >= now_us {
                OverrideUpdate {
                    id: o.id,
                    until_us: None,
                    cancelled_us: Some(now_us),
                }
            } else {
                OverrideUpdate {
                    id: o.id,
                    until_us: Some(now_us),
                    cancelled_us: None,
                }
            }
        })
        .collect()
}

/// A new override of `kind`, by the actor, from `from` until `until`.
pub fn new_override(
    kind: StoredKind,
    reason: String,
    actor: &Actor,
    from: Timestamp,
    until: Option<Timestamp>,
    now: Timestamp,
) -> OverrideRecord {
    OverrideRecord {
        id: 0,
        kind: kind.as_str().to_string(),
        reason,
        from_us: micros(from),
        until_us: until.map(micros),
        cancelled_us: None,
        actor: actor.key_id.clone(),
        created_us: micros(now),
    }
}

/// A command that adds nothing beside the device view.
type DeviceResult = Result<Applied<Changed<()>>, ApiError>;

/// Locks by hand, with a message for the phone and, if wanted, a note for the financier's
/// history.
pub async fn lock(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    req: LockRequest,
) -> DeviceResult {
    actor.require(Action::Lock)?;
    let message = required_text("message", &req.message, lien_core::Override::MAX_REASON_LEN)?;
    let note = match &req.note {
        Some(note) => Some(required_text("note", note, MAX_NOTE_LEN)?),
        None => None,
    };
    let who = actor.clone();
    change_device(state, actor, device_id, None, move |snapshot, now| {
        not_released(snapshot)?;
        // The override carries the phone's message (the decision shows it on the lock screen);
        // the audit record carries the note, which only the financier's history shows.
        let lock = new_override(StoredKind::ManualLock, message, &who, now, None, now);
        let mut mutation = Mutation::add_override("manual_lock", lock);
        if let Some(note) = note {
            mutation.reason = note;
        }
        Ok((mutation, ()))
    })
    .await
}

/// Lifts manual locks and, with `provisional_hours`, unlocks a phone the schedule restricts,
/// for that long. A caller who may only unlock provisionally lifts no manual lock.
pub async fn unlock(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    req: UnlockRequest,
) -> DeviceResult {
    let lifts_locks = actor.role.may(Action::Unlock);
    if req.provisional_hours.is_some() {
        actor.require(Action::ProvisionalUnlock)?;
    } else {
        actor.require(Action::Unlock)?;
    }
    if let Some(h) = req.provisional_hours
        && !(1..=24 * 30).contains(&h)
    {
        return Err(ApiError::invalid(
            "provisional_hours",
            "must be between 1 and 720",
        ));
    }
    let reason = required_text("reason", &req.reason, 200)?;
    let who = actor.clone();
    change_device(state, actor, device_id, None, move |snapshot, now| {
        not_released(snapshot)?;
        let updates = if lifts_locks {
            end_or_cancel(
                snapshot
                    .overrides
                    .iter()
                    .filter(|o| StoredKind::of(&o.kind) == Some(StoredKind::ManualLock)),
                micros(now),
            )
        } else {
            vec![]
        };
        let provisional = req.provisional_hours.map(|h| {
            new_override(
                StoredKind::ProvisionalUnlock,
                reason.clone(),
                &who,
                now,
                Some(now + SignedDuration::from_hours(i64::from(h))),
                now,
            )
        });
        if updates.is_empty() && provisional.is_none() {
            return Err(ApiError::Conflict(
                "the device has no manual lock to lift; give provisional_hours to unlock a phone its schedule restricts".into(),
            ));
        }
        let action = if provisional.is_some() {
            "provisional_unlock"
        } else {
            "unlock"
        };
        let mut mutation = Mutation::update_overrides(action, reason, updates);
        mutation.change.new_override = provisional;
        Ok((mutation, ()))
    })
    .await
}

/// A message on the phone for a few days (3 unless said).
pub async fn reminder(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    req: ReminderRequest,
) -> DeviceResult {
    actor.require(Action::Lock)?;
    let message = required_text("message", &req.message, 200)?;
    let days = req.days.unwrap_or(3);
    if !(1..=30).contains(&days) {
        return Err(ApiError::invalid("days", "must be between 1 and 30"));
    }
    let who = actor.clone();
    change_device(state, actor, device_id, None, move |snapshot, now| {
        not_released(snapshot)?;
        let until = now + SignedDuration::from_hours(24 * i64::from(days));
        let message = new_override(StoredKind::Message, message, &who, now, Some(until), now);
        Ok((Mutation::add_override("reminder", message), ()))
    })
    .await
}

/// Releases the device: the claim ends after the cancel window (`release_cancel_hours`).
pub async fn release(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    req: ReleaseRequest,
) -> DeviceResult {
    actor.require(Action::Lock)?;
    let reason = required_text("reason", &req.reason, 200)?;
    let window = SignedDuration::from_hours(state.settings.release_cancel_hours as i64);
    let who = actor.clone();
    change_device(state, actor, device_id, None, move |snapshot, now| {
        not_released(snapshot)?;
        if pending_release(snapshot, now).is_some() {
            return Err(ApiError::Conflict("a release is already pending".into()));
        }
        let release = new_override(StoredKind::Release, reason, &who, now + window, None, now);
        Ok((Mutation::add_override("release_requested", release), ()))
    })
    .await
}

/// Cancels a pending release within its window.
pub async fn cancel_release(state: &AppState, actor: &Actor, device_id: &str) -> DeviceResult {
    actor.require(Action::Lock)?;
    change_device(state, actor, device_id, None, move |snapshot, now| {
        not_released(snapshot)?;
        let pending = pending_release(snapshot, now)
            .ok_or_else(|| ApiError::Conflict("no release is pending".into()))?;
        let cancel = OverrideUpdate {
            id: pending.id,
            until_us: None,
            cancelled_us: Some(micros(now)),
        };
        let mutation = Mutation::update_overrides(
            "release_cancelled",
            "release cancelled within its window".into(),
            vec![cancel],
        );
        Ok((mutation, ()))
    })
    .await
}

/// The response to the lock screen's challenge, and a provisional unlock on the server for as
/// long (48 hours unless said), so the next check-in does not lock again.
pub async fn offline_code(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    req: OfflineCodeRequest,
) -> Result<Applied<Changed<OfflineCode>>, ApiError> {
    actor.require(Action::ProvisionalUnlock)?;
    let challenge = req.challenge.trim().to_string();
    if challenge.len() != 8 || !challenge.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            "challenge",
            "must be the 8 digits shown on the lock screen",
        ));
    }
    let hours = req.hours.unwrap_or(48);
    if !(1..=168).contains(&hours) {
        return Err(ApiError::invalid("hours", "must be between 1 and 168"));
    }
    let reason = required_text("reason", &req.reason, 200)?;
    let who = actor.clone();
    let secrets_state = state.clone();
    change_device(state, actor, device_id, None, move |snapshot, now| {
        not_released(snapshot)?;
        let binding = snapshot.device.binding.as_ref().ok_or_else(|| {
            ApiError::Conflict("the phone has not said hello yet, so it has no offline key".into())
        })?;
        let key = secrets_state
            .secrets
            .ocra_key(&snapshot.device.enrolled.id, binding.generation);
        let counter = snapshot.device.ocra_counter + 1;
        let suite = OcraSuite::parse(OFFLINE_SUITE).map_err(|e| ApiError::Internal(e.into()))?;
        let response = suite
            .respond(
                &key,
                OcraInput {
                    counter: Some(counter as u64),
                    challenge: &challenge,
                    ..OcraInput::default()
                },
            )
            .map_err(|e| ApiError::invalid("challenge", e))?;
        let until = now + SignedDuration::from_hours(i64::from(hours));
        let code = OfflineCode {
            response,
            counter,
            unlocked_until: rfc3339(until),
        };
        let body = serde_json::to_value(&code).map_err(|e| ApiError::Internal(e.into()))?;
        let unlock = new_override(
            StoredKind::ProvisionalUnlock,
            reason.clone(),
            &who,
            now,
            Some(until),
            now,
        );
        let change = DeviceChange {
            new_override: Some(unlock),
            ocra_counter: Some(counter),
            ..DeviceChange::default()
        };
        let mutation = Mutation {
            response: Some(body),
            ..Mutation::new("offline_unlock_code", reason, change)
        };
        Ok((mutation, code))
    })
    .await
}

/// A new lock policy. The device is decided again under it at once, so a policy that makes
/// overdue arrears lockable (or no longer lockable) changes the state, and the phone's token,
/// in the same transaction as the policy.
pub async fn change_policy(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    key: Option<IdempotencyKey>,
    req: PolicyChangeRequest,
) -> DeviceResult {
    actor.require(Action::ChangePolicy)?;
    domain::parse_policy(&req.policy)?;
    let reason = required_text("reason", &req.reason, 200)?;
    let policy_json =
        serde_json::to_string(&req.policy).map_err(|e| ApiError::Internal(e.into()))?;
    change_device(state, actor, device_id, key, move |snapshot, _now| {
        not_released(snapshot)?;
        let change = DeviceChange {
            policy_json: Some(policy_json),
            ..DeviceChange::default()
        };
        let mutation = Mutation::new("policy_changed", reason, change);
        Ok((mutation, ()))
    })
    .await
}
