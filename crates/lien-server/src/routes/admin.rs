//! Financiers and API keys.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lien_store::{ApiKeyRecord, AuditEntry, Financier, StoreError};

use super::{JsonText, json_text};
use crate::app::AppState;
use crate::auth::{Action, Actor, Role, hash_key, key_id, new_api_key};
use crate::clock::micros;
use crate::error::{ApiError, ErrorBody};
use crate::wire::{ApiKeyCreated, FinancierView, NewApiKey, NewFinancier};

fn view(f: Financier) -> FinancierView {
    FinancierView {
        id: f.id,
        name: f.name,
        contact: f.contact,
        payment_link: f.payment_link,
    }
}

/// A non-empty text of at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_string())
}

/// A payment link as the borrower's pages will show it: an absolute `https` URL with a host,
/// at most 200 characters. Anything else (`javascript:`, `data:`, plain `http`) is refused.
pub fn payment_link(link: &str) -> Result<String, ApiError> {
    let link = required_text("payment_link", link, 200)?;
    let parsed = url::Url::parse(&link)
        .map_err(|e| ApiError::invalid("payment_link", format!("is not a URL ({e})")))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            "payment_link",
            "must be an https:// address",
        ));
    }
    Ok(parsed.to_string())
}

/// A new id: `prefix_` and 16 hex digits of randomness.
pub fn new_id(prefix: &str) -> Result<String, ApiError> {
    let bytes = crate::secrets::random_bytes().map_err(ApiError::Internal)?;
    Ok(format!("{prefix}_{}", hex::encode(&bytes[..8])))
}

/// `POST /v1/financiers`: platform admins create financiers.
#[utoipa::path(
    post,
    path = "/v1/financiers",
    tag = "financiers",
    security(("api_key" = [])),
    request_body = NewFinancier,
    responses(
        (status = 201, description = "The financier was created.", body = FinancierView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "Only platform admins create financiers.", body = ErrorBody),
        (status = 422, description = "A field is refused; the message names it.", body = ErrorBody),
    )
)]
pub async fn create_financier(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<NewFinancier>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    actor.require(Action::ManageFinanciers)?;
    let Json(body) = body?;
    let now = state.clock.now();
    let financier = Financier {
        id: new_id("fin")?,
        name: required_text("name", &body.name, 80)?,
        contact: required_text("contact", &body.contact, 120)?,
        payment_link: body.payment_link.as_deref().map(payment_link).transpose()?,
        created_us: micros(now),
    };
    let audit = AuditEntry {
        at_us: micros(now),
        actor: actor.key_id.clone(),
        action: "financier_created".into(),
        reason: format!("financier {} created", financier.id),
        before_json: "null".into(),
        after_json: serde_json::to_string(&view(financier.clone()))
            .map_err(|e| ApiError::Internal(e.into()))?,
    };
    state.store.create_financier(&financier, &audit).await?;
    json_text(StatusCode::CREATED, &view(financier))
}

/// `GET /v1/financiers`.
#[utoipa::path(
    get,
    path = "/v1/financiers",
    tag = "financiers",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The financiers the caller may see: all of them for the platform, its own for a financier.", body = Vec<FinancierView>),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not read.", body = ErrorBody),
    )
)]
pub async fn list_financiers(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<FinancierView>>, ApiError> {
    actor.require(Action::Read)?;
    let all = state.store.financiers().await?;
    Ok(Json(
        all.into_iter()
            .filter(|f| actor.sees_financier(&f.id))
            .map(view)
            .collect(),
    ))
}

/// `POST /v1/financiers/{id}/api-keys`: a key for one of the financier's people.
#[utoipa::path(
    post,
    path = "/v1/financiers/{id}/api-keys",
    tag = "financiers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The financier's id, `fin_` and hex.")),
    request_body = NewApiKey,
    responses(
        (status = 201, description = "The key, shown this once.", body = ApiKeyCreated),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not create keys.", body = ErrorBody),
        (status = 404, description = "No such financier, or not the caller's.", body = ErrorBody),
        (status = 422, description = "A field is refused, e.g. a role that is not a financier's.", body = ErrorBody),
    )
)]
pub async fn create_api_key(
    State(state): State<AppState>,
    actor: Actor,
    Path(financier_id): Path<String>,
    body: Result<Json<NewApiKey>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    actor.require(Action::ManageKeys)?;
    if !actor.sees_financier(&financier_id) {
        return Err(ApiError::NotFound("financier"));
    }
    let Json(body) = body?;
    if !body.role.is_financier_role() {
        return Err(ApiError::invalid(
            "role",
            "a financier's key is financier-admin or financier-agent",
        ));
    }
    match state.store.financier(&financier_id).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("financier")),
        Err(err) => return Err(err.into()),
    }
    let label = required_text("label", &body.label, 80)?;
    let created = issue_key(&state, &actor.key_id, body.role, Some(financier_id), label).await?;
    json_text(StatusCode::CREATED, &created)
}

/// `POST /v1/api-keys`: a platform-wide key (support or another platform admin). Such a key
/// sees every financier, so only a platform admin makes one; a financier's key has its own
/// route, which ties it to the financier.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "financiers",
    security(("api_key" = [])),
    request_body = NewApiKey,
    responses(
        (status = 201, description = "The key, shown this once.", body = ApiKeyCreated),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "Only platform admins create platform keys.", body = ErrorBody),
        (status = 422, description = "A field is refused, e.g. a financier's role, which belongs on `/v1/financiers/{id}/api-keys`.", body = ErrorBody),
    )
)]
pub async fn create_platform_key(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<NewApiKey>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    actor.require(Action::ManagePlatformKeys)?;
    let Json(body) = body?;
    if body.role.is_financier_role() {
        return Err(ApiError::invalid(
            "role",
            "a platform key is support or platform-admin; create a financier's key with \
             POST /v1/financiers/{id}/api-keys",
        ));
    }
    let label = required_text("label", &body.label, 80)?;
    let created = issue_key(&state, &actor.key_id, body.role, None, label).await?;
    json_text(StatusCode::CREATED, &created)
}

/// Creates a key and stores its hash, audited in the financier's (or the platform's) chain.
pub async fn issue_key(
    state: &AppState,
    actor: &str,
    role: Role,
    financier_id: Option<String>,
    label: String,
) -> Result<ApiKeyCreated, ApiError> {
    let key = new_api_key().map_err(ApiError::Internal)?;
    let key_hash = hash_key(&key);
    let now = micros(state.clock.now());
    let record = ApiKeyRecord {
        id: key_id(&key_hash),
        key_hash,
        role: role.name().to_string(),
        financier_id: financier_id.clone(),
        label: label.clone(),
        created_us: now,
    };
    let chain = financier_id
        .as_ref()
        .map_or_else(|| "platform".to_string(), |f| format!("financier:{f}"));
    let audit = AuditEntry {
        at_us: now,
        actor: actor.to_string(),
        action: "api_key_created".into(),
        reason: label,
        before_json: "null".into(),
        after_json: serde_json::json!({"key_id": record.id, "role": role.name()}).to_string(),
    };
    state.store.create_api_key(&record, &chain, &audit).await?;
    Ok(ApiKeyCreated {
        id: record.id,
        key,
        role,
        financier_id,
    })
}
