//! The financier API on devices: enrollment, payments, locks, release, and reads.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{JsonText, applied_json, json_text};
use crate::app::AppState;
use crate::auth::Actor;
use crate::commands::bulk::BulkResult;
use crate::commands::reads::{self, DeviceQuery};
use crate::commands::{self, IdempotencyKey, device_view};
use crate::error::{ApiError, ErrorBody};
use crate::wire::{
    DevicePage, DeviceStateJson, DeviceView, EnrollRequest, HistoryView, LockRequest, OfflineCode,
    OfflineCodeRequest, PaymentRequest, PolicyChangeRequest, ReleaseRequest, ReminderRequest,
    ReversalRequest, StatusCodeView, UnlockRequest,
};

/// `POST /v1/devices`: enroll one device.
#[utoipa::path(
    post,
    path = "/v1/devices",
    tag = "devices",
    security(("api_key" = [])),
    request_body = EnrollRequest,
    responses(
        (status = 201, description = "The device, enrolled and pending its first hello.", body = DeviceView),
        (status = 403, description = "The role may not enroll, or the key is not a financier's.", body = ErrorBody),
        (status = 409, description = "An IMEI or the contract reference is already enrolled.", body = ErrorBody),
    )
)]
pub async fn enroll(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    let Json(req) = body?;
    json_text(
        StatusCode::CREATED,
        &commands::enroll(&state, &actor, &req).await?,
    )
}

/// `POST /v1/devices/bulk`: enroll from CSV. Each row is its own enrollment: a refused row
/// writes nothing, and does not stop the others.
#[utoipa::path(
    post,
    path = "/v1/devices/bulk",
    tag = "devices",
    security(("api_key" = [])),
    request_body(content = String, content_type = "text/csv", description = "The CSV to enroll, with a header row naming the columns `contract_ref,imei1,imei2,serial,model,currency,time_zone,down_payment_minor,installments,policy`. `imei2` and `down_payment_minor` may be empty; `currency` is an ISO 4217 code, `time_zone` an IANA zone, amounts are in minor units; `installments` is `DATE:AMOUNT` pairs separated by `;` (e.g. `2025-02-01:5000;2025-03-01:5000`); `policy` is a preset's name (`strict-dealer`, `kenya` or `india-draft`). At most 20000 rows."),
    responses(
        (status = 200, description = "Each row's outcome. A refused row writes nothing and does not stop the others.", body = BulkResult),
        (status = 400, description = "The CSV header cannot be read, or there are too many rows.", body = ErrorBody),
        (status = 403, description = "The role may not enroll, or the key is not a financier's.", body = ErrorBody),
        (status = 409, description = "A file for this financier is still being enrolled (from the API or the console); wait for it to finish.", body = ErrorBody),
        (status = 503, description = "This server is enrolling as many files as it takes at once, or every connection it takes (`max_connections`) is open; try again shortly.", body = ErrorBody),
    )
)]
pub async fn bulk_enroll(
    State(state): State<AppState>,
    actor: Actor,
    request: Request,
) -> Result<JsonText, ApiError> {
    // Asked before the file is read: the server holds no file it would refuse.
    commands::bulk::admit(&state, &actor)?;
    let body = Bytes::from_request(request, &state).await?;
    json_text(
        StatusCode::OK,
        &*commands::bulk::enroll_csv(&state, &actor, &body).await?,
    )
}

/// Filters of the device list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    #[serde(default)]
    overdue: bool,
    not_seen_days: Option<u32>,
    policy: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/devices`: the caller's devices, filtered, in pages.
#[utoipa::path(
    get,
    path = "/v1/devices",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("state" = Option<DeviceStateJson>, Query, description = "Only devices in this state: `active`, `reminder`, `restricted`, `locked` or `released`."),
        ("overdue" = Option<bool>, Query, description = "Only devices with an amount due (default false)."),
        ("not_seen_days" = Option<u32>, Query, description = "Only devices not seen for at least this many days."),
        ("policy" = Option<String>, Query, description = "Only devices under this policy: `strict-dealer`, `kenya`, `india-draft`, or `custom` for settings of the financier's own."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (default 50)."),
    ),
    responses(
        (status = 200, description = "A page of the caller's devices, in id order.", body = DevicePage),
        (status = 400, description = "A query parameter is unknown or has the wrong type.", body = ErrorBody),
        (status = 422, description = "`state`, `policy` or `limit` is refused.", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<DevicePage>, ApiError> {
    let Query(q) = query?;
    // The state is read here rather than by the query's parser, so that an unknown one is
    // refused as a field (422) like every other value, not as a malformed query (400).
    let only_state = q
        .state
        .as_deref()
        .map(str::parse::<DeviceStateJson>)
        .transpose()
        .map_err(|e| ApiError::invalid("state", e))?;
    let page = reads::list_devices(
        &state,
        &actor,
        DeviceQuery {
            state: only_state,
            overdue: q.overdue,
            not_seen_days: q.not_seen_days,
            policy: q.policy,
            cursor: q.cursor,
            limit: q.limit,
        },
    )
    .await?;
    Ok(Json(DevicePage {
        devices: page
            .devices
            .iter()
            .map(device_view)
            .collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /v1/devices/{id}`.
#[utoipa::path(
    get,
    path = "/v1/devices/{id}",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The device's id, `dev_` and hex."),
    ),
    responses(
        (status = 200, description = "The device, with every schedule it was held to (`plans`).", body = DeviceView),
        (status = 404, description = "No such device, or not the caller's: the two are indistinguishable.", body = ErrorBody),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<JsonText, ApiError> {
    let snapshot = reads::visible_snapshot(&state, &actor, &id).await?;
    json_text(
        StatusCode::OK,
        &reads::device_detail(&state, &snapshot).await?,
    )
}

/// `GET /v1/devices/{id}/history`: the device's audit chain.
#[utoipa::path(
    get,
    path = "/v1/devices/{id}/history",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The device's id, `dev_` and hex."),
    ),
    responses(
        (status = 200, description = "The audit chain, oldest first, and whether it is intact.", body = HistoryView),
        (status = 404, description = "No such device, or not the caller's: the two are indistinguishable.", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<HistoryView>, ApiError> {
    Ok(Json(reads::history(&state, &actor, &id).await?))
}

/// The body of a command that a client may retry, and its `Idempotency-Key` header if there
/// is one: checked, and hashed with the method, the path and the body, so that the same key
/// with another request is told apart. A malformed key is refused here, whether the command
/// requires one or not.
pub struct KeyedRequest {
    pub(crate) key: Option<IdempotencyKey>,
    pub(crate) body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for KeyedRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<KeyedRequest, ApiError> {
        let (method, uri, headers) = (
            req.method().clone(),
            req.uri().clone(),
            req.headers().clone(),
        );
        let body = Bytes::from_request(req, state).await?;
        // Read as JSON whatever its declared type, so checked here too whatever the edge made
        // of that type (see `no_nul`).
        if let Some(field) = crate::no_nul::json_field_with_nul(&body) {
            return Err(ApiError::invalid(&field, crate::no_nul::NUL_PROBLEM));
        }
        let key = optional_idempotency_key(&headers, &method, &uri, &body)?;
        Ok(KeyedRequest { key, body })
    }
}

/// The `Idempotency-Key` of a payment or a reversal, which must have one.
pub(crate) fn required_key(key: Option<IdempotencyKey>) -> Result<IdempotencyKey, ApiError> {
    key.ok_or_else(|| {
        ApiError::BadRequest(
            "missing Idempotency-Key header: payments, reversals and restructurings need one, so that a retry \
             never applies twice"
                .into(),
        )
    })
}

/// The `Idempotency-Key` header if there is one, checked, with the hash of the request it came
/// with.
fn optional_idempotency_key(
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = key
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?
        .trim()
        .to_string();
    if key.is_empty() || key.len() > 200 {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must have 1 to 200 characters".into(),
        ));
    }
    if key.starts_with(commands::mobile_money::PROVIDER_KEY_PREFIX) {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must not start with {:?}: Lien keeps those for payment \
             providers' callbacks",
            commands::mobile_money::PROVIDER_KEY_PREFIX
        )));
    }
    if key.starts_with(crate::console::CONSOLE_KEY_PREFIX) {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must not start with {:?}: Lien keeps those for the console's forms",
            crate::console::CONSOLE_KEY_PREFIX
        )));
    }
    let mut hash = Sha256::new();
    hash.update(method.as_str().as_bytes());
    hash.update(b" ");
    hash.update(uri.path().as_bytes());
    hash.update(b"\n");
    hash.update(body);
    Ok(Some(IdempotencyKey {
        key,
        request_hash: hash.finalize().to_vec(),
    }))
}

/// `POST /v1/devices/{id}/payments`.
#[utoipa::path(
    post,
    path = "/v1/devices/{id}/payments",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The device's id, `dev_` and hex."),
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 200 characters of the client's choosing. A retry with the same key and request gets the first answer; the same key with another request is a 409."),
    ),
    request_body = PaymentRequest,
    responses(
        (status = 200, description = "The device with the payment applied (or, for a retry, the first answer).", body = DeviceView),
        (status = 400, description = "The body is not JSON, or the Idempotency-Key is missing or malformed.", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's: the two are indistinguishable.", body = ErrorBody),
        (status = 409, description = "The reference is already recorded for this device, or the key was used with a different request.", body = ErrorBody),
        (status = 422, description = "A field is refused: the amount, a currency other than the plan's, a future `received_at`.", body = ErrorBody),
    )
)]
pub async fn record_payment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    request: KeyedRequest,
) -> Result<JsonText, ApiError> {
    let key = required_key(request.key)?;
    let Json(req) = Json::<PaymentRequest>::from_bytes(&request.body)?;
    applied_json(commands::record_payment(&state, &actor, &id, key, req).await?)
}

/// `POST /v1/devices/{id}/payments/{reference}/reversal`.
#[utoipa::path(
    post,
    path = "/v1/devices/{id}/payments/{reference}/reversal",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The device's id, `dev_` and hex."),
        ("reference" = String, Path, description = "The payment's reference."),
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 200 characters of the client's choosing. A retry with the same key and request gets the first answer; the same key with another request is a 409."),
    ),
    request_body = ReversalRequest,
    responses(
        (status = 200, description = "The device with the payment reversed (or, for a retry, the first answer).", body = DeviceView),
        (status = 400, description = "The body is not JSON, or the Idempotency-Key is missing or malformed.", body = ErrorBody),
        (status = 404, description = "No such device or payment, or not the caller's.", body = ErrorBody),
        (status = 409, description = "The payment is already reversed, or the key was used with a different request.", body = ErrorBody),
    )
)]
pub async fn reverse_payment(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, reference)): Path<(String, String)>,
    request: KeyedRequest,
) -> Result<JsonText, ApiError> {
    let key = required_key(request.key)?;
    let Json(req) = Json::<ReversalRequest>::from_bytes(&request.body)?;
    applied_json(commands::reverse_payment(&state, &actor, &id, reference, key, req).await?)
}

/// A `POST /v1/devices/{id}/<command>` that takes the command's JSON request and answers the
/// device as it now stands. Lock, unlock, reminder and release differ only in their request,
/// their command and what their answers say, so each is declared by this macro, documented
/// from its arguments: `$ok` describes the 200, `$conflict` the 409.
macro_rules! device_command {
    ($(#[doc = $doc:literal])* $name:ident($request:ty), $path:literal, ok = $ok:literal, conflict = $conflict:literal $(,)?) => {
        $(#[doc = $doc])*
        #[utoipa::path(
            post,
            path = $path,
            tag = "devices",
            security(("api_key" = [])),
            params(
                ("id" = String, Path, description = "The device's id, `dev_` and hex."),
            ),
            request_body = $request,
            responses(
                (status = 200, description = $ok, body = DeviceView),
                (status = 404, description = "No such device, or not the caller's: the two are indistinguishable.", body = ErrorBody),
                (status = 409, description = $conflict, body = ErrorBody),
            )
        )]
        pub async fn $name(
            State(state): State<AppState>,
            actor: Actor,
            Path(id): Path<String>,
            body: Result<Json<$request>, JsonRejection>,
        ) -> Result<JsonText, ApiError> {
            let Json(req) = body?;
            applied_json(commands::$name(&state, &actor, &id, req).await?)
        }
    };
}

device_command! {
    /// `POST /v1/devices/{id}/lock`: lock by hand, with a message for the phone and, if wanted, a
    /// note for the financier's history.
    lock(LockRequest),
    "/v1/devices/{id}/lock",
    ok = "The device as it now stands.",
    conflict = "The device is released, which is final.",
}

device_command! {
    /// `POST /v1/devices/{id}/unlock`: lift manual locks, and with `provisional_hours` unlock a
    /// phone the schedule restricts, for that long.
    unlock(UnlockRequest),
    "/v1/devices/{id}/unlock",
    ok = "The device as it now stands.",
    conflict = "The device is released, or has no manual lock to lift and no `provisional_hours` was given.",
}

device_command! {
    /// `POST /v1/devices/{id}/reminder`: a message on the phone for a few days.
    reminder(ReminderRequest),
    "/v1/devices/{id}/reminder",
    ok = "The device as it now stands.",
    conflict = "The device is released, which is final.",
}

device_command! {
    /// `POST /v1/devices/{id}/release`: the claim ends after the cancel window.
    release(ReleaseRequest),
    "/v1/devices/{id}/release",
    ok = "The device; `release_final_at` says when the release becomes final.",
    conflict = "The device is released, or a release is already pending (the payment that paid the plan off schedules one, unless the policy's `release_at_payoff` is `by_hand`).",
}

/// `DELETE /v1/devices/{id}/release`: cancel a pending release within its window, whether the
/// financier asked for it or the payoff scheduled it.
#[utoipa::path(
    delete,
    path = "/v1/devices/{id}/release",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The device's id, `dev_` and hex."),
    ),
    responses(
        (status = 200, description = "The device as it now stands.", body = DeviceView),
        (status = 404, description = "No such device, or not the caller's: the two are indistinguishable.", body = ErrorBody),
        (status = 409, description = "The device is released, or no release is pending.", body = ErrorBody),
    )
)]
pub async fn cancel_release(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<JsonText, ApiError> {
    applied_json(commands::cancel_release(&state, &actor, &id).await?)
}

/// `POST /v1/devices/{id}/offline-unlock`: the response to the lock screen's challenge, and
/// a provisional unlock on the server for as long, so the next check-in does not lock again.
#[utoipa::path(
    post,
    path = "/v1/devices/{id}/offline-unlock",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The device's id, `dev_` and hex."),
    ),
    request_body = OfflineCodeRequest,
    responses(
        (status = 200, description = "The response to read to the borrower.", body = OfflineCode),
        (status = 404, description = "No such device, or not the caller's: the two are indistinguishable.", body = ErrorBody),
        (status = 409, description = "The device is released, or the phone has not said hello yet.", body = ErrorBody),
    )
)]
pub async fn offline_unlock(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<OfflineCodeRequest>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    let Json(req) = body?;
    applied_json(commands::offline_code(&state, &actor, &id, req).await?)
}

/// `PUT /v1/devices/{id}/policy`: a new lock policy. The device is decided again under it at
/// once, so a policy that makes overdue arrears lockable (or no longer lockable) changes the
/// state, and the phone's token, in the same transaction as the policy.
#[utoipa::path(
    put,
    path = "/v1/devices/{id}/policy",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The device's id, `dev_` and hex."),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional: 1 to 200 characters of the client's choosing. A retry with the same key and request gets the first answer (and no second audit record); the same key with another request is a 409."),
    ),
    request_body = PolicyChangeRequest,
    responses(
        (status = 200, description = "The device as decided under the new policy (or, for a retry, the first answer).", body = DeviceView),
        (status = 400, description = "The body is not JSON, or the Idempotency-Key is malformed.", body = ErrorBody),
        (status = 403, description = "The role may not do this: only a financier admin (on its own devices) or a platform admin changes a policy.", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's: the two are indistinguishable.", body = ErrorBody),
        (status = 409, description = "The device is released, which is final, or the key was used with a different request.", body = ErrorBody),
        (status = 422, description = "A field is refused: an unknown preset, custom settings that do not hold together, an empty reason; the message names it.", body = ErrorBody),
    )
)]
pub async fn change_policy(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    request: KeyedRequest,
) -> Result<JsonText, ApiError> {
    // Optional here, unlike on payments: setting the same policy twice leaves the device as
    // setting it once did; without a key, only the audit record is repeated.
    let key = request.key;
    let Json(req) = Json::<PolicyChangeRequest>::from_bytes(&request.body)?;
    applied_json(commands::change_policy(&state, &actor, &id, key, req).await?)
}

/// `GET /v1/status-codes/{code}`: which token a phone showing this code holds.
#[utoipa::path(
    get,
    path = "/v1/status-codes/{code}",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("code" = String, Path, description = "The 8-digit status code the phone shows."),
    ),
    responses(
        (status = 200, description = "The tokens with this code on the caller's devices, with each device's current decision.", body = Vec<StatusCodeView>),
        (status = 404, description = "No token of the caller's has this code.", body = ErrorBody),
        (status = 422, description = "The code is not 8 digits.", body = ErrorBody),
        (status = 429, description = "Too many look-ups with this API key (30 a minute after 20 at once); see Retry-After.", body = ErrorBody),
    )
)]
pub async fn status_code(
    State(state): State<AppState>,
    actor: Actor,
    Path(code): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    // Per key: a code is 8 digits, and support's key sees every device.
    if let Err(limited) = state.status_code_limit.check(actor.key_id.clone()) {
        return Ok(limited.respond("too many status-code look-ups with this API key"));
    }
    Ok(Json(reads::status_code_tokens(&state, &actor, &code).await?).into_response())
}
