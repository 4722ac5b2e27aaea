//! Restructuring (issue 20): the financier (or support, where the policy allows) reschedules
//! what remains of a plan. The rule is `lien-core`'s (`lien_core::restructure`: what is paid
//! stays, the new installments owe exactly what remains plus at most the policy's fee, not in
//! the past, in the plan's currency); this command reads the device under its lock, applies it,
//! and writes the new plan with the one it replaced (kept in `plan_versions`) in one change, so
//! the device is decided again under the new schedule, its token and lock screen with it, in
//! the same transaction. A pause in effect does not stand in the way: a pause often ends in one.

use lien_core::{Installment, Money, RestructureError};
use lien_store::{DeviceChange, PlanVersionRecord};

use super::device_change::{Applied, Changed, IdempotencyKey, Mutation, change_device};
use super::overrides::not_released;
use crate::app::AppState;
use crate::auth::{Action, Actor, Role};
use crate::clock::micros;
use crate::domain::{Inputs, parse_currency};
use crate::error::ApiError;
use crate::input::required_text;
use crate::wire::{InstallmentJson, PlanJson, RestructureRequest};

/// The refusal of a new schedule, naming the field at fault.
fn refusal(e: RestructureError) -> ApiError {
    match &e {
        RestructureError::NothingRemains => ApiError::Conflict(e.to_string()),
        RestructureError::CurrencyMismatch { .. } => ApiError::invalid("currency", e),
        RestructureError::DueInPast { index, .. }
        | RestructureError::DueBeforeKept { index, .. } => {
            ApiError::invalid(&format!("installments[{}].due", index - 1), e)
        }
        _ => ApiError::invalid("installments", e),
    }
}

/// Reschedules what remains of the device's plan (see the module's comment).
pub async fn restructure(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    key: Option<IdempotencyKey>,
    req: RestructureRequest,
) -> Result<Applied<Changed<()>>, ApiError> {
    // Support may only where the device's policy says so, which is read under the lock.
    let by_support = actor.role == Role::Support;
    if !by_support {
        actor.require(Action::Restructure)?;
    }
    let reason = required_text("reason", &req.reason, 200)?;
    if req.installments.len() > lien_core::InstallmentPlan::MAX_INSTALLMENTS {
        return Err(ApiError::invalid(
            "installments",
            format!(
                "at most {} installments",
                lien_core::InstallmentPlan::MAX_INSTALLMENTS
            ),
        ));
    }
    let dues = req
        .installments
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            inst.due.parse::<jiff::civil::Date>().map_err(|_| {
                ApiError::invalid(
                    &format!("installments[{i}].due"),
                    format!("{:?} is not a date in the form YYYY-MM-DD", inst.due),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let currency = req
        .currency
        .as_deref()
        .map(|c| parse_currency("currency", c))
        .transpose()?;
    let who = actor.key_id.clone();
    change_device(state, actor, device_id, key, move |snapshot, now| {
        not_released(snapshot)?;
        let inputs = Inputs::of(snapshot)?;
        let settings = inputs.policy.settings();
        if by_support && !settings.restructure_by_support {
            return Err(ApiError::Forbidden(
                "support may restructure this plan only where its policy allows it \
                 (restructure_by_support)"
                    .into(),
            ));
        }
        let plan_currency = inputs.plan.currency();
        if let Some(c) = currency
            && c != plan_currency
        {
            return Err(ApiError::invalid(
                "currency",
                format!("the plan is in {plan_currency}; a new schedule is in the same currency"),
            ));
        }
        let new = dues
            .iter()
            .zip(&req.installments)
            .map(|(due, inst)| Installment {
                due: *due,
                amount: Money::new(inst.amount_minor, plan_currency),
            })
            .collect();
        let today = now.to_zoned(inputs.plan.time_zone().clone()).date();
        let restructured = lien_core::restructure(
            &inputs.plan,
            inputs.payments.paid_at(now),
            today,
            new,
            settings.restructure_max_fee_percent,
        )
        .map_err(refusal)?;
        let old_json = snapshot.device.enrolled.plan_json.clone();
        let old: PlanJson = serde_json::from_str(&old_json)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("stored plan")))?;
        let plan = PlanJson {
            installments: restructured
                .plan
                .installments()
                .iter()
                .map(|i| InstallmentJson {
                    due: i.due.to_string(),
                    amount_minor: i.amount.minor(),
                })
                .collect(),
            ..old
        };
        let plan_json = serde_json::to_string(&plan).map_err(|e| ApiError::Internal(e.into()))?;
        let change = DeviceChange {
            plan_json: Some(plan_json),
            superseded_plan: Some(PlanVersionRecord {
                version: 0,
                plan_json: old_json,
                superseded_us: micros(now),
                actor: who,
                reason: reason.clone(),
            }),
            ..DeviceChange::default()
        };
        let mutation = Mutation::new("plan_restructured", reason, change);
        Ok((mutation, ()))
    })
    .await
}
