//! The scheduled evaluation: a device's decision taken again when its `next_change` comes,
//! the scheduler's one command. The scheduler (`crate::scheduler`) claims the devices, groups
//! them and writes the changes; what the change is, and how it is audited, is decided here.

use lien_store::{DeviceChange, DeviceSnapshot};

use super::device_change::{Mutation, complete};
use super::payoff;
use crate::app::AppState;
use crate::clock::micros;
use crate::domain::StoredKind;
use crate::error::ApiError;
use crate::wire::DeviceStateJson;

/// The device's decision taken again at `now`: the change to write, and the state before and
/// after. Only a change of state is audited; a lease renewal signs a new token without one.
pub fn decide(
    state: &AppState,
    snapshot: &DeviceSnapshot,
    now: jiff::Timestamp,
) -> Result<(DeviceChange, DeviceStateJson, DeviceStateJson), ApiError> {
    let mutation = Mutation {
        response: Some(serde_json::Value::Null),
        ..Mutation::new(
            "scheduled",
            "the schedule reached its next step".into(),
            DeviceChange::default(),
        )
    };
    let (mut change, _, before, after) = complete(state, snapshot, "scheduler", mutation, now)?;
    if before == after {
        change.audit.clear();
    } else if after == DeviceStateJson::Released {
        change.audit[0].action = "released".into();
        change.audit[0].reason = if released_at_payoff(snapshot, micros(now)) {
            "the plan was paid in full; the release became final".into()
        } else {
            "the release became final".into()
        };
    } else if let Some(unlock) = appeal_unlock_begun(snapshot, micros(now)) {
        // An appeal's deadline passed unanswered: say so in the history.
        change.audit[0].action = "appeal_deadline".into();
        change.audit[0].reason = unlock.reason.clone();
    }
    Ok((change, before, after))
}

/// Whether the release that has begun at `now_us` is one the payoff scheduled.
fn released_at_payoff(snapshot: &DeviceSnapshot, now_us: i64) -> bool {
    snapshot.overrides.iter().any(|o| {
        StoredKind::of(&o.kind) == Some(StoredKind::Release)
            && o.cancelled_us.is_none()
            && o.from_us <= now_us
            && payoff::is_automatic(o)
    })
}

/// A provisional unlock an appeal put in force (its actor is `appeal:<reference>`) that is in
/// effect at `now_us`: the scheduler's change then comes from the appeal's deadline.
fn appeal_unlock_begun(
    snapshot: &DeviceSnapshot,
    now_us: i64,
) -> Option<&lien_store::OverrideRecord> {
    snapshot.overrides.iter().find(|o| {
        StoredKind::of(&o.kind) == Some(StoredKind::ProvisionalUnlock)
            && o.actor.starts_with("appeal:")
            && o.cancelled_us.is_none()
            && o.from_us <= now_us
            && o.until_us.is_some_and(|u| now_us < u)
    })
}
