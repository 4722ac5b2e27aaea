//! Hardship pauses (issue 20): while a borrower is in hardship, nothing is restricted, only
//! reminded (`lien-core`'s `decide` caps a device under a `HardshipPause` at a reminder).
//!
//! A pause is an override like any other, so the decision's own `next_change` ends it and no
//! second timer exists. The financier (or support) pauses a device and may end a pause early;
//! the borrower asks for one from the public pages with the proof appeals use (the IMEI and the
//! status code the lock screen shows, `appeals::proven_device`), and the request waits as an
//! override the decision does not see (`hardship_request`) until the financier grants or
//! refuses it, unless the policy grants pauses that short at once (`hardship_auto_grant_days`).
//! Every pause, whoever asks, is bounded by the policy's `hardship_days_per_year`
//! (`lien_core::check_hardship_pause`), checked under the device's lock.

use jiff::{SignedDuration, Timestamp};
use lien_core::Imei;
use lien_store::{
    DeviceSnapshot, DevicesExt, OverrideRecord, OverrideUpdate, StoreError, UpdateError,
};

use super::appeals::{BORROWER, proven_device};
use super::device_change::{Applied, Changed, IdempotencyKey, Mutation, change_device, completed};
use super::overrides::{end_or_cancel, new_override, not_released};
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::{from_micros, micros};
use crate::domain::{Inputs, StoredKind, parse_instant, rfc3339};
use crate::error::ApiError;
use crate::input::required_text;
use crate::wire::{
    HardshipAnswerRequest, HardshipEndRequest, HardshipPauseRequest, HardshipRequestView,
    HardshipVerdict,
};

/// The longest pause any request may name, whatever the policy: a year.
pub const MAX_PAUSE_DAYS: u32 = 365;
/// The longest reason a borrower may give, in characters.
pub const MAX_BORROWER_REASON: usize = 500;
/// The longest reason the financier records.
const MAX_REASON: usize = 200;

/// A command that adds nothing beside the device view.
type DeviceResult = Result<Applied<Changed<()>>, ApiError>;

/// The hardship pauses of a snapshot in effect at `now` or to come (not cancelled, not over).
fn live_pauses(snapshot: &DeviceSnapshot, now: Timestamp) -> impl Iterator<Item = &OverrideRecord> {
    let now_us = micros(now);
    snapshot.overrides.iter().filter(move |o| {
        StoredKind::of(&o.kind) == Some(StoredKind::HardshipPause)
            && o.cancelled_us.is_none()
            && o.until_us.is_none_or(|u| u > now_us)
    })
}

/// The end of the pause in effect or to come, if any.
pub fn pause_until(snapshot: &DeviceSnapshot, now: Timestamp) -> Option<Timestamp> {
    live_pauses(snapshot, now)
        .filter_map(|o| o.until_us)
        .max()
        .map(from_micros)
}

/// The borrower's request waiting for an answer, if any (at most one is open at a time).
pub fn open_request(snapshot: &DeviceSnapshot) -> Option<&OverrideRecord> {
    snapshot.overrides.iter().find(|o| {
        StoredKind::of(&o.kind) == Some(StoredKind::HardshipRequest) && o.cancelled_us.is_none()
    })
}

/// The open request as the financier sees it.
pub fn request_view(snapshot: &DeviceSnapshot) -> Option<HardshipRequestView> {
    open_request(snapshot).map(|o| HardshipRequestView {
        requested_at: rfc3339(from_micros(o.from_us)),
        days: requested_days(o),
        reason: o.reason.clone(),
    })
}

/// The days a request asked for: its span, which it was written with.
fn requested_days(o: &OverrideRecord) -> u32 {
    let span = o.until_us.unwrap_or(o.from_us) - o.from_us;
    u32::try_from(span / 86_400_000_000).unwrap_or(u32::MAX)
}

/// A length in days, checked: 1 to [`MAX_PAUSE_DAYS`].
fn checked_days(field: &str, days: u32) -> Result<u32, ApiError> {
    if (1..=MAX_PAUSE_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be between 1 and {MAX_PAUSE_DAYS} days"),
        ))
    }
}

/// How a pause given by the financier is measured: days from its start, or until an instant.
enum Length {
    Days(u32),
    Until(Timestamp),
}

impl Length {
    /// Exactly one of `days` and `until`, each checked.
    fn of(req: &HardshipPauseRequest) -> Result<Length, ApiError> {
        match (req.days, req.until.as_deref()) {
            (Some(days), None) => Ok(Length::Days(checked_days("days", days)?)),
            (None, Some(until)) => Ok(Length::Until(parse_instant("until", until)?)),
            _ => Err(ApiError::invalid(
                "days",
                "give either days or until, not both and not neither",
            )),
        }
    }

    /// The end of a pause starting at `now`, and its length in whole days (rounded up).
    fn from(&self, now: Timestamp) -> Result<(Timestamp, u32), ApiError> {
        match *self {
            Length::Days(days) => {
                Ok((now + SignedDuration::from_hours(24 * i64::from(days)), days))
            }
            Length::Until(until) => {
                let secs = until.duration_since(now).as_secs();
                if secs <= 0 {
                    return Err(ApiError::invalid("until", "must be in the future"));
                }
                let days = u32::try_from((secs + 86_399) / 86_400).unwrap_or(u32::MAX);
                if days > MAX_PAUSE_DAYS {
                    return Err(ApiError::invalid(
                        "until",
                        format!("must be at most {MAX_PAUSE_DAYS} days ahead"),
                    ));
                }
                Ok((until, days))
            }
        }
    }
}

/// A pause of `days` from `now` for the device, checked against the policy's yearly bound and
/// refused while another is in effect. The refusal names the policy field and what remains.
fn checked_pause(
    snapshot: &DeviceSnapshot,
    now: Timestamp,
    days: u32,
    field: &str,
) -> Result<(), ApiError> {
    if let Some(until) = pause_until(snapshot, now) {
        return Err(ApiError::Conflict(format!(
            "a hardship pause is already in effect until {}; end it first",
            rfc3339(until)
        )));
    }
    let inputs = Inputs::of(snapshot)?;
    lien_core::check_hardship_pause(&inputs.policy, &inputs.overrides, now, days)
        .map_err(|e| ApiError::invalid(field, e))
}

/// The open request, if any, closed (cancelled now): a pause granted or refused answers it.
fn close_request(snapshot: &DeviceSnapshot, now: Timestamp) -> Vec<OverrideUpdate> {
    open_request(snapshot)
        .map(|o| OverrideUpdate {
            id: o.id,
            until_us: None,
            cancelled_us: Some(micros(now)),
        })
        .into_iter()
        .collect()
}

/// Pauses a device for hardship, from now for `days` or `until` an instant: nothing is
/// restricted meanwhile, reminders go on. A request the borrower left open is answered by it.
pub async fn pause(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    key: Option<IdempotencyKey>,
    req: HardshipPauseRequest,
) -> DeviceResult {
    actor.require(Action::HardshipPause)?;
    let length = Length::of(&req)?;
    let reason = required_text("reason", &req.reason, MAX_REASON)?;
    let who = actor.clone();
    change_device(state, actor, device_id, key, move |snapshot, now| {
        not_released(snapshot)?;
        let (until, days) = length.from(now)?;
        checked_pause(snapshot, now, days, "days")?;
        let pause = new_override(
            StoredKind::HardshipPause,
            reason,
            &who,
            now,
            Some(until),
            now,
        );
        let mut mutation = Mutation::add_override("hardship_pause", pause);
        mutation.change.override_updates = close_request(snapshot, now);
        Ok((mutation, ()))
    })
    .await
}

/// Ends the hardship pause in effect (or cancels one to come): the schedule applies again.
pub async fn end_pause(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    req: HardshipEndRequest,
) -> DeviceResult {
    // Ending a pause restricts the phone again at once, as a lock does: only a role that may
    // lock does it, not the agents and support who may grant one.
    actor.require(Action::Lock)?;
    let reason = required_text("reason", &req.reason, MAX_REASON)?;
    change_device(state, actor, device_id, None, move |snapshot, now| {
        not_released(snapshot)?;
        let updates = end_or_cancel(live_pauses(snapshot, now), micros(now));
        if updates.is_empty() {
            return Err(ApiError::Conflict(
                "the device has no hardship pause to end".into(),
            ));
        }
        let mutation = Mutation::update_overrides("hardship_pause_ended", reason, updates);
        Ok((mutation, ()))
    })
    .await
}

/// Answers the borrower's open request: grants a pause (of `days`, or what was asked) from
/// now, or refuses it with a reason.
pub async fn answer_request(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    req: HardshipAnswerRequest,
) -> DeviceResult {
    actor.require(Action::HardshipPause)?;
    let grant = req.decision == HardshipVerdict::Grant;
    let reason = if grant {
        let text = req.reason.trim();
        if text.chars().count() > MAX_REASON {
            return Err(ApiError::invalid(
                "reason",
                format!("at most {MAX_REASON} characters"),
            ));
        }
        if text.is_empty() {
            "hardship request granted".to_string()
        } else {
            text.to_string()
        }
    } else {
        required_text("reason", &req.reason, MAX_REASON)?
    };
    let days = req.days.map(|d| checked_days("days", d)).transpose()?;
    if !grant && days.is_some() {
        return Err(ApiError::invalid("days", "only a grant has a length"));
    }
    let who = actor.clone();
    change_device(state, actor, device_id, None, move |snapshot, now| {
        not_released(snapshot)?;
        let request = open_request(snapshot).ok_or_else(|| {
            ApiError::Conflict("no request for a hardship pause is waiting for an answer".into())
        })?;
        let closed = close_request(snapshot, now);
        let mutation = if grant {
            let days = days.unwrap_or_else(|| requested_days(request).max(1));
            checked_pause(snapshot, now, days, "days")?;
            let until = now + SignedDuration::from_hours(24 * i64::from(days));
            let pause = new_override(
                StoredKind::HardshipPause,
                reason,
                &who,
                now,
                Some(until),
                now,
            );
            let mut m = Mutation::add_override("hardship_request_granted", pause);
            m.change.override_updates = closed;
            m
        } else {
            Mutation::update_overrides("hardship_request_refused", reason, closed)
        };
        Ok((mutation, ()))
    })
    .await
}

/// A borrower's request for a hardship pause, checked field by field.
#[derive(Debug, Clone)]
pub struct BorrowerRequest {
    /// The phone's IMEI.
    pub imei: Imei,
    /// The status code its lock screen shows: the proof of holding it.
    pub status_code: String,
    /// Days asked for.
    pub days: u32,
    /// The borrower's words, for the financier.
    pub reason: String,
}

impl BorrowerRequest {
    /// Checks what the borrower sent, naming the field at fault; nothing here is about a phone.
    pub fn check(
        imei: Option<&str>,
        status_code: Option<&str>,
        days: Option<u32>,
        reason: Option<&str>,
    ) -> Result<BorrowerRequest, ApiError> {
        let (imei, status_code) = crate::input::holder_proof(imei, status_code)?;
        let days = checked_days(
            "days",
            days.ok_or_else(|| ApiError::invalid("days", "say how many days of pause you need"))?,
        )?;
        let reason = required_text("reason", reason.unwrap_or(""), MAX_BORROWER_REASON)?;
        Ok(BorrowerRequest {
            imei,
            status_code,
            days,
            reason,
        })
    }
}

/// An override the borrower asked for, from `now` until `until`, recorded as the borrower's.
fn borrowers(kind: StoredKind, reason: String, now: Timestamp, until: Timestamp) -> OverrideRecord {
    OverrideRecord {
        id: 0,
        kind: kind.as_str().to_string(),
        reason,
        from_us: micros(now),
        until_us: Some(micros(until)),
        cancelled_us: None,
        actor: BORROWER.to_string(),
        created_us: micros(now),
    }
}

/// What became of a borrower's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The policy grants pauses this short at once: paused until then.
    Granted {
        /// The end of the pause.
        until: Timestamp,
    },
    /// It waits for the financier's answer.
    Waiting,
}

/// A borrower asks for a hardship pause, proving they hold the phone as an appeal does. Every
/// failure of the proof gets the one answer appeals give (`not_proven`); what is about the
/// device (a pause already in effect, the yearly bound) is said only once the proof holds. A
/// request replaces one still waiting. A request within `hardship_auto_grant_days` is granted at once;
/// any other waits as an override the decision does not see, for the financier's answer.
pub async fn request_pause(
    state: &AppState,
    request: BorrowerRequest,
) -> Result<RequestOutcome, ApiError> {
    let BorrowerRequest {
        imei,
        status_code,
        days,
        reason,
    } = request;
    let device = proven_device(state, &imei, &status_code).await?;
    let now = state.clock.now();
    let closure_state = state.clone();
    let result = state
        .store
        .update_device_with(&device.enrolled.id, move |snapshot: &DeviceSnapshot| {
            not_released(snapshot)?;
            checked_pause(snapshot, now, days, "days")?;
            let policy = Inputs::of(snapshot)?.policy;
            let until = now + SignedDuration::from_hours(24 * i64::from(days));
            let (mut mutation, outcome) = if days <= policy.settings().hardship_auto_grant_days {
                let pause = borrowers(StoredKind::HardshipPause, reason, now, until);
                (
                    Mutation::add_override("hardship_pause_auto_granted", pause),
                    RequestOutcome::Granted { until },
                )
            } else {
                let asked = borrowers(StoredKind::HardshipRequest, reason, now, until);
                (
                    Mutation::add_override("hardship_requested", asked),
                    RequestOutcome::Waiting,
                )
            };
            // A new request replaces one still waiting: an unanswered request must not stand in
            // the way of a pause the policy grants at once, nor keep the borrower from asking
            // for another length.
            mutation.change.override_updates = close_request(snapshot, now);
            let c = completed(&closure_state, snapshot, BORROWER, mutation, now)?;
            Ok((c.change, (c.before, c.after, outcome)))
        })
        .await;
    match result {
        Ok((_, (before, after, outcome))) => {
            state.metrics.state_changed(&before, &after);
            state.scheduler_wake.notify_one();
            Ok(outcome)
        }
        Err(UpdateError::Refused(e)) => Err(e),
        Err(UpdateError::Store(StoreError::NotFound)) => Err(super::appeals::rules::not_proven()),
        Err(UpdateError::Store(e)) => Err(e.into()),
    }
}
