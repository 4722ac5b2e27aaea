//! The events a financier's webhooks receive, derived in one place from what a change writes.
//!
//! [`of_change`] is called by `commands::device_change::completed`, the one path every change to
//! a device takes (the commands, hellos, appeals and the scheduler), so no command can change a
//! device without its events; enrollment ([`enrolled`]) and unmatched payments ([`unmatched`])
//! are the two writes outside that path. The events are written to the outbox by the store in
//! the change's own transaction.
//!
//! Every event's `data` names the device (`device_id`, `contract_ref`); the delivery adds the
//! device's `sequence` (its version after the change, which every write moves by one), so a
//! receiver can order a device's events. Events of one change share the sequence and are sent
//! in the order given here.

use jiff::Timestamp;
use lien_store::{AppealWrite, DeviceChange, DeviceSnapshot, OutboxEvent, UnmatchedPaymentRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::{from_micros, micros};
use crate::domain::{StoredKind, rfc3339};
use crate::error::ApiError;
use crate::wire::{DecisionView, DeviceStateJson};

/// The type of an event, as `type` in its body and in an endpoint's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// A device was enrolled.
    #[serde(rename = "device.enrolled")]
    DeviceEnrolled,
    /// The phone proved it is the device (an attested hello) and was bound.
    #[serde(rename = "device.bound")]
    DeviceBound,
    /// The device's state changed (active, reminder, restricted, locked), with the decision.
    #[serde(rename = "device.state_changed")]
    StateChanged,
    /// A payment was recorded on the device.
    #[serde(rename = "payment.applied")]
    PaymentApplied,
    /// A payment was reversed.
    #[serde(rename = "payment.reversed")]
    PaymentReversed,
    /// A provider's payment matched no device and waits for assignment.
    #[serde(rename = "payment.unmatched")]
    PaymentUnmatched,
    /// A release was scheduled (payoff or the financier's request).
    #[serde(rename = "release.started")]
    ReleaseStarted,
    /// A scheduled release was cancelled.
    #[serde(rename = "release.cancelled")]
    ReleaseCancelled,
    /// The release became final.
    #[serde(rename = "device.released")]
    DeviceReleased,
    /// The borrower opened an appeal.
    #[serde(rename = "appeal.opened")]
    AppealOpened,
    /// An appeal was answered.
    #[serde(rename = "appeal.answered")]
    AppealAnswered,
    /// The borrower asked for a hardship pause, which waits for the financier's answer.
    #[serde(rename = "hardship.requested")]
    HardshipRequested,
    /// A hardship pause began (granted by the financier or support, or at once by the policy).
    #[serde(rename = "hardship.paused")]
    HardshipPaused,
    /// The plan was restructured: what remains follows a new schedule.
    #[serde(rename = "plan.restructured")]
    PlanRestructured,
    /// A notice is shown and waits to be served (by the phone's acknowledgement, or, for a
    /// phone never seen, by the policy's fallback): the financier's cue to reach the borrower
    /// by its own means too.
    #[serde(rename = "notice.pending")]
    NoticePending,
    /// The phone reported a new SIM card; the policy's SIM-change rule applies until the
    /// financier accepts it.
    #[serde(rename = "device.sim_changed")]
    SimChanged,
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 16] = [
        EventType::DeviceEnrolled,
        EventType::DeviceBound,
        EventType::StateChanged,
        EventType::PaymentApplied,
        EventType::PaymentReversed,
        EventType::PaymentUnmatched,
        EventType::ReleaseStarted,
        EventType::ReleaseCancelled,
        EventType::DeviceReleased,
        EventType::AppealOpened,
        EventType::AppealAnswered,
        EventType::HardshipRequested,
        EventType::HardshipPaused,
        EventType::PlanRestructured,
        EventType::NoticePending,
        EventType::SimChanged,
    ];

    /// Its name, e.g. `payment.applied`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DeviceEnrolled => "device.enrolled",
            EventType::DeviceBound => "device.bound",
            EventType::StateChanged => "device.state_changed",
            EventType::PaymentApplied => "payment.applied",
            EventType::PaymentReversed => "payment.reversed",
            EventType::PaymentUnmatched => "payment.unmatched",
            EventType::ReleaseStarted => "release.started",
            EventType::ReleaseCancelled => "release.cancelled",
            EventType::DeviceReleased => "device.released",
            EventType::AppealOpened => "appeal.opened",
            EventType::AppealAnswered => "appeal.answered",
            EventType::HardshipRequested => "hardship.requested",
            EventType::HardshipPaused => "hardship.paused",
            EventType::PlanRestructured => "plan.restructured",
            EventType::NoticePending => "notice.pending",
            EventType::SimChanged => "device.sim_changed",
        }
    }
}

/// A new event of `event_type` with `data`, at `now`.
fn event(event_type: EventType, data: Value, now: Timestamp) -> Result<OutboxEvent, ApiError> {
    Ok(OutboxEvent {
        id: crate::input::new_id("msg")?,
        event_type: event_type.as_str().to_string(),
        payload: data.to_string(),
        created_us: micros(now),
    })
}

/// The device's part of every event's data.
fn about(snapshot: &DeviceSnapshot, mut data: Value) -> Value {
    if let Some(fields) = data.as_object_mut() {
        let e = &snapshot.device.enrolled;
        fields.insert("device_id".into(), json!(e.id));
        fields.insert("contract_ref".into(), json!(e.contract_ref));
    }
    data
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Internal(e.into())
}

/// The events of a change to the device in `snapshot`: what it adds, and the state it leaves
/// the device in (`before` and `after` are the decisions on either side).
pub fn of_change(
    snapshot: &DeviceSnapshot,
    change: &DeviceChange,
    before: &DecisionView,
    after: &DecisionView,
    now: Timestamp,
) -> Result<Vec<OutboxEvent>, ApiError> {
    let mut events = Vec::new();
    let mut push = |t: EventType, data: Value| -> Result<(), ApiError> {
        events.push(event(t, about(snapshot, data), now)?);
        Ok(())
    };
    if let Some((_, bound_us)) = &change.binding {
        push(
            EventType::DeviceBound,
            json!({ "bound_at": rfc3339(from_micros(*bound_us)) }),
        )?;
    }
    if let Some(p) = &change.payment {
        push(
            EventType::PaymentApplied,
            json!({
                "reference": p.reference,
                "amount": { "minor_units": p.amount_minor, "currency": p.currency },
                "received_at": rfc3339(from_micros(p.received_us)),
            }),
        )?;
    }
    if let Some(r) = &change.reversal {
        push(
            EventType::PaymentReversed,
            json!({
                "reference": r.reference,
                "reason": r.reason,
                "at": rfc3339(from_micros(r.at_us)),
            }),
        )?;
    }
    for o in change.new_override.iter().chain(&change.more_overrides) {
        let until = o.until_us.map(|u| rfc3339(from_micros(u)));
        match StoredKind::of(&o.kind) {
            Some(StoredKind::Release) => push(
                EventType::ReleaseStarted,
                json!({ "final_at": rfc3339(from_micros(o.from_us)), "reason": o.reason }),
            )?,
            // The borrower's words stay in the API (the device's `hardship_request`): an
            // event names only what was asked.
            Some(StoredKind::HardshipRequest) => {
                push(EventType::HardshipRequested, json!({ "until": until }))?
            }
            Some(StoredKind::HardshipPause) => push(
                EventType::HardshipPaused,
                json!({ "from": rfc3339(from_micros(o.from_us)), "until": until, "by": o.actor }),
            )?,
            Some(StoredKind::SimChange) => push(
                EventType::SimChanged,
                json!({ "reported_at": rfc3339(from_micros(o.from_us)) }),
            )?,
            _ => {}
        }
    }
    if change.plan_json.is_some() {
        push(
            EventType::PlanRestructured,
            json!({ "outstanding": after.outstanding }),
        )?;
    }
    for u in &change.override_updates {
        let cancels_release = u.cancelled_us.is_some()
            && snapshot.overrides.iter().any(|o| {
                o.id == u.id
                    && o.cancelled_us.is_none()
                    && StoredKind::of(&o.kind) == Some(StoredKind::Release)
            });
        if cancels_release {
            push(EventType::ReleaseCancelled, json!({}))?;
        }
    }
    match &change.appeal {
        Some(AppealWrite::Open(appeal)) => push(
            EventType::AppealOpened,
            json!({ "appeal": appeal.reference, "claim": appeal.claim }),
        )?,
        Some(AppealWrite::Decide {
            reference, status, ..
        }) => push(
            EventType::AppealAnswered,
            json!({ "appeal": reference, "status": status }),
        )?,
        None => {}
    }
    if after.notice_pending && !before.notice_pending {
        push(
            EventType::NoticePending,
            json!({
                "notices_served": after.notices_served,
                "amount_due": after.amount_due,
            }),
        )?;
    }
    if before.state != after.state && after.state != DeviceStateJson::Released {
        push(
            EventType::StateChanged,
            json!({
                "from": before.state,
                "to": after.state,
                "decision": serde_json::to_value(after).map_err(internal)?,
            }),
        )?;
    }
    if change.released_us.is_some() {
        push(
            EventType::DeviceReleased,
            json!({ "from": before.state, "decision": serde_json::to_value(after).map_err(internal)? }),
        )?;
    }
    Ok(events)
}

/// The event of an enrollment.
pub fn enrolled(
    snapshot: &DeviceSnapshot,
    decision: &DecisionView,
    now: Timestamp,
) -> Result<OutboxEvent, ApiError> {
    let e = &snapshot.device.enrolled;
    event(
        EventType::DeviceEnrolled,
        about(
            snapshot,
            json!({
                "imei1": e.imei1,
                "imei2": e.imei2,
                "serial": e.serial,
                "model": e.model,
                "decision": serde_json::to_value(decision).map_err(internal)?,
            }),
        ),
        now,
    )
}

/// The event of a payment no device could take.
pub fn unmatched(
    payment: &UnmatchedPaymentRecord,
    now: Timestamp,
) -> Result<OutboxEvent, ApiError> {
    event(
        EventType::PaymentUnmatched,
        json!({
            "unmatched_payment_id": payment.id,
            "provider": payment.provider,
            "provider_ref": payment.provider_ref,
            "account": payment.account,
            "amount": { "minor_units": payment.amount_minor, "currency": payment.currency },
            "received_at": rfc3339(from_micros(payment.received_us)),
            "reason": payment.reason,
        }),
        now,
    )
}
