//! Enrolling a device: one, or a row of a bulk file (the same command, row by row).

use jiff::Timestamp;
use lien_core::{Imei, SerialNumber};
use lien_store::{
    AuditEntry, DecisionRecord, DeviceChange, DeviceRecord, DeviceSnapshot, NewDevice,
};

use super::device_change::{device_view, evaluate_for_write};
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::micros;
use crate::domain;
use crate::error::ApiError;
use crate::input::{new_id, parse_imeis, required_text};
use crate::wire::{DeviceView, EnrollRequest};

/// The checks of an enrollment that need no state: the IMEIs, the serial, the plan and the
/// policy, each refusal naming its field. [`prepare_enrollment`] starts with these; the fuzz
/// targets (crates/lien-fuzz) call them on their own.
pub fn check_enrollment(
    req: &EnrollRequest,
) -> Result<(Imei, Option<Imei>, SerialNumber), ApiError> {
    let (imei1, imei2) = parse_imeis(&req.imei1, req.imei2.as_deref())?;
    if imei2.as_ref() == Some(&imei1) {
        return Err(ApiError::invalid("imei2", "must differ from imei1"));
    }
    let serial = SerialNumber::parse(&req.serial).map_err(|e| ApiError::invalid("serial", e))?;
    domain::parse_plan(&req.plan)?;
    domain::parse_policy(&req.policy)?;
    Ok((imei1, imei2, serial))
}

/// Checks an enrollment and prepares the device and its first decision and token.
pub fn prepare_enrollment(
    state: &AppState,
    financier: &lien_store::Financier,
    actor: &str,
    req: &EnrollRequest,
    now: Timestamp,
) -> Result<(NewDevice, DeviceChange), ApiError> {
    let (imei1, imei2, serial) = check_enrollment(req)?;
    let device = NewDevice {
        id: new_id("dev")?,
        financier_id: financier.id.clone(),
        contract_ref: required_text("contract_ref", &req.contract_ref, 64)?,
        imei1: imei1.as_str().to_string(),
        imei2: imei2.map(|i| i.as_str().to_string()),
        serial: serial.as_str().to_string(),
        model: required_text("model", &req.model, 80)?,
        plan_json: serde_json::to_string(&req.plan).map_err(|e| ApiError::Internal(e.into()))?,
        policy_json: serde_json::to_string(&req.policy)
            .map_err(|e| ApiError::Internal(e.into()))?,
        enrolled_us: micros(now),
    };
    let snapshot = DeviceSnapshot {
        device: DeviceRecord {
            enrolled: device.clone(),
            decision: DecisionRecord {
                state: "pending".into(),
                json: "null".into(),
                amount_due_minor: 0,
                currency: req.plan.currency.clone(),
                overdue_since: None,
            },
            next_eval_us: None,
            binding: None,
            token: None,
            applied_sequence: None,
            last_seen_us: None,
            ocra_counter: 0,
            checkin_counter: 0,
            released_us: None,
            version: 0,
        },
        financier: financier.clone(),
        payments: vec![],
        reversals: vec![],
        overrides: vec![],
    };
    let evaluation = evaluate_for_write(state, &snapshot, now)?;
    let enrolled = crate::webhooks::events::enrolled(&snapshot, &evaluation.view, now)?;
    let change = DeviceChange {
        outbox: vec![enrolled],
        audit: vec![AuditEntry {
            at_us: micros(now),
            actor: actor.to_string(),
            action: "enrolled".into(),
            reason: format!("contract {}", device.contract_ref),
            before_json: "null".into(),
            after_json: serde_json::to_string(&evaluation.view)
                .map_err(|e| ApiError::Internal(e.into()))?,
        }],
        decision: Some(evaluation.record),
        next_eval_us: evaluation.next_eval_us,
        token: evaluation.token,
        ..DeviceChange::default()
    };
    Ok((device, change))
}

/// The financier a financier-role caller acts for.
pub async fn own_financier(
    state: &AppState,
    actor: &Actor,
) -> Result<lien_store::Financier, ApiError> {
    let id = actor.financier_id.as_deref().ok_or_else(|| {
        ApiError::Forbidden("devices are enrolled with a financier's API key".into())
    })?;
    Ok(state.store.financier(id).await?)
}

/// Enrolls one device with the actor's financier: the device as stored, pending its hello.
pub async fn enroll(
    state: &AppState,
    actor: &Actor,
    req: &EnrollRequest,
) -> Result<DeviceView, ApiError> {
    actor.require(Action::Enroll)?;
    let financier = own_financier(state, actor).await?;
    let stored = enroll_row(state, &financier, actor, req).await?;
    state.scheduler_wake.notify_one();
    device_view(&stored)
}

/// Enrolls one device of a bulk file with `financier` (read once for the file). The caller
/// wakes the scheduler once the file is done.
pub async fn enroll_row(
    state: &AppState,
    financier: &lien_store::Financier,
    actor: &Actor,
    req: &EnrollRequest,
) -> Result<DeviceRecord, ApiError> {
    actor.require(Action::Enroll)?;
    let (device, change) =
        prepare_enrollment(state, financier, &actor.key_id, req, state.clock.now())?;
    Ok(state.store.enroll(&device, change).await?)
}
