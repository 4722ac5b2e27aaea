//! The people page: who may sign in, and inviting someone.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lien_store::PersonRecord;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Person, error_box, error_page, page, when};
use crate::app::AppState;
use crate::auth::Role;
use crate::clock::from_micros;
use crate::commands::financiers;
use crate::commands::people::{self, Invitation, Invited};
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::wire::FinancierView;

/// What the invitation form sends.
#[derive(Debug, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    financier: String,
}

/// The roles `role` may invite.
fn invitable(role: Role) -> &'static [Role] {
    match role {
        Role::PlatformAdmin => &[
            Role::FinancierAdmin,
            Role::FinancierAgent,
            Role::Support,
            Role::PlatformAdmin,
        ],
        Role::FinancierAdmin => &[Role::FinancierAgent, Role::FinancierAdmin],
        Role::FinancierAgent | Role::Support => &[],
    }
}

/// The people page.
pub async fn list(State(state): State<AppState>, person: Person) -> Response {
    render(&state, &person, None, None, None).await
}

/// Invites someone; shows the link once.
pub async fn invite(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> Response {
    if let Some(refused) = person.csrf_refusal(&form.csrf) {
        return refused;
    }
    let invited = match Role::from_name(&form.role) {
        Some(role) => {
            people::invite(
                &state,
                &person.0.actor,
                Invitation {
                    email: form.email.clone(),
                    role,
                    financier_id: Some(form.financier.clone()),
                },
            )
            .await
        }
        None => Err(ApiError::invalid("role", "choose one of the roles listed")),
    };
    match invited {
        Ok(invited) => {
            let link = invitation_link(&state, &headers, &invited);
            render(&state, &person, Some((&invited, link)), None, None).await
        }
        Err(err @ ApiError::Forbidden(_)) => error_page(Some(&person.0), err),
        Err(err) => render(&state, &person, None, Some(&form), Some(err)).await,
    }
}

/// The invitation's link on this server, as the inviter's browser reached it.
fn invitation_link(state: &AppState, headers: &HeaderMap, invited: &Invited) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    // Only what the inviter is shown (the link works under any name of this server): HTTPS,
    // unless the console is served over HTTP or reached on this very machine.
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let on_this_machine = matches!(name, "localhost" | "127.0.0.1" | "[::1]");
    let scheme = if state.settings.console_allow_http || on_this_machine {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{host}/console/invitations/{}", invited.token)
}

async fn render(
    state: &AppState,
    person: &Person,
    invited: Option<(&Invited, String)>,
    typed: Option<&InviteForm>,
    error: Option<ApiError>,
) -> Response {
    let me = &person.0;
    let everyone = match people::people(state, &me.actor).await {
        Ok(everyone) => everyone,
        Err(err) => return error_page(Some(me), err),
    };
    // Only the platform's admin invites for a financier of its choosing.
    let financiers = if me.actor.role == Role::PlatformAdmin {
        match financiers::visible(state, &me.actor).await {
            Ok(all) => all,
            Err(err) => return error_page(Some(me), err),
        }
    } else {
        Vec::new()
    };
    let roles = invitable(me.actor.role);
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let body = html! {
        @if let Some((invited, link)) = &invited {
            div class="box ok" id="invited" {
                p { "Invitation for " strong { (invited.person.email) } " as " (invited.person.role)
                    ". Send them this link (it works once, until "
                    (when(&rfc3339(from_micros(invited.expires_us)))) "); it is not shown again:" }
                p { code id="invitation-link" { (link) } }
            }
        }
        @if !roles.is_empty() {
            h2 { "Invite someone" }
            @if let Some(err) = &error { (error_box(err)) }
            (invite_form(me, roles, &financiers, typed))
        }
        h2 { "People" }
        (people_table(me, &everyone))
    };
    page(status, Some(me), "People", body)
}

fn invite_form(
    me: &crate::commands::people::SignedIn,
    roles: &[Role],
    financiers: &[FinancierView],
    typed: Option<&InviteForm>,
) -> Markup {
    let typed_email = typed.map_or("", |t| t.email.as_str());
    let typed_role = typed.map_or("", |t| t.role.as_str());
    let typed_financier = typed.map_or("", |t| t.financier.as_str());
    html! {
        form class="stack" method="post" action="/console/people" {
            input type="hidden" name="csrf" value=(me.session.csrf);
            label for="email" { "Their e-mail address" }
            input id="email" name="email" type="email" value=(typed_email) required;
            label for="role" { "Role" }
            select id="role" name="role" {
                @for role in roles {
                    option value=(role.name()) selected[role.name() == typed_role] { (role.name()) }
                }
            }
            @if !financiers.is_empty() {
                label for="financier" { "Financier (for a financier's admin or agent)" }
                select id="financier" name="financier" {
                    option value="" { "—" }
                    @for f in financiers {
                        option value=(f.id) selected[f.id == typed_financier] { (f.name) " (" (f.id) ")" }
                    }
                }
            }
            button type="submit" { "Invite" }
        }
    }
}

fn people_table(me: &crate::commands::people::SignedIn, everyone: &[PersonRecord]) -> Markup {
    html! {
        div class="scroll" {
            table id="people" {
                thead { tr { th { "Name" } th { "E-mail" } th { "Role" } th { "Since" } th { "Status" } th {} } }
                tbody {
                    @for p in everyone {
                        tr {
                            td { (p.name) }
                            td { (p.email) }
                            td { (p.role) }
                            td { (when(&rfc3339(from_micros(p.created_us)))) }
                            td {
                                @if p.disabled_us.is_some() { "disabled" }
                                @else if p.password_hash.is_none() { "invited" }
                                @else { "active" }
                            }
                            td {
                                @if p.disabled_us.is_none() && p.id != me.person.id {
                                    form method="post" action={ "/console/people/" (p.id) "/disable" } {
                                        input type="hidden" name="csrf" value=(me.session.csrf);
                                        label { input type="checkbox" name="confirm" required; " confirm" }
                                        button type="submit" { "Disable" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the disable form sends.
#[derive(Debug, Deserialize)]
pub struct DisableForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// Disables a person: no more sign-ins, their sessions end, their links stop.
pub async fn disable(
    State(state): State<AppState>,
    person: Person,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<DisableForm>,
) -> Response {
    if let Some(refused) = person.csrf_refusal(&form.csrf) {
        return refused;
    }
    if form.confirm != "on" {
        let err = ApiError::invalid("confirm", "tick the box to confirm");
        return render(&state, &person, None, None, Some(err)).await;
    }
    match people::disable(&state, &person.0.actor, &id).await {
        Ok(_) => axum::response::Redirect::to("/console/people").into_response(),
        Err(err @ (ApiError::Conflict(_) | ApiError::Invalid(_))) => {
            render(&state, &person, None, None, Some(err)).await
        }
        Err(err) => error_page(Some(&person.0), err),
    }
}
