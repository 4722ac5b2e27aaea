//! The appeal handlers: extract, look up, call the rules, write, serialize.

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use lien_core::Imei;
use lien_store::{
    AppealFilter, AppealRecord, AttachmentRecord, DeviceChange, DeviceRecord, DeviceSnapshot,
    StoreError,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::super::{JsonText, complete, json_text, mutate_device};
use super::form::{
    AppealForm, check_claim, check_upload, new_reference, plausible_reference, proof_fields,
    read_form,
};
use super::rules::{
    answer_mutation, appeal_terms, history_refusal, not_proven, open_mutation, progress,
    status_code_matches, superseded_cutoff_us,
};
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::{from_micros, micros};
use crate::domain::rfc3339;
use crate::error::{ApiError, ErrorBody};
use crate::wire::MoneyJson;

/// Finds the financed device an appeal or a page is about, from an IMEI or a lock-screen
/// status code. `field` names what the borrower typed, for the message.
pub async fn find_device(state: &AppState, query: &str) -> Result<DeviceRecord, ApiError> {
    let query: String = query.chars().filter(|c| !c.is_whitespace()).collect();
    if query.len() == 8 && query.bytes().all(|b| b.is_ascii_digit()) {
        // Only codes a phone may still be showing match: an old token's code would otherwise
        // keep matching for ever, and a large fleet's old codes fill the code space.
        let mut ids: Vec<String> = state
            .store
            .recent_tokens_by_status_code(&query, superseded_cutoff_us(state))
            .await?
            .into_iter()
            .map(|m| m.device_id)
            .collect();
        ids.sort();
        ids.dedup();
        return match ids.as_slice() {
            [id] => Ok(state.store.device(id).await?),
            [] => Err(ApiError::NotFound("status code")),
            _ => Err(ApiError::invalid(
                "status_code",
                "this code matches more than one phone; enter the IMEI instead",
            )),
        };
    }
    let imei = Imei::parse(&query).map_err(|e| {
        ApiError::invalid(
            "imei",
            format!("{e}; enter the 15-digit IMEI (dial *#06#) or the 8-digit status code from the lock screen"),
        )
    })?;
    match state.store.device_by_imei(imei.as_str()).await {
        Ok(device) => Ok(device),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("financed device with this IMEI")),
        Err(e) => Err(e.into()),
    }
}

/// The financed device whose phone shows `code`, found by `imei`: the appellant's proof of
/// holding the phone. The code must be the current token's or one superseded within
/// `status_code_grace_hours` (a phone shows its new code only after it has checked in), and is
/// compared with each in constant time. Anything else is [`not_proven`], except a phone whose
/// release the public IMEI check shows: that is a conflict, as nobody holds a claim to appeal.
async fn proven_device(
    state: &AppState,
    imei: &Imei,
    code: &str,
) -> Result<DeviceRecord, ApiError> {
    let released =
        || ApiError::Conflict("this phone is released: no financier holds a claim on it".into());
    let device = match state.store.device_by_imei(imei.as_str()).await {
        Ok(device) => device,
        Err(StoreError::NotFound) => {
            let now_us = micros(state.clock.now());
            return match state.store.last_release(imei.as_str()).await? {
                Some(at)
                    if now_us - at < super::super::public::RELEASE_SHOWN_DAYS * 86_400_000_000 =>
                {
                    Err(released())
                }
                _ => Err(not_proven()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    if device.released_us.is_some() {
        return Err(released());
    }
    let shown = state
        .store
        .recent_status_codes(&device.enrolled.id, superseded_cutoff_us(state))
        .await?;
    if status_code_matches(&shown, code) {
        Ok(device)
    } else {
        Err(not_proven())
    }
}

/// One appeal at a time, and none during the cool-down after a rejection (see
/// [`history_refusal`]). Appeals of a device follow one another (a second cannot open while
/// one is open), so its newest is the one that matters.
async fn check_appeal_history(
    state: &AppState,
    device: &DeviceRecord,
    now_us: i64,
) -> Result<(), ApiError> {
    let latest = state
        .store
        .list_appeals(&AppealFilter {
            device_id: Some(device.enrolled.id.clone()),
            limit: 1,
            ..AppealFilter::default()
        })
        .await?;
    let cooldown_us = i64::from(state.settings.appeal_cooldown_hours) * 3_600_000_000;
    history_refusal(latest.first(), now_us, cooldown_us)
}

/// An appeal just opened, and why a payment appeal will not unlock the phone at its deadline
/// if it will not.
#[derive(Debug, Clone)]
pub struct OpenedAppeal {
    /// The appeal as written.
    pub record: AppealRecord,
    /// For a payment appeal without a provisional unlock: why (see [`unlock_withheld`]).
    pub unlock_withheld: Option<String>,
}

/// Opens an appeal from a checked form: checks the holder's proof (IMEI and lock-screen status
/// code), that no appeal is open or cooling down after a rejection, and the claim against the
/// plan; stores the document, then writes the appeal, its overrides and the audit record in one
/// device change. If the change fails, the file goes.
///
/// Everything that can be checked without the device is checked first, so a refusal for a bad
/// field says nothing about the phone; what is about the phone (the history of its appeals, its
/// plan's currency) is told only once the proof holds.
pub async fn open_appeal(state: &AppState, form: AppealForm) -> Result<OpenedAppeal, ApiError> {
    let (imei, code) = proof_fields(&form)?;
    let now = state.clock.now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let claim = check_claim(&form, today)?;
    let max = state.settings.appeal_upload_max_bytes;
    let checked_file = match &form.file {
        Some(upload) => Some((upload, check_upload(upload, max)?)),
        None => None,
    };
    let device = proven_device(state, &imei, &code).await?;
    let now_us = micros(now);
    check_appeal_history(state, &device, now_us).await?;
    if let Some((_, currency)) = claim.amount
        && currency.code() != device.decision.currency
    {
        return Err(ApiError::invalid(
            "currency",
            format!(
                "this phone's plan is in {}; give the amount paid in {0}",
                device.decision.currency
            ),
        ));
    }
    let (response_us, unlock_us) = appeal_terms(
        &device.enrolled.policy_json,
        state.settings.appeal_response_hours,
        state.settings.appeal_unlock_hours,
    )?;
    let reference = new_reference()?;
    let deadline_us = now_us + response_us;

    // The document first, under a key of its own; the row that points at it comes after (see
    // `crate::attachments` for what a failure in between leaves).
    let mut stored_key = None;
    let attachment = match checked_file {
        Some((upload, (media_type, ext))) => {
            let key = format!("appeals/{reference}.{ext}");
            state
                .attachments
                .put(&key, &upload.bytes, media_type)
                .await
                .map_err(|e| {
                    ApiError::Internal(anyhow::Error::new(e).context("storing an upload"))
                })?;
            stored_key = Some(key.clone());
            Some(AttachmentRecord {
                path: key,
                media_type: media_type.to_string(),
                size: upload.bytes.len() as i64,
                sha256: Sha256::digest(&upload.bytes).to_vec(),
            })
        }
        None => None,
    };
    let record = AppealRecord {
        reference: reference.clone(),
        device_id: device.enrolled.id.clone(),
        financier_id: device.enrolled.financier_id.clone(),
        claim: claim.claim.to_string(),
        contact: claim.contact,
        statement: claim.statement,
        payment_reference: claim.payment_reference,
        paid_on: claim.paid_on.map(|d| d.to_string()),
        amount_minor: claim.amount.map(|a| a.0),
        currency: claim.amount.map(|a| a.1.code().to_string()),
        status: "open".into(),
        opened_us: now_us,
        deadline_us,
        // Decided with the device's inputs under its lock, in `write_open`.
        unlock_until_us: None,
        decided_us: None,
        decided_by: None,
        decision_reason: None,
        attachment,
    };
    let written = write_open(state, record, unlock_us, now).await;
    if written.is_err()
        && let Some(key) = stored_key
        && let Err(e) = state.attachments.delete(&key).await
    {
        // The document stays, unreachable: no row names it.
        tracing::warn!(error = %e, key, "an upload whose appeal was not written was not removed");
    }
    match written {
        // Another appeal opened between the check and the write: name it, as the check would.
        Err(ApiError::Conflict(message)) => {
            check_appeal_history(state, &device, now_us).await?;
            Err(ApiError::Conflict(message))
        }
        other => other,
    }
}

/// The actor the audit log records for what the borrower does without an account.
const BORROWER: &str = "borrower";

async fn write_open(
    state: &AppState,
    record: AppealRecord,
    unlock_us: i64,
    now: Timestamp,
) -> Result<OpenedAppeal, ApiError> {
    let closure_state = state.clone();
    let device_id = record.device_id.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let result = state
        .store
        .update_device(
            &device_id,
            Box::new(move |snapshot: &DeviceSnapshot| {
                let run = || -> Result<DeviceChange, ApiError> {
                    let (mutation, opened) = open_mutation(snapshot, record, unlock_us, now)?;
                    let (change, _, before, after) =
                        complete(&closure_state, snapshot, BORROWER, mutation, now)?;
                    let _ = tx.send((before, after, opened));
                    Ok(change)
                };
                run().map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }),
        )
        .await;
    match result {
        Ok(_) => {
            let (before, after, opened) = rx.recv().map_err(|_| {
                ApiError::Internal(anyhow::anyhow!("an appeal was written without its record"))
            })?;
            state.metrics.state_changed(&before, &after);
            state.scheduler_wake.notify_one();
            Ok(opened)
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound("device")),
        Err(e) => Err(e.into()),
    }
}

/// An appeal as the borrower sees it, by its reference: nothing the borrower did not send,
/// and no document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppealPublicView {
    /// The reference to follow it by.
    pub reference: String,
    /// `paid`, `owner` or `wrong_lock`.
    pub claim: String,
    /// `open`, `accepted` or `rejected`.
    pub status: String,
    /// Where it stands, in words.
    pub progress: String,
    /// When it was opened (RFC 3339).
    pub opened_at: String,
    /// When the financier must answer.
    pub deadline: String,
    /// For a payment appeal: until when an unanswered appeal unlocks the phone.
    pub provisional_unlock_until: Option<String>,
    /// When it was answered.
    pub decided_at: Option<String>,
    /// The financier's reason.
    pub decision_reason: Option<String>,
    /// Who decides: the financier's public name.
    pub financier_name: String,
    /// How to reach the financier.
    pub financier_contact: String,
}

/// A document attached to an appeal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentView {
    /// `application/pdf`, `image/jpeg` or `image/png`, recognised from the content.
    pub media_type: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Where the financier and support download it.
    pub url: String,
}

/// An appeal as the financier and support see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppealView {
    /// The reference.
    pub reference: String,
    /// The device.
    pub device_id: String,
    /// `paid`, `owner` or `wrong_lock`.
    pub claim: String,
    /// How to reach the borrower.
    pub contact: String,
    /// The borrower's words.
    pub statement: String,
    /// For `paid`: the payment's reference.
    pub payment_reference: Option<String>,
    /// For `paid`: the date paid.
    pub paid_on: Option<String>,
    /// For `paid`: the amount claimed.
    pub amount: Option<MoneyJson>,
    /// `open`, `accepted` or `rejected`.
    pub status: String,
    /// Where it stands.
    pub progress: String,
    /// Opened at (RFC 3339).
    pub opened_at: String,
    /// The response deadline.
    pub deadline: String,
    /// For `paid`: the end of the provisional unlock an unanswered appeal grants.
    pub provisional_unlock_until: Option<String>,
    /// Answered at.
    pub decided_at: Option<String>,
    /// Answered by (API key id).
    pub decided_by: Option<String>,
    /// The answer's reason.
    pub decision_reason: Option<String>,
    /// The uploaded document.
    pub attachment: Option<AttachmentView>,
}

/// The financier's view of an appeal.
pub fn appeal_view(a: &AppealRecord, now_us: i64) -> AppealView {
    let at = |us: i64| rfc3339(from_micros(us));
    AppealView {
        reference: a.reference.clone(),
        device_id: a.device_id.clone(),
        claim: a.claim.clone(),
        contact: a.contact.clone(),
        statement: a.statement.clone(),
        payment_reference: a.payment_reference.clone(),
        paid_on: a.paid_on.clone(),
        amount: a
            .amount_minor
            .zip(a.currency.clone())
            .map(|(minor, currency)| MoneyJson { minor, currency }),
        status: a.status.clone(),
        progress: progress(a, now_us),
        opened_at: at(a.opened_us),
        deadline: at(a.deadline_us),
        provisional_unlock_until: a.unlock_until_us.map(at),
        decided_at: a.decided_us.map(at),
        decided_by: a.decided_by.clone(),
        decision_reason: a.decision_reason.clone(),
        attachment: a.attachment.as_ref().map(|f| AttachmentView {
            media_type: f.media_type.clone(),
            size: f.size,
            sha256: hex::encode(&f.sha256),
            url: format!("/v1/appeals/{}/attachment", a.reference),
        }),
    }
}

/// The borrower's view of an appeal.
pub async fn public_view(state: &AppState, reference: &str) -> Result<AppealPublicView, ApiError> {
    let reference = reference.trim().to_ascii_uppercase();
    if !plausible_reference(&reference) {
        return Err(ApiError::invalid(
            "reference",
            "an appeal reference looks like AP-XXXX-XXXX-XXXX-XXXX-XXXX",
        ));
    }
    let a = match state.store.appeal(&reference).await {
        Ok(a) => a,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("appeal")),
        Err(e) => return Err(e.into()),
    };
    let financier = state.store.financier(&a.financier_id).await?;
    let now_us = micros(state.clock.now());
    let at = |us: i64| rfc3339(from_micros(us));
    Ok(AppealPublicView {
        reference: a.reference.clone(),
        claim: a.claim.clone(),
        status: a.status.clone(),
        progress: progress(&a, now_us),
        opened_at: at(a.opened_us),
        deadline: at(a.deadline_us),
        provisional_unlock_until: a.unlock_until_us.map(at),
        decided_at: a.decided_us.map(at),
        decision_reason: a.decision_reason.clone(),
        financier_name: financier.name,
        financier_contact: financier.contact,
    })
}

/// The form fields of `POST /v1/public/appeals` (multipart/form-data), for the document.
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)]
pub struct AppealFormDoc {
    /// The phone's IMEI, as the lock screen shows it (or dial *#06#).
    imei: String,
    /// The 8-digit status code the phone's lock screen shows now: the proof that the appellant
    /// holds the phone. The code of the phone's current status token matches, and for
    /// `status_code_grace_hours` (24 by default) after a new token, the previous ones.
    status_code: String,
    /// `paid`, `owner` or `wrong_lock`.
    claim: String,
    /// Where the financier can reach the borrower.
    contact: String,
    /// The borrower's words (required for `wrong_lock`).
    statement: Option<String>,
    /// `paid`: the payment's reference.
    payment_reference: Option<String>,
    /// `paid`: the date paid, YYYY-MM-DD.
    paid_on: Option<String>,
    /// `paid`: the amount, e.g. `1000.00`.
    amount: Option<String>,
    /// `paid`: the currency, e.g. `KES`; it must be the currency of the phone's plan.
    currency: Option<String>,
    /// `paid`: the receipt (a whole PDF, JPEG or PNG file of at least 1 KiB and at most 5 MiB by
    /// default).
    #[schema(value_type = Option<String>, format = Binary)]
    receipt: Option<Vec<u8>>,
    /// `owner`: the proof of purchase.
    #[schema(value_type = Option<String>, format = Binary)]
    proof_of_purchase: Option<Vec<u8>>,
    /// `wrong_lock`: any supporting document.
    #[schema(value_type = Option<String>, format = Binary)]
    document: Option<Vec<u8>>,
}

/// What the borrower gets back: the reference to follow the appeal by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppealOpened {
    /// Keep it: it is the only way to follow the appeal.
    pub reference: String,
    /// Where it stands.
    pub appeal: AppealPublicView,
    /// For a payment appeal that will not unlock the phone if its deadline passes unanswered:
    /// why (nothing is overdue, the amount claimed does not cover what is, or the payment is
    /// already recorded). The appeal is open all the same, and nothing gets worse meanwhile.
    pub provisional_unlock_withheld: Option<String>,
}

/// Opens an appeal, without an account.
#[utoipa::path(
    post,
    path = "/v1/public/appeals",
    tag = "public",
    request_body(content = AppealFormDoc, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The appeal is open; the dispute freeze is in force.", body = AppealOpened),
        (status = 400, description = "The form could not be read.", body = ErrorBody),
        (status = 404, description = "No phone with this IMEI shows this status code: the one answer whatever did not match (an IMEI no financier claims, a phone not set up yet, a wrong or superseded code).", body = ErrorBody),
        (status = 409, description = "The phone is released; or, to an appellant whose IMEI and status code match, an appeal about this phone is already open (the message names its reference) or the last one was rejected less than `appeal_cooldown_hours` ago (the message says from when a new one can be opened).", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong (the currency must be the plan's), or the document is empty, too small, too big, or not a whole PDF, JPEG or PNG; the message names the field.", body = ErrorBody),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = ErrorBody),
    )
)]
pub async fn open(
    State(state): State<AppState>,
    limited: super::super::public::PublicClient,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    if let Err(limited) = limited.check(&state) {
        return Ok(limited.into_response());
    }
    let form = read_form(multipart, state.settings.appeal_upload_max_bytes).await?;
    let opened = open_appeal(&state, form).await?;
    let view = public_view(&state, &opened.record.reference).await?;
    Ok(json_text(
        StatusCode::CREATED,
        &AppealOpened {
            reference: opened.record.reference,
            appeal: view,
            provisional_unlock_withheld: opened.unlock_withheld,
        },
    )?
    .into_response())
}

/// Follows an appeal by its reference.
#[utoipa::path(
    get,
    path = "/v1/public/appeals/{reference}",
    tag = "public",
    params(("reference" = String, Path, description = "The reference given when the appeal was opened.")),
    responses(
        (status = 200, description = "Status, deadline, decision and reason.", body = AppealPublicView),
        (status = 404, description = "No appeal has this reference.", body = ErrorBody),
        (status = 422, description = "This is not an appeal reference.", body = ErrorBody),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = ErrorBody),
    )
)]
pub async fn follow(
    State(state): State<AppState>,
    limited: super::super::public::PublicClient,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    if let Err(limited) = limited.check(&state) {
        return Ok(limited.into_response());
    }
    Ok(Json(public_view(&state, &reference).await?).into_response())
}

/// Filters of the appeal list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppealQuery {
    /// `open`, `accepted` or `rejected`.
    pub status: Option<String>,
    /// Only this device's appeals.
    pub device_id: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// The caller's appeals (support and platform admins: all), newest first.
#[utoipa::path(
    get,
    path = "/v1/appeals",
    tag = "appeals",
    security(("api_key" = [])),
    params(AppealQuery),
    responses(
        (status = 200, description = "The appeals.", body = Vec<AppealView>),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not do this.", body = ErrorBody),
        (status = 422, description = "A filter is wrong.", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<AppealQuery>,
) -> Result<Json<Vec<AppealView>>, ApiError> {
    actor.require(Action::Read)?;
    if let Some(s) = &query.status
        && !["open", "accepted", "rejected"].contains(&s.as_str())
    {
        return Err(ApiError::invalid(
            "status",
            "one of open, accepted, rejected",
        ));
    }
    let filter = AppealFilter {
        financier_id: actor.financier_id.clone(),
        status: query.status,
        device_id: query.device_id,
        limit: query.limit.unwrap_or(100).clamp(1, 1000),
    };
    let now_us = micros(state.clock.now());
    let appeals = state.store.list_appeals(&filter).await?;
    Ok(Json(
        appeals.iter().map(|a| appeal_view(a, now_us)).collect(),
    ))
}

/// An appeal the caller may see; another financier's is "not found" like a missing one.
async fn visible_appeal(
    state: &AppState,
    actor: &Actor,
    reference: &str,
) -> Result<AppealRecord, ApiError> {
    match state.store.appeal(reference).await {
        Ok(a) if actor.sees_financier(&a.financier_id) => Ok(a),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("appeal")),
        Err(e) => Err(e.into()),
    }
}

/// One appeal.
#[utoipa::path(
    get,
    path = "/v1/appeals/{reference}",
    tag = "appeals",
    security(("api_key" = [])),
    params(("reference" = String, Path, description = "The appeal's reference.")),
    responses(
        (status = 200, description = "The appeal.", body = AppealView),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not do this.", body = ErrorBody),
        (status = 404, description = "No such appeal among the caller's.", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    actor: Actor,
    Path(reference): Path<String>,
) -> Result<Json<AppealView>, ApiError> {
    actor.require(Action::Read)?;
    let a = visible_appeal(&state, &actor, &reference).await?;
    Ok(Json(appeal_view(&a, micros(state.clock.now()))))
}

/// The document uploaded with an appeal, to the device's financier and support only.
#[utoipa::path(
    get,
    path = "/v1/appeals/{reference}/attachment",
    tag = "appeals",
    security(("api_key" = [])),
    params(("reference" = String, Path, description = "The appeal's reference.")),
    responses(
        (status = 200, description = "The document, as uploaded.", content_type = "application/octet-stream"),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not do this.", body = ErrorBody),
        (status = 404, description = "No such appeal among the caller's, or it has no document.", body = ErrorBody),
        (status = 503, description = "Every connection the server takes (`max_connections`) is open; or this server does not hold the document: another server on the same database received it and keeps it in its own data directory (`attachment_store = \"local\"`). Servers that share a database need `attachment_store = \"database\"`.", body = ErrorBody),
    )
)]
pub async fn attachment(
    State(state): State<AppState>,
    actor: Actor,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    actor.require(Action::Read)?;
    let a = visible_appeal(&state, &actor, &reference).await?;
    let file = a.attachment.ok_or(ApiError::NotFound("attachment"))?;
    let bytes = match state.attachments.get(&file.path).await {
        Ok(Some((bytes, _))) => bytes,
        Ok(None) => {
            tracing::warn!(
                key = file.path,
                "an appeal's document is not in this server's attachment store"
            );
            return Err(ApiError::Unavailable(
                "this server does not hold the appeal's document: it was received by another \
                 server that keeps documents locally; servers sharing a database need \
                 attachment_store = \"database\""
                    .into(),
            ));
        }
        Err(e) => {
            return Err(ApiError::Internal(
                anyhow::Error::new(e).context("reading an upload"),
            ));
        }
    };
    let ext = file.path.rsplit('.').next().unwrap_or("bin");
    let mut headers = HeaderMap::new();
    let value = |s: &str| {
        s.parse()
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("bad header value")))
    };
    headers.insert(header::CONTENT_TYPE, value(&file.media_type)?);
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(&format!("attachment; filename=\"{}.{ext}\"", a.reference))?,
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, value("nosniff")?);
    headers.insert(header::CACHE_CONTROL, value("private, no-store")?);
    Ok((headers, Body::from(bytes)).into_response())
}

/// The financier's answer to an appeal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealDecision {
    /// `accept` or `reject`.
    pub decision: String,
    /// Why; the borrower sees it. Required to reject.
    #[serde(default)]
    pub reason: String,
    /// Accepting a payment appeal records the claimed payment (reference, amount, date) unless
    /// this is false or a payment with that reference is already recorded.
    #[serde(default)]
    pub record_payment: Option<bool>,
}

/// Answers an appeal: ends its dispute freeze and provisional unlock; accepting a payment
/// appeal records the payment, in the same change.
#[utoipa::path(
    post,
    path = "/v1/appeals/{reference}/decision",
    tag = "appeals",
    security(("api_key" = [])),
    params(("reference" = String, Path, description = "The appeal's reference.")),
    request_body = AppealDecision,
    responses(
        (status = 200, description = "The answered appeal.", body = AppealView),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not do this.", body = ErrorBody),
        (status = 404, description = "No such appeal among the caller's.", body = ErrorBody),
        (status = 409, description = "The appeal is already answered, or the payment is already recorded differently.", body = ErrorBody),
        (status = 422, description = "A field is wrong; the message names it.", body = ErrorBody),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    actor: Actor,
    Path(reference): Path<String>,
    body: Result<Json<AppealDecision>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<AppealView>, ApiError> {
    actor.require(Action::AnswerAppeal)?;
    let Json(answer) = body?;
    let accept = match answer.decision.as_str() {
        "accept" => true,
        "reject" => false,
        other => {
            return Err(ApiError::invalid(
                "decision",
                format!("{other:?} is neither \"accept\" nor \"reject\""),
            ));
        }
    };
    let reason = answer.reason.trim().to_string();
    if !accept && reason.is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "say why the appeal is rejected; the borrower sees it",
        ));
    }
    if reason.chars().count() > 500 {
        return Err(ApiError::invalid("reason", "at most 500 characters"));
    }
    let appeal = visible_appeal(&state, &actor, &reference).await?;
    if appeal.status != "open" {
        return Err(ApiError::Conflict(format!(
            "appeal {} is already {}",
            appeal.reference, appeal.status
        )));
    }
    let record_payment = accept && appeal.claim == "paid" && answer.record_payment.unwrap_or(true);
    let decided_by = actor.key_id.clone();
    let a = appeal.clone();
    let _: JsonText = mutate_device(
        &state,
        &actor,
        &appeal.device_id,
        None,
        move |snapshot, now| {
            answer_mutation(
                snapshot,
                now,
                &a,
                accept,
                reason,
                record_payment,
                decided_by,
            )
        },
    )
    .await?;
    let answered = state.store.appeal(&appeal.reference).await?;
    Ok(Json(appeal_view(&answered, micros(state.clock.now()))))
}
