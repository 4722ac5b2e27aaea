//! The HTTP routes, and the one path every change to a device takes.

pub(crate) mod admin;
pub mod appeals;
pub(crate) mod devices;
pub(crate) mod ops;
pub(crate) mod phone;
pub mod public;
pub(crate) mod push;

pub use devices::prepare_enrollment;
pub use phone::sign_checkin;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use jiff::Timestamp;
use lien_proto::device_api::{MAX_CHECKIN_BODY_BYTES, MAX_HELLO_BODY_BYTES};
use lien_store::{
    AuditEntry, DeviceChange, DeviceRecord, DeviceSnapshot, IdempotentResponse, StoreError,
};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::Actor;
use crate::clock::{from_micros, micros};
use crate::domain::{self, Evaluation, kind, rfc3339};
use crate::error::ApiError;
use crate::wire::{DecisionView, DeviceView};

/// What a request body to the financier API may weigh: policies, plans and enrollments are a
/// few KiB. Routes that take more (bulk CSV, appeal uploads) or less (the phone's) say so.
pub const MAX_API_BODY_BYTES: usize = 64 * 1024;

/// The most a bulk enrollment CSV may weigh: 20,000 rows of a few hundred bytes.
pub const MAX_BULK_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What an appeal form may carry beyond its file: the text fields and the multipart framing.
pub const APPEAL_FORM_MARGIN_BYTES: u64 = 64 * 1024;

/// The body limit of the appeal forms (the JSON API's and the page's).
pub fn appeal_body_limit(settings: &crate::config::Settings) -> DefaultBodyLimit {
    let max = settings
        .appeal_upload_max_bytes
        .saturating_add(APPEAL_FORM_MARGIN_BYTES);
    DefaultBodyLimit::max(usize::try_from(max).unwrap_or(usize::MAX))
}

/// Every route of the server. Every body is limited: by default to [`MAX_API_BODY_BYTES`].
pub fn router(settings: &crate::config::Settings) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route(
            "/v1/financiers",
            post(admin::create_financier).get(admin::list_financiers),
        )
        .route(
            "/v1/financiers/{id}/api-keys",
            post(admin::create_api_key).get(admin::list_financier_keys),
        )
        .route(
            "/v1/api-keys",
            post(admin::create_platform_key).get(admin::list_keys),
        )
        .route("/v1/api-keys/{id}/revoke", post(admin::revoke_key))
        .route("/v1/devices", post(devices::enroll).get(devices::list))
        .route(
            "/v1/devices/bulk",
            post(devices::bulk_enroll).layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)),
        )
        .route("/v1/devices/{id}", get(devices::status))
        .route("/v1/devices/{id}/history", get(devices::history))
        .route("/v1/devices/{id}/payments", post(devices::record_payment))
        .route(
            "/v1/devices/{id}/payments/{reference}/reversal",
            post(devices::reverse_payment),
        )
        .route("/v1/devices/{id}/lock", post(devices::lock))
        .route("/v1/devices/{id}/unlock", post(devices::unlock))
        .route("/v1/devices/{id}/reminder", post(devices::reminder))
        .route(
            "/v1/devices/{id}/release",
            post(devices::release).delete(devices::cancel_release),
        )
        .route(
            "/v1/devices/{id}/offline-unlock",
            post(devices::offline_unlock),
        )
        .route("/v1/devices/{id}/policy", put(devices::change_policy))
        .route("/v1/status-codes/{code}", get(devices::status_code))
        .route("/v1/device/hello/challenge", post(phone::hello_challenge))
        .route(
            "/v1/device/hello",
            post(phone::hello).layer(DefaultBodyLimit::max(MAX_HELLO_BODY_BYTES)),
        )
        .route(
            "/v1/device/checkin",
            post(phone::checkin).layer(DefaultBodyLimit::max(MAX_CHECKIN_BODY_BYTES)),
        )
        .route("/v1/public/imei/{imei}", get(public::imei))
        .route(
            "/v1/public/appeals",
            post(appeals::open).layer(appeal_body_limit(settings)),
        )
        .route("/v1/public/appeals/{reference}", get(appeals::follow))
        .route("/v1/appeals", get(appeals::list))
        .route("/v1/appeals/{reference}", get(appeals::get_one))
        .route(
            "/v1/appeals/{reference}/attachment",
            get(appeals::attachment),
        )
        .route("/v1/appeals/{reference}/decision", post(appeals::decide))
        .route(
            "/v1/device/push",
            post(push::push).layer(DefaultBodyLimit::max(MAX_CHECKIN_BODY_BYTES)),
        )
        // The borrower's HTML pages: not part of the JSON API or its document.
        .merge(crate::pages::router(settings))
        .layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES))
}

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
    })
}

/// The pending release of a snapshot, if any: its override's start, while in the future.
pub fn pending_release(
    snapshot: &DeviceSnapshot,
    now: Timestamp,
) -> Option<&lien_store::OverrideRecord> {
    snapshot
        .overrides
        .iter()
        .find(|o| o.kind == kind::RELEASE && o.cancelled_us.is_none() && o.from_us > micros(now))
}

/// What a handler wants done to a device, before the decision is taken again.
pub struct Mutation {
    /// The audit action, e.g. `payment`.
    pub action: &'static str,
    /// Why, for the audit log.
    pub reason: String,
    /// The inputs to add: payment, reversal, overrides, policy, binding...
    pub change: DeviceChange,
    /// A response other than the device view (an offline code, a hello's credential).
    pub response: Option<serde_json::Value>,
}

impl Mutation {
    /// A mutation that adds one override, audited under `action` with the override's reason.
    pub fn add_override(action: &'static str, o: lien_store::OverrideRecord) -> Mutation {
        Mutation {
            action,
            reason: o.reason.clone(),
            change: DeviceChange {
                new_override: Some(o),
                ..DeviceChange::default()
            },
            response: None,
        }
    }
}

/// The snapshot as it will be once `change`'s inputs are stored, to decide on.
fn with_inputs(snapshot: &DeviceSnapshot, change: &DeviceChange) -> DeviceSnapshot {
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
/// change ([`complete`]: the API's mutations, hello, the scheduler) evaluate through here, so
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

/// Completes a mutation: decides again, signs a token if the phone's instructions changed,
/// audits the change with the decision before and after, and, when the final release comes,
/// frees the IMEIs. Returns the change and the response body.
pub fn complete(
    state: &AppState,
    snapshot: &DeviceSnapshot,
    actor: &str,
    mutation: Mutation,
    now: Timestamp,
) -> Result<(DeviceChange, String, String, String), ApiError> {
    let Mutation {
        action,
        reason,
        mut change,
        response,
    } = mutation;
    let next = with_inputs(snapshot, &change);
    let evaluation = evaluate_for_write(state, &next, now)?;
    let before = domain::stored_view(&snapshot.device.decision)?;
    let now_us = micros(now);
    if evaluation.view.state == "released" && snapshot.device.released_us.is_none() {
        change.released_us = Some(now_us);
    }
    // A policy change is audited with the policy before and after beside the decisions, so
    // the history says what the new decision was taken under.
    let policies = change
        .policy_json
        .as_deref()
        .map(|after| (snapshot.device.enrolled.policy_json.as_str(), after));
    let audit_before = audit_json(&before, policies.map(|p| p.0))?;
    let audit_after = audit_json(&evaluation.view, policies.map(|p| p.1))?;
    change.audit.push(AuditEntry {
        at_us: now_us,
        actor: actor.to_string(),
        action: action.to_string(),
        reason,
        before_json: audit_before,
        after_json: audit_after,
    });
    let mut after = next.device.clone();
    after.decision = evaluation.record.clone();
    if let Some(t) = &evaluation.token {
        after.token = Some(t.clone());
    }
    change.decision = Some(evaluation.record);
    change.next_eval_us = evaluation.next_eval_us;
    change.token = evaluation.token;
    let body = match response {
        Some(value) => value,
        None => {
            let mut view = device_view(&after)?;
            view.release_final_at =
                pending_release(&next, now).map(|o| rfc3339(from_micros(o.from_us)));
            serde_json::to_value(view).map_err(|e| ApiError::Internal(e.into()))?
        }
    };
    Ok((change, body.to_string(), before.state, after.decision.state))
}

/// The audit record's JSON of a decision, with the policy (stored JSON) beside it if given.
fn audit_json(view: &DecisionView, policy: Option<&str>) -> Result<String, ApiError> {
    let internal = |e: serde_json::Error| ApiError::Internal(e.into());
    let Some(policy) = policy else {
        return serde_json::to_string(view).map_err(internal);
    };
    let mut value = serde_json::to_value(view).map_err(internal)?;
    let policy: serde_json::Value = serde_json::from_str(policy).map_err(internal)?;
    if let Some(fields) = value.as_object_mut() {
        fields.insert("policy".into(), policy);
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

/// A response ready to send: status and JSON text.
pub struct JsonText(pub axum::http::StatusCode, pub String);

impl axum::response::IntoResponse for JsonText {
    fn into_response(self) -> axum::response::Response {
        (
            self.0,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.1,
        )
            .into_response()
    }
}

/// Applies a mutation to a device the actor can see, in one transaction, honouring the
/// idempotency key if there is one.
pub async fn mutate_device<F>(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    idempotency: Option<IdempotencyKey>,
    build: F,
) -> Result<JsonText, ApiError>
where
    F: FnOnce(&DeviceSnapshot, Timestamp) -> Result<Mutation, ApiError> + Send + 'static,
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
    let (tx, rx) = std::sync::mpsc::channel();
    let result = state
        .store
        .update_device(
            device_id,
            Box::new(move |snapshot: &DeviceSnapshot| {
                let run = || -> Result<DeviceChange, ApiError> {
                    if !actor_copy.sees_financier(&snapshot.device.enrolled.financier_id) {
                        return Err(ApiError::NotFound("device"));
                    }
                    let mutation = build(snapshot, now)?;
                    let (mut change, body, before, after) =
                        complete(&closure_state, snapshot, &actor_copy.key_id, mutation, now)?;
                    if let Some((key, request_hash)) = idem_for_change {
                        change.idempotency = Some(IdempotentResponse {
                            scope: actor_copy.idempotency_scope(),
                            key,
                            request_hash,
                            status: 200,
                            body: body.clone(),
                        });
                    }
                    let _ = tx.send((body, before, after));
                    Ok(change)
                };
                run().map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }),
        )
        .await;
    match result {
        Ok(_) => {
            let (body, before, after) = rx
                .recv()
                .map_err(|_| ApiError::Internal(anyhow::anyhow!("change produced no response")))?;
            state.metrics.state_changed(&before, &after);
            state.scheduler_wake.notify_one();
            Ok(JsonText(axum::http::StatusCode::OK, body))
        }
        // A retry that raced the first request: answer as the first was answered.
        Err(StoreError::Conflict(what)) if what.contains("Idempotency-Key") => {
            let key = idempotency.expect("only keyed requests store responses");
            let stored = state
                .store
                .idempotent_response(&scope, &key.key)
                .await?
                .ok_or(ApiError::Conflict(what))?;
            replay(stored, &key)
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound("device")),
        Err(err) => Err(err.into()),
    }
}

fn replay(stored: IdempotentResponse, key: &IdempotencyKey) -> Result<JsonText, ApiError> {
    if stored.request_hash != key.request_hash {
        return Err(ApiError::Conflict(format!(
            "Idempotency-Key {:?} was already used with a different request",
            key.key
        )));
    }
    let status = axum::http::StatusCode::from_u16(stored.status)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(JsonText(status, stored.body))
}

/// Serializes a response body.
pub fn json_text<T: Serialize>(
    status: axum::http::StatusCode,
    value: &T,
) -> Result<JsonText, ApiError> {
    serde_json::to_string(value)
        .map(|body| JsonText(status, body))
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Creates a platform admin key.
pub async fn admin_key(state: &AppState) -> Result<crate::wire::ApiKeyCreated, ApiError> {
    admin::issue_key(
        state,
        "lien",
        crate::auth::Role::PlatformAdmin,
        None,
        "platform admin created at first start".into(),
    )
    .await
}
