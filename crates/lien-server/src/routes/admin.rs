//! Financiers and API keys.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{JsonText, json_text};
use crate::api_keys;
use crate::app::AppState;
use crate::auth::{Actor, Role};
use crate::commands::financiers;
use crate::commands::keys;
use crate::error::{ApiError, ErrorBody};
use crate::wire::{ApiKeyCreated, ApiKeyView, FinancierView, NewApiKey, NewFinancier};

/// `POST /v1/financiers`: platform admins create financiers.
#[utoipa::path(
    post,
    path = "/v1/financiers",
    tag = "financiers",
    security(("api_key" = [])),
    request_body = NewFinancier,
    responses(
        (status = 201, description = "The financier was created.", body = FinancierView),
        (status = 403, description = "Only platform admins create financiers.", body = ErrorBody),
    )
)]
pub async fn create_financier(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<NewFinancier>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    let Json(body) = body?;
    json_text(
        StatusCode::CREATED,
        &financiers::create_new(&state, &actor, &body).await?,
    )
}

/// `GET /v1/financiers`.
#[utoipa::path(
    get,
    path = "/v1/financiers",
    tag = "financiers",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The financiers the caller may see: all of them for the platform, its own for a financier.", body = Vec<FinancierView>),
        (status = 403, description = "The role may not read.", body = ErrorBody),
    )
)]
pub async fn list_financiers(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<FinancierView>>, ApiError> {
    Ok(Json(financiers::visible(&state, &actor).await?))
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
        (status = 403, description = "The role may not create keys.", body = ErrorBody),
        (status = 404, description = "No such financier, or not the caller's.", body = ErrorBody),
        (status = 422, description = "A field is refused, e.g. a role that is not a financier's, or an `expires_at` in the past or more than 5 years ahead.", body = ErrorBody),
    )
)]
pub async fn create_api_key(
    State(state): State<AppState>,
    actor: Actor,
    Path(financier_id): Path<String>,
    body: Result<Json<NewApiKey>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    let Json(body) = body?;
    let created = keys::issue(
        &state,
        &actor,
        Some(financier_id),
        body.role,
        &body.label,
        body.expires_at.as_deref(),
    )
    .await?;
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
        (status = 403, description = "Only platform admins create platform keys.", body = ErrorBody),
        (status = 422, description = "A field is refused, e.g. a financier's role, which belongs on `/v1/financiers/{id}/api-keys`, or an `expires_at` in the past or more than 5 years ahead.", body = ErrorBody),
    )
)]
pub async fn create_platform_key(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<NewApiKey>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    let Json(body) = body?;
    let created = keys::issue(
        &state,
        &actor,
        None,
        body.role,
        &body.label,
        body.expires_at.as_deref(),
    )
    .await?;
    json_text(StatusCode::CREATED, &created)
}

/// Creates a key that does not expire and stores its hash, audited in the financier's (or
/// the platform's) chain.
pub async fn issue_key(
    state: &AppState,
    actor: &str,
    role: Role,
    financier_id: Option<String>,
    label: String,
) -> Result<ApiKeyCreated, ApiError> {
    api_keys::issue(
        state.store.as_ref(),
        state.clock.now(),
        actor,
        role,
        financier_id,
        label,
        None,
    )
    .await
}

/// Whose keys a list shows.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyQuery {
    /// A financier's id: that financier's keys (a platform admin may name any financier; a
    /// financier's admin only its own, which is also what it gets without this). Without it a
    /// platform admin gets the platform's own keys.
    pub financier_id: Option<String>,
}

/// `GET /v1/api-keys`: the keys the caller manages.
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "financiers",
    security(("api_key" = [])),
    params(KeyQuery),
    responses(
        (status = 200, description = "The keys, oldest first, revoked and expired ones included; never the keys themselves.", body = Vec<ApiKeyView>),
        (status = 403, description = "The role may not manage keys.", body = ErrorBody),
        (status = 404, description = "No such financier, or not the caller's.", body = ErrorBody),
    )
)]
pub async fn list_keys(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let financier = query.financier_id.or_else(|| actor.financier_id.clone());
    keys_of(&state, &actor, financier).await
}

/// `GET /v1/financiers/{id}/api-keys`: a financier's keys.
#[utoipa::path(
    get,
    path = "/v1/financiers/{id}/api-keys",
    tag = "financiers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The financier's id, `fin_` and hex.")),
    responses(
        (status = 200, description = "The financier's keys, oldest first, revoked and expired ones included; never the keys themselves.", body = Vec<ApiKeyView>),
        (status = 403, description = "The role may not manage keys.", body = ErrorBody),
        (status = 404, description = "No such financier, or not the caller's.", body = ErrorBody),
    )
)]
pub async fn list_financier_keys(
    State(state): State<AppState>,
    actor: Actor,
    Path(financier_id): Path<String>,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    keys_of(&state, &actor, Some(financier_id)).await
}

/// The keys of `financier_id`, or the platform's for `None`, if the caller manages them.
async fn keys_of(
    state: &AppState,
    actor: &Actor,
    financier_id: Option<String>,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    Ok(Json(keys::list(state, actor, financier_id).await?))
}

/// `POST /v1/api-keys/{id}/revoke`: the key stops working at once, on every server.
#[utoipa::path(
    post,
    path = "/v1/api-keys/{id}/revoke",
    tag = "financiers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The key's public id, `key_` and hex, as listed.")),
    responses(
        (status = 200, description = "The key, revoked (revoking it again changes nothing).", body = ApiKeyView),
        (status = 403, description = "The role may not manage keys.", body = ErrorBody),
        (status = 404, description = "No such key, or not one the caller manages.", body = ErrorBody),
        (status = 409, description = "It is the last active platform admin key: create another one first (or use `lien admin-key create`).", body = ErrorBody),
    )
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    Ok(Json(keys::revoke(&state, &actor, &id).await?))
}

/// `PUT /v1/financiers/{id}`: the financier's public name, contact and payment link.
#[utoipa::path(
    put,
    path = "/v1/financiers/{id}",
    tag = "financiers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The financier's id, `fin_` and hex.")),
    request_body = NewFinancier,
    responses(
        (status = 200, description = "The financier as changed; phones show it with their next token.", body = FinancierView),
        (status = 403, description = "The role may not change it: its own admins and platform admins do.", body = ErrorBody),
        (status = 404, description = "No such financier, or not the caller's.", body = ErrorBody),
        (status = 422, description = "A field is refused; the message names it.", body = ErrorBody),
    )
)]
pub async fn update_financier(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<NewFinancier>, JsonRejection>,
) -> Result<Json<FinancierView>, ApiError> {
    let Json(body) = body?;
    Ok(Json(
        financiers::update_profile(&state, &actor, &id, &body).await?,
    ))
}
