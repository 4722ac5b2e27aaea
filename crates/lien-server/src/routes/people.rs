//! Inviting people to the console with an API key: how the first platform admin gets a
//! console account on a fresh server, and how a financier's back office can invite its staff.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{Actor, Role};
use crate::clock::from_micros;
use crate::commands::people::{self, Invitation};
use crate::domain::rfc3339;
use crate::error::{ApiError, ErrorBody};

/// Whom to invite.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    /// Their e-mail address: what they sign in with.
    pub email: String,
    /// Their role.
    pub role: Role,
    /// The financier, for a financier's role; a financier admin's key invites to its own.
    pub financier_id: Option<String>,
}

/// An invitation made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationCreated {
    /// The person's id (`per_`), as the audit log will name them.
    pub person_id: String,
    /// Their address, lower-cased.
    pub email: String,
    /// Their role.
    pub role: Role,
    /// Their financier, for a financier's role.
    pub financier_id: Option<String>,
    /// The path of their invitation link on this server, shown this once: open it (after this
    /// server's address) to set a password. It works once.
    pub invitation_path: String,
    /// When the link stops working (RFC 3339).
    pub expires_at: String,
}

/// Invites someone to the console.
#[utoipa::path(
    post,
    path = "/v1/invitations",
    tag = "people",
    security(("api_key" = [])),
    request_body = InvitationRequest,
    responses(
        (status = 201, description = "The person, and their invitation link's path, shown this once.", body = InvitationCreated),
        (status = 403, description = "The role may not invite this role: platform admins invite anyone, financier admins their own admins and agents.", body = ErrorBody),
        (status = 404, description = "No such financier, or not the caller's.", body = ErrorBody),
        (status = 409, description = "Someone with this e-mail address is already invited.", body = ErrorBody),
        (status = 422, description = "The address is not one, or the financier is missing for a financier's role or given for another.", body = ErrorBody),
    )
)]
pub async fn invite(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<InvitationRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<InvitationCreated>), ApiError> {
    let Json(req) = body?;
    let invited = people::invite(
        &state,
        &actor,
        Invitation {
            email: req.email,
            role: req.role,
            financier_id: req.financier_id,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(InvitationCreated {
            person_id: invited.person.id,
            email: invited.person.email,
            role: req.role,
            financier_id: invited.person.financier_id,
            invitation_path: format!("/console/invitations/{}", invited.token),
            expires_at: rfc3339(from_micros(invited.expires_us)),
        }),
    ))
}
