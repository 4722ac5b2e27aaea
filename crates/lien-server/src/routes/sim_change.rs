//! SIM changes (issue 20): the financier accepts the SIM change a phone reported. The route
//! extracts, calls `commands::sim_change` and serializes.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};

use super::{JsonText, applied_json};
use crate::app::AppState;
use crate::auth::Actor;
use crate::commands::sim_change;
use crate::error::{ApiError, ErrorBody};
use crate::wire::{DeviceView, SimChangeAcceptRequest};

/// `POST /v1/devices/{id}/sim-change/accept`: the financier heard from the borrower about the
/// new SIM card; the policy's SIM-change rule stops applying.
#[utoipa::path(
    post,
    path = "/v1/devices/{id}/sim-change/accept",
    tag = "devices",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The device's id, `dev_` and hex.")),
    request_body = SimChangeAcceptRequest,
    responses(
        (status = 200, description = "The device as it now stands, decided again without the SIM change.", body = DeviceView),
        (status = 403, description = "The role may not lift restrictions.", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's.", body = ErrorBody),
        (status = 409, description = "The device is released, or no SIM change waits to be accepted.", body = ErrorBody),
        (status = 422, description = "The reason is missing or too long.", body = ErrorBody),
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<SimChangeAcceptRequest>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    let Json(req) = body?;
    applied_json(sim_change::accept(&state, &actor, &id, req).await?)
}
