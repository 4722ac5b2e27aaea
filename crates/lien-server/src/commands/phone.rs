//! The phone's one device change: the binding an attested hello makes.

use jiff::Timestamp;
use lien_store::{DeviceChange, DeviceRecord, DeviceSnapshot, DevicesExt, StoreError, UpdateError};

use super::device_change::{Mutation, complete};
use crate::app::AppState;
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
            let mutation = Mutation {
                action: if rebind { "rebound" } else { "bound" },
                reason: if rebind {
                    "attested hello after a reset or a new install: new device key".into()
                } else {
                    "first attested hello".into()
                },
                change: DeviceChange {
                    // Never at or before the challenge's issue time: a challenge from a
                    // server whose clock is ahead must not outlive the binding it made.
                    binding: Some((device_key, crate::clock::micros(now).max(issued_us + 1))),
                    ..DeviceChange::default()
                },
                response: Some(serde_json::Value::Null),
                releases_at_payoff: false,
            };
            let (change, _, _, _) = complete(&closure_state, snapshot, "device", mutation, now)?;
            Ok((change, ()))
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
/// request counter it was accepted under. The decision and its schedule stay as they are. The
/// counter was claimed on this server; another server sharing the database may have accepted
/// it already, so it is checked again under the device's lock, with the binding it was signed
/// under: a report is never applied twice.
pub async fn record_report(
    state: &AppState,
    device_id: &str,
    generation: i64,
    counter: i64,
    applied: i64,
    events: Vec<lien_store::DeviceEvent>,
) -> Result<(), ApiError> {
    let now_us = crate::clock::micros(state.clock.now());
    let result = state
        .store
        .update_device_with(device_id, move |snapshot: &DeviceSnapshot| {
            let device = &snapshot.device;
            let bound = device.binding.as_ref().map_or(0, |b| b.generation);
            if bound != generation {
                return Err(ApiError::Unauthorized("the device was bound again".into()));
            }
            if device.checkin_counter >= counter {
                return Err(crate::app::replayed(counter, device.checkin_counter));
            }
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
            Ok((change, ()))
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(UpdateError::Refused(e)) => Err(e),
        Err(UpdateError::Store(e)) => Err(e.into()),
    }
}
