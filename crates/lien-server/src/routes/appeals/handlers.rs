//! The appeal handlers: extract, call the appeal commands (`crate::commands::appeals`) or
//! read, and serialize.

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lien_store::AppealRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::super::json_text;
use super::form::{AppealForm, checked_request, read_form};
use crate::app::AppState;
use crate::auth::Actor;
use crate::clock::{from_micros, micros};
use crate::commands::appeals::rules::progress;
use crate::commands::appeals::{
    self, Answer, AppealPublicView, AppealStatus, ClaimKind, OpenedAppeal, Verdict, public_view,
    visible_appeal,
};
use crate::domain::rfc3339;
use crate::error::{ApiError, ErrorBody};
use crate::wire::MoneyJson;

/// Opens an appeal from a form as read: checks it ([`checked_request`]) and calls the command.
/// The JSON API and the HTML page both open appeals through here.
pub async fn open_appeal(state: &AppState, form: AppealForm) -> Result<OpenedAppeal, ApiError> {
    let today = state.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let request = checked_request(form, today, state.settings.appeal_upload_max_bytes)?;
    appeals::open_appeal(state, request).await
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
    /// What is claimed.
    pub claim: ClaimKind,
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
    /// Where it stands.
    pub status: AppealStatus,
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
pub fn appeal_view(a: &AppealRecord, now_us: i64) -> Result<AppealView, ApiError> {
    let at = |us: i64| rfc3339(from_micros(us));
    Ok(AppealView {
        reference: a.reference.clone(),
        device_id: a.device_id.clone(),
        claim: ClaimKind::stored(&a.claim)?,
        contact: a.contact.clone(),
        statement: a.statement.clone(),
        payment_reference: a.payment_reference.clone(),
        paid_on: a.paid_on.clone(),
        amount: a
            .amount_minor
            .zip(a.currency.clone())
            .map(|(minor, currency)| MoneyJson { minor, currency }),
        status: AppealStatus::stored(&a.status)?,
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
    /// What is claimed.
    claim: ClaimKind,
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
        (status = 429, description = "Too many requests from this address, or too many status codes tried for this phone from anywhere (10 at once, then one a minute); see Retry-After.", body = ErrorBody),
        (status = 503, description = "The appeal forms being uploaded to this server at once hold its whole budget (128 MiB), or every connection the server takes (`max_connections`) is open; try again shortly.", body = ErrorBody),
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
    let form = read_form(&state, multipart).await?;
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
        (status = 422, description = "A filter is wrong.", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<AppealQuery>,
) -> Result<Json<Vec<AppealView>>, ApiError> {
    let status = match &query.status {
        Some(s) => Some(
            AppealStatus::parse(s)
                .ok_or_else(|| ApiError::invalid("status", "one of open, accepted, rejected"))?,
        ),
        None => None,
    };
    let now_us = micros(state.clock.now());
    let appeals = appeals::list_appeals(
        &state,
        &actor,
        status,
        query.device_id,
        query.limit.unwrap_or(100),
    )
    .await?;
    Ok(Json(
        appeals
            .iter()
            .map(|a| appeal_view(a, now_us))
            .collect::<Result<_, _>>()?,
    ))
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
        (status = 404, description = "No such appeal among the caller's.", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    actor: Actor,
    Path(reference): Path<String>,
) -> Result<Json<AppealView>, ApiError> {
    let a = visible_appeal(&state, &actor, &reference).await?;
    Ok(Json(appeal_view(&a, micros(state.clock.now()))?))
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
        (status = 404, description = "No such appeal among the caller's, or it has no document.", body = ErrorBody),
        (status = 503, description = "Every connection the server takes (`max_connections`) is open; or this server does not hold the document: another server on the same database received it and keeps it in its own data directory (`attachment_store = \"local\"`). Servers that share a database need `attachment_store = \"database\"`.", body = ErrorBody),
    )
)]
pub async fn attachment(
    State(state): State<AppState>,
    actor: Actor,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    let (a, file, bytes) = appeals::attachment(&state, &actor, &reference).await?;
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

/// The answer to an appeal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealDecision {
    /// Accept or reject.
    pub decision: Verdict,
    /// Why; the borrower sees it. Required to reject.
    #[serde(default)]
    pub reason: String,
    /// Accepting a payment appeal records the claimed payment (reference, amount, date) unless
    /// this is false or a payment with that reference is already recorded.
    #[serde(default)]
    pub record_payment: Option<bool>,
}

/// Answers an appeal (a financier's admin or agent, or the platform's support): ends its
/// dispute freeze and provisional unlock; accepting a payment appeal records the payment, in
/// the same change.
#[utoipa::path(
    post,
    path = "/v1/appeals/{reference}/decision",
    tag = "appeals",
    security(("api_key" = [])),
    params(("reference" = String, Path, description = "The appeal's reference.")),
    request_body = AppealDecision,
    responses(
        (status = 200, description = "The answered appeal.", body = AppealView),
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
    let Json(answer) = body?;
    let answer = Answer {
        verdict: answer.decision,
        reason: answer.reason,
        record_payment: answer.record_payment,
    };
    let answered = appeals::answer_appeal(&state, &actor, &reference, answer).await?;
    Ok(Json(appeal_view(&answered, micros(state.clock.now()))?))
}
