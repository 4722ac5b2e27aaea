//! The phone's one device change: the binding an attested hello makes.

use jiff::Timestamp;
use lien_store::{DeviceChange, DeviceRecord, DeviceSnapshot, DevicesExt, StoreError, UpdateError};

use super::device_change::{Mutation, complete};
use crate::app::AppState;
use crate::domain::{NoticeLog, StoredKind};
use crate::error::ApiError;

/// Why a binding was not made.
#[derive(Debug)]
pub enum BindError {
    /// The challenge was issued before the device's current binding: a replayed or repeated
    /// hello. The phone gets the same answer as for any refused hello.
    StaleChallenge,
    /// Anything else.
    Api(ApiError),
}

impl From<ApiError> for BindError {
    fn from(e: ApiError) -> BindError {
        BindError::Api(e)
    }
}

/// Binds the device to the attested key `device_key`, for a hello whose challenge was issued
/// at `issued_us`: a challenge is good for one binding, so one issued at or before the current
/// binding is refused, under the device's lock. Returns the device as stored, with its new
/// binding and token.
pub async fn bind(
    state: &AppState,
    device_id: &str,
    device_key: Vec<u8>,
    issued_us: i64,
    now: Timestamp,
) -> Result<DeviceRecord, BindError> {
    let closure_state = state.clone();
    let result = state
        .store
        .update_device_with(device_id, move |snapshot: &DeviceSnapshot| {
            let fresh = snapshot
                .device
                .binding
                .as_ref()
                .is_none_or(|b| issued_us > b.bound_us);
            if !fresh {
                return Err(BindError::StaleChallenge);
            }
            let rebind = snapshot.device.binding.is_some();
            let (action, reason) = if rebind {
                let why = "attested hello after a reset or a new install: new device key";
                ("rebound", why.into())
            } else {
                ("bound", "first attested hello".into())
            };
            let change = DeviceChange {
                // Never at or before the challenge's issue time: a challenge from a server
                // whose clock is ahead must not outlive the binding it made.
                binding: Some((device_key, crate::clock::micros(now).max(issued_us + 1))),
                ..DeviceChange::default()
            };
            let mutation = Mutation::new(action, reason, change);
            Ok(complete_for_phone(&closure_state, snapshot, mutation, now)?)
        })
        .await;
    match result {
        Ok((stored, ())) => Ok(stored),
        Err(UpdateError::Refused(e)) => Err(e),
        Err(UpdateError::Store(StoreError::NotFound)) => {
            Err(BindError::Api(ApiError::NotFound("device")))
        }
        Err(UpdateError::Store(e)) => Err(BindError::Api(e.into())),
    }
}

/// Writes what a check-in reports (the token sequence the phone applied, its events) and the
/// request counter it was accepted under. The decision and its schedule stay as they are,
/// unless the phone reports emergency use (`emergency_starts`, the windows' starts in Unix
/// seconds, already checked): the latest is then recorded as an `emergency_use` override with
/// its audit record, and the device evaluated again, so that the token signed in the same
/// transaction names it and no later state of the phone (a reflash, a new binding) can take
/// another window too soon. A report that acknowledges the token showing a notice serves the
/// notice: the device is evaluated again too, audited as `notice_served`. The counter was claimed on this server; another server sharing the
/// database may have accepted it already, so it is checked again under the device's lock, with
/// the binding it was signed under: a report is never applied twice. Returns the device as
/// stored, whose token the check-in answers with.
pub async fn record_report(
    state: &AppState,
    device_id: &str,
    report: Report,
) -> Result<DeviceRecord, ApiError> {
    let now = state.clock.now();
    let now_us = crate::clock::micros(now);
    let closure_state = state.clone();
    let result = state
        .store
        .update_device_with(device_id, move |snapshot: &DeviceSnapshot| {
            let Report {
                generation,
                counter,
                applied,
                events,
                emergency_starts,
            } = report;
            let device = &snapshot.device;
            let bound = device.binding.as_ref().map_or(0, |b| b.generation);
            if bound != generation {
                return Err(ApiError::Unauthorized("the device was bound again".into()));
            }
            if device.checkin_counter >= counter {
                return Err(crate::app::replayed(counter, device.checkin_counter));
            }
            let sim_change = sim_change_reported(snapshot, &events, now);
            let change = DeviceChange {
                next_eval_us: device.next_eval_us,
                applied_sequence: Some(applied),
                // Only a higher sequence acknowledges payments: an event-only report, or a
                // rollback's lower one, has nothing new to mark.
                acknowledged_us: (Some(applied) > device.applied_sequence).then_some(now_us),
                checkin_counter: Some(counter),
                events,
                ..DeviceChange::default()
            };
            // Emergency use reported, a new SIM card, or a report that acknowledges the token
            // showing a notice: the decision is taken again now, in the same transaction. A
            // served notice's cure period runs from this instant and its end is scheduled. Any
            // other report leaves the decision as it is.
            let notices = NoticeLog::of(snapshot);
            let mutation = match (emergency_use(snapshot, &emergency_starts, now)?, sim_change) {
                (Some(mut mutation), sim_change) => {
                    mutation.change = DeviceChange {
                        new_override: mutation.change.new_override,
                        more_overrides: sim_change.into_iter().collect(),
                        ..change
                    };
                    mutation
                }
                (None, Some(sim_change)) => {
                    let reason = sim_change.reason.clone();
                    let change = DeviceChange {
                        new_override: Some(sim_change),
                        ..change
                    };
                    Mutation::new("sim_change_reported", reason, change)
                }
                (None, None) if notices.acknowledges(Some(applied)) => {
                    let reason = match notices.shown {
                        Some(shown) => {
                            format!("the phone acknowledged notice {}", shown.index + 1)
                        }
                        None => "the phone acknowledged the notice of its SIM change".into(),
                    };
                    Mutation::new("notice_served", reason, change)
                }
                (None, None) => return Ok((change, ())),
            };
            complete_for_phone(&closure_state, snapshot, mutation, now)
        })
        .await;
    match result {
        Ok((stored, ())) => Ok(stored),
        Err(UpdateError::Refused(e)) => Err(e),
        Err(UpdateError::Store(e)) => Err(e.into()),
    }
}

/// Completes a change the phone made (its actor is `device`). Hello and check-in answer with
/// the token, never with a kept body, so none is made.
fn complete_for_phone(
    state: &AppState,
    snapshot: &DeviceSnapshot,
    mutation: Mutation,
    now: Timestamp,
) -> Result<(DeviceChange, ()), ApiError> {
    let mutation = Mutation {
        response: Some(serde_json::Value::Null),
        ..mutation
    };
    let (change, _, _, _) = complete(state, snapshot, "device", mutation, now)?;
    Ok((change, ()))
}

/// The override that records a SIM change the phone reports among `events`, unless one is
/// still open (reported and not yet accepted): a phone that reports the change again, or a
/// borrower swapping SIM cards back and forth, adds no row and does not restart the rule's
/// count. The policy's rule (`lien_core::SimChangeRule`) applies from the report until the
/// financier accepts the change (`commands::sim_change::accept`).
fn sim_change_reported(
    snapshot: &DeviceSnapshot,
    events: &[lien_store::DeviceEvent],
    now: Timestamp,
) -> Option<lien_store::OverrideRecord> {
    let reported = events
        .iter()
        .any(|e| e.kind == lien_proto::device_api::EventKind::SimChange.as_str());
    // Under a policy that ignores SIM changes the event is stored with the report and nothing
    // opens: a policy changed later to restrict must not find old changes waiting, already past
    // their days.
    if !reported || crate::domain::open_sim_change(snapshot).is_some() {
        return None;
    }
    let ignored = crate::domain::stored_policy(snapshot)
        .is_ok_and(|p| p.settings().sim_change == lien_core::SimChangeRule::Ignore);
    if ignored {
        return None;
    }
    Some(lien_store::OverrideRecord {
        id: 0,
        kind: StoredKind::SimChange.as_str().to_string(),
        reason: "the phone reported a new SIM card".to_string(),
        from_us: crate::clock::micros(now),
        until_us: None,
        cancelled_us: None,
        actor: "device".to_string(),
        created_us: crate::clock::micros(now),
    })
}

/// What a check-in reports, as [`record_report`] writes it.
pub struct Report {
    /// The binding the check-in was signed under.
    pub generation: i64,
    /// Its request counter.
    pub counter: i64,
    /// The token sequence the phone applied.
    pub applied: i64,
    /// Its events, as stored.
    pub events: Vec<lien_store::DeviceEvent>,
    /// The starts of the emergency windows it reports, Unix seconds.
    pub emergency_starts: Vec<i64>,
}

/// The override recording the latest of the reported emergency windows, unless none was
/// reported or it is already recorded (the phone sends a report again when the answer to the
/// first was lost). A start is taken as the phone's trusted clock reckons it, but never after
/// the server's own time: the phone enforces the period itself, and the server's record only
/// has to keep later states of the phone from starting the count again.
fn emergency_use(
    snapshot: &DeviceSnapshot,
    starts: &[i64],
    now: Timestamp,
) -> Result<Option<Mutation>, ApiError> {
    let Some(reported) = starts.iter().copied().max() else {
        return Ok(None);
    };
    let started = reported.min(now.as_second());
    let policy = crate::domain::stored_policy(snapshot)?;
    let settings = policy.settings();
    let period = i64::from(settings.emergency_use_every_days) * 86_400;
    // A start within the period of the last one recorded is not one a phone that enforces
    // the period could take: a report again of a recorded window, or a phone's key used to
    // add override rows at will. Neither is recorded, nor is any under a policy offering none.
    if settings.emergency_use_hours == 0
        || crate::domain::last_emergency_use(snapshot)
            .is_some_and(|last| started < last.saturating_add(period.max(1)))
    {
        return Ok(None);
    }
    let hours = i64::from(settings.emergency_use_hours);
    let from = Timestamp::from_second(started)
        .map_err(|_| ApiError::invalid("events.detail", "the start is not a valid time"))?;
    let until = from
        .checked_add(jiff::SignedDuration::from_hours(hours))
        .map_err(|_| ApiError::invalid("events.detail", "the start is not a valid time"))?;
    let reason = format!(
        "emergency use taken on the phone from {} for {hours} hours, reported at check-in",
        crate::domain::rfc3339(from)
    );
    let record = lien_store::OverrideRecord {
        id: 0,
        kind: StoredKind::EmergencyUse.as_str().to_string(),
        reason,
        from_us: crate::clock::micros(from),
        until_us: Some(crate::clock::micros(until)),
        cancelled_us: None,
        actor: "device".to_string(),
        created_us: crate::clock::micros(now),
    };
    Ok(Some(Mutation::add_override("emergency_use", record)))
}
