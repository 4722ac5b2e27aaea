//! The one path every change to a device takes: the snapshot read under the device's lock, a
//! [`Mutation`] built from it by a command, the decision taken again ([`complete`]), and the
//! inputs, decision, token, audit record and idempotency response written in one transaction
//! ([`change_device`]).

use jiff::{SignedDuration, Timestamp};
use lien_store::{
    AuditEntry, DeviceChange, DeviceRecord, DeviceSnapshot, DevicesExt, IdempotentResponse,
    StoreError, UpdateError,
};

use crate::app::AppState;
use crate::auth::Actor;
use crate::clock::{from_micros, micros};
use crate::domain::{self, Evaluation, StoredKind, rfc3339};
use crate::error::ApiError;
use crate::wire::{DecisionView, DeviceStateJson, DeviceView};

/// The device as the financier sees it.
pub fn device_view(device: &DeviceRecord) -> Result<DeviceView, ApiError> {
    let e = &device.enrolled;
    Ok(DeviceView {
        id: e.id.clone(),
        contract_ref: e.contract_ref.clone(),
        imei1: e.imei1.clone(),
        imei2: e.imei2.clone(),
        serial: e.serial.clone(),
        model: e.model.clone(),
        pending: device.binding.is_none(),
        decision: domain::stored_view(&device.decision)?,
        last_check_in: device.last_seen_us.map(|us| rfc3339(from_micros(us))),
        token_sequence: device.token.as_ref().map_or(0, |t| t.sequence),
        applied_sequence: device.applied_sequence,
        // Filled in where the overrides are at hand (see `pending_release`).
        release_final_at: None,
        hardship_pause_until: None,
        hardship_request: None,
        plans: None,
    })
}

/// The pending release of a snapshot, if any: its override's start, while in the future.
pub fn pending_release(
    snapshot: &DeviceSnapshot,
    now: Timestamp,
) -> Option<&lien_store::OverrideRecord> {
    snapshot.overrides.iter().find(|o| {
        StoredKind::of(&o.kind) == Some(StoredKind::Release)
            && o.cancelled_us.is_none()
            && o.from_us > micros(now)
    })
}

/// What a command wants done to a device, before the decision is taken again.
pub struct Mutation {
    /// The audit action, e.g. `payment`.
    pub action: &'static str,
    /// Why, for the audit log.
    pub reason: String,
    /// The inputs to add: payment, reversal, overrides, policy, binding...
    pub change: DeviceChange,
    /// A response other than the device view (an offline code, a hello's credential).
    pub response: Option<serde_json::Value>,
    /// Whether a payment in this change that pays the plan off schedules the automatic
    /// release: only when whoever vouches for the money may release the phone anyway (see
    /// `payoff`). A payoff without it is recorded in the history and left to a financier admin.
    pub releases_at_payoff: bool,
}

impl Mutation {
    /// A mutation that writes `change`, audited under `action` and `reason`, answered with the
    /// device view and releasing nothing at payoff. Most commands build one of these; the few
    /// that differ set `response` or `releases_at_payoff` on it.
    pub fn new(action: &'static str, reason: String, change: DeviceChange) -> Mutation {
        Mutation {
            action,
            reason,
            change,
            response: None,
            releases_at_payoff: false,
        }
    }

    /// A mutation that adds one override, audited under `action` with the override's reason.
    pub fn add_override(action: &'static str, o: lien_store::OverrideRecord) -> Mutation {
        let reason = o.reason.clone();
        let change = DeviceChange {
            new_override: Some(o),
            ..DeviceChange::default()
        };
        Mutation::new(action, reason, change)
    }

    /// A mutation that ends or cancels overrides (and adds none), audited under `action`.
    pub fn update_overrides(
        action: &'static str,
        reason: String,
        updates: Vec<lien_store::OverrideUpdate>,
    ) -> Mutation {
        let change = DeviceChange {
            override_updates: updates,
            ..DeviceChange::default()
        };
        Mutation::new(action, reason, change)
    }
}

/// The snapshot as it will be once `change`'s inputs are stored, to decide on.
pub(crate) fn with_inputs(snapshot: &DeviceSnapshot, change: &DeviceChange) -> DeviceSnapshot {
    let mut next = snapshot.clone();
    next.payments.extend(change.payment.clone());
    next.reversals.extend(change.reversal.clone());
    for o in change.new_override.iter().chain(&change.more_overrides) {
        let id = next.overrides.iter().map(|o| o.id).max().unwrap_or(0) + 1;
        next.overrides
            .push(lien_store::OverrideRecord { id, ..o.clone() });
    }
    for u in &change.override_updates {
        if let Some(o) = next.overrides.iter_mut().find(|o| o.id == u.id) {
            o.until_us = u.until_us.or(o.until_us);
            o.cancelled_us = u.cancelled_us.or(o.cancelled_us);
        }
    }
    if let Some(policy) = &change.policy_json {
        next.device.enrolled.policy_json = policy.clone();
    }
    if let Some(plan) = &change.plan_json {
        next.device.enrolled.plan_json = plan.clone();
    }
    if let Some(applied) = change.applied_sequence {
        next.device.applied_sequence = Some(applied);
    }
    if let Some((key, bound_us)) = &change.binding {
        let generation = next.device.binding.as_ref().map_or(0, |b| b.generation) + 1;
        next.device.binding = Some(lien_store::Binding {
            generation,
            device_key: key.clone(),
            bound_us: *bound_us,
        });
    }
    next
}

/// Evaluates a device at `now` for a write, counting the token it signs. Enrollment and every
/// change ([`complete`]: the commands, hello, the scheduler) evaluate through here, so
/// `tokens_signed` is counted in this one place. It counts signatures, at signing: a token
/// whose transaction then fails (a raced retry, say) was signed all the same.
pub fn evaluate_for_write(
    state: &AppState,
    snapshot: &DeviceSnapshot,
    now: Timestamp,
) -> Result<Evaluation, ApiError> {
    let evaluation = domain::evaluate(snapshot, now, &state.signer)?;
    if evaluation.token.is_some() {
        state.metrics.tokens_signed.inc();
    }
    Ok(evaluation)
}

/// A completed mutation: the change to write, the device as it will stand, the response body,
/// and the state before and after (for the metrics).
pub struct Completed {
    /// The change to write, decision, token and audit record included.
    pub change: DeviceChange,
    /// The device as it will stand once the change is written.
    pub view: DeviceView,
    /// The response body: the mutation's own, or the device view.
    pub body: String,
    /// The state before the change.
    pub before: DeviceStateJson,
    /// The state after it.
    pub after: DeviceStateJson,
}

/// Completes a mutation: follows a payoff with its release (`payoff`), decides again, signs a
/// token if the phone's instructions changed, audits the change with the decision before and
/// after, and, when the final release comes, frees the IMEIs. Returns the change, the response
/// body, and the states before and after.
pub fn complete(
    state: &AppState,
    snapshot: &DeviceSnapshot,
    actor: &str,
    mutation: Mutation,
    now: Timestamp,
) -> Result<(DeviceChange, String, DeviceStateJson, DeviceStateJson), ApiError> {
    let c = completed(state, snapshot, actor, mutation, now)?;
    Ok((c.change, c.body, c.before, c.after))
}

/// [`complete`], with the device view as it will stand.
pub fn completed(
    state: &AppState,
    snapshot: &DeviceSnapshot,
    actor: &str,
    mutation: Mutation,
    now: Timestamp,
) -> Result<Completed, ApiError> {
    let Mutation {
        action,
        reason,
        mut change,
        response,
        releases_at_payoff,
    } = mutation;
    // A change that pays the plan off, or takes the payoff back, brings its release with it.
    let window = SignedDuration::from_hours(state.settings.release_cancel_hours as i64);
    let payoff =
        super::payoff::follow_payoff(snapshot, &mut change, window, now, releases_at_payoff)?;
    let next = with_inputs(snapshot, &change);
    let evaluation = evaluate_for_write(state, &next, now)?;
    let before = domain::stored_view(&snapshot.device.decision)?;
    let now_us = micros(now);
    if evaluation.view.state == DeviceStateJson::Released && snapshot.device.released_us.is_none() {
        change.released_us = Some(now_us);
    }
    // The financier's webhooks hear of the change in its own transaction (the outbox).
    let events =
        crate::webhooks::events::of_change(snapshot, &change, &before, &evaluation.view, now)?;
    change.outbox.extend(events);
    // A policy change is audited with the policy before and after beside the decisions, so
    // the history says what the new decision was taken under.
    let policies = change
        .policy_json
        .as_deref()
        .map(|after| (snapshot.device.enrolled.policy_json.as_str(), after));
    // A restructuring likewise, with the plan before and after: the history shows both.
    let plans = change
        .plan_json
        .as_deref()
        .map(|after| (snapshot.device.enrolled.plan_json.as_str(), after));
    let audit_before = audit_json(
        &before,
        &[
            ("policy", policies.map(|p| p.0)),
            ("plan", plans.map(|p| p.0)),
        ],
    )?;
    let audit_after = audit_json(
        &evaluation.view,
        &[
            ("policy", policies.map(|p| p.1)),
            ("plan", plans.map(|p| p.1)),
        ],
    )?;
    // The payoff's own step follows the change that caused it in the history; the device
    // stands as the change left it on both sides of it.
    let payoff_audit = payoff.map(|step| AuditEntry {
        at_us: now_us,
        actor: actor.to_string(),
        action: step.action.to_string(),
        reason: step.reason,
        before_json: audit_after.clone(),
        after_json: audit_after.clone(),
    });
    change.audit.push(AuditEntry {
        at_us: now_us,
        actor: actor.to_string(),
        action: action.to_string(),
        reason,
        before_json: audit_before,
        after_json: audit_after,
    });
    change.audit.extend(payoff_audit);
    let mut after = next.device.clone();
    after.decision = evaluation.record.clone();
    if let Some(t) = &evaluation.token {
        after.token = Some(t.clone());
    }
    change.decision = Some(evaluation.record);
    change.next_eval_us = evaluation.next_eval_us;
    change.token = evaluation.token;
    let mut view = device_view(&after)?;
    view.release_final_at = pending_release(&next, now).map(|o| rfc3339(from_micros(o.from_us)));
    view.hardship_pause_until = super::hardship::pause_until(&next, now).map(rfc3339);
    view.hardship_request = super::hardship::request_view(&next);
    let body = match response {
        Some(value) => value.to_string(),
        None => serde_json::to_string(&view).map_err(|e| ApiError::Internal(e.into()))?,
    };
    Ok(Completed {
        change,
        before: before.state,
        after: view.decision.state,
        view,
        body,
    })
}

/// The audit record's JSON of a decision, with the given stored JSON (the policy, the plan)
/// beside it under their names, where given.
fn audit_json(view: &DecisionView, extra: &[(&str, Option<&str>)]) -> Result<String, ApiError> {
    let internal = |e: serde_json::Error| ApiError::Internal(e.into());
    if extra.iter().all(|(_, json)| json.is_none()) {
        return serde_json::to_string(view).map_err(internal);
    }
    let mut value = serde_json::to_value(view).map_err(internal)?;
    for (name, json) in extra {
        let Some(json) = json else { continue };
        let stored: serde_json::Value = serde_json::from_str(json).map_err(internal)?;
        if let Some(fields) = value.as_object_mut() {
            fields.insert((*name).into(), stored);
        }
    }
    Ok(value.to_string())
}

/// An `Idempotency-Key` and the hash of the request it came with.
pub struct IdempotencyKey {
    /// The client's key.
    pub key: String,
    /// SHA-256 of method, path and body.
    pub request_hash: Vec<u8>,
}

/// What a command did: the change made now, or the answer kept for its idempotency key.
#[derive(Debug)]
pub enum Applied<T> {
    /// Done now.
    Fresh(T),
    /// A retry: the first request's answer, as it was kept.
    Replayed {
        /// Its HTTP status.
        status: u16,
        /// Its body, byte for byte.
        body: String,
    },
}

/// A change written now: the command's typed result, the device as it now stands, and the
/// response body (the text kept for the idempotency key, if there was one).
#[derive(Debug)]
pub struct Changed<X> {
    /// What the command returns beside the device (an offline code), or `()`.
    pub value: X,
    /// The device after the change.
    pub device: DeviceView,
    /// The response body, as kept for a retry.
    pub body: String,
}

/// Applies a mutation to a device the actor can see, in one transaction, honouring the
/// idempotency key if there is one. `build` is the command's rule: from the snapshot read under
/// the device's lock and the time, the mutation and the command's own typed result.
pub async fn change_device<X, F>(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    idempotency: Option<IdempotencyKey>,
    build: F,
) -> Result<Applied<Changed<X>>, ApiError>
where
    X: Send + 'static,
    F: FnOnce(&DeviceSnapshot, Timestamp) -> Result<(Mutation, X), ApiError> + Send + 'static,
{
    let scope = actor.idempotency_scope();
    if let Some(key) = &idempotency
        && let Some(stored) = state.store.idempotent_response(&scope, &key.key).await?
    {
        return replay(stored, key);
    }
    let now = state.clock.now();
    let actor_copy = actor.clone();
    let closure_state = state.clone();
    let idem_for_change = idempotency
        .as_ref()
        .map(|k| (k.key.clone(), k.request_hash.clone()));
    let result = state
        .store
        .update_device_with(device_id, move |snapshot: &DeviceSnapshot| {
            if !actor_copy.sees_financier(&snapshot.device.enrolled.financier_id) {
                return Err(ApiError::NotFound("device"));
            }
            let (mutation, value) = build(snapshot, now)?;
            let mut c = completed(&closure_state, snapshot, &actor_copy.key_id, mutation, now)?;
            if let Some((key, request_hash)) = idem_for_change {
                c.change.idempotency = Some(IdempotentResponse {
                    scope: actor_copy.idempotency_scope(),
                    key,
                    request_hash,
                    status: 200,
                    body: c.body.clone(),
                });
            }
            let Completed {
                change,
                view,
                body,
                before,
                after,
            } = c;
            Ok((change, (value, view, body, before, after)))
        })
        .await;
    match result {
        Ok((_, (value, device, body, before, after))) => {
            state.metrics.state_changed(&before, &after);
            state.scheduler_wake.notify_one();
            Ok(Applied::Fresh(Changed {
                value,
                device,
                body,
            }))
        }
        Err(UpdateError::Refused(e)) => Err(e),
        // A retry that raced the first request: answer as the first was answered.
        Err(UpdateError::Store(StoreError::IdempotencyConflict)) => {
            let key = idempotency.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("a response was kept for no key"))
            })?;
            let stored = state
                .store
                .idempotent_response(&scope, &key.key)
                .await?
                .ok_or(StoreError::IdempotencyConflict)?;
            replay(stored, &key)
        }
        Err(UpdateError::Store(StoreError::NotFound)) => Err(ApiError::NotFound("device")),
        Err(UpdateError::Store(err)) => Err(err.into()),
    }
}

fn replay<T>(stored: IdempotentResponse, key: &IdempotencyKey) -> Result<Applied<T>, ApiError> {
    if stored.request_hash != key.request_hash {
        return Err(ApiError::Conflict(format!(
            "Idempotency-Key {:?} was already used with a different request",
            key.key
        )));
    }
    Ok(Applied::Replayed {
        status: stored.status,
        body: stored.body,
    })
}
