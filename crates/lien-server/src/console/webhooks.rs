//! Webhooks in the console's settings: a financier's endpoints with their latest deliveries,
//! and, for its admins, making one (its secret shown once), rotating its secret and deleting
//! it. Each through the same commands as the API (`commands::webhook_endpoints`).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use lien_store::{DeliveryRecord, WebhookEndpointRecord};
use maud::{Markup, html};

use super::{SignedForm, error_page, page, when};
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::from_micros;
use crate::commands::people::SignedIn;
use crate::commands::webhook_endpoints;
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::webhooks::events::EventType;

/// How many of an endpoint's latest deliveries the page shows.
const LOG_SHOWN: u32 = 20;

/// An endpoint and its latest deliveries.
pub(super) type Logged = (WebhookEndpointRecord, Vec<DeliveryRecord>);

/// The actor's financier's endpoints with their latest deliveries (the platform has none).
pub(super) async fn read(state: &AppState, actor: &Actor) -> Result<Vec<Logged>, ApiError> {
    if actor.financier_id.is_none() {
        return Ok(Vec::new());
    }
    let mut logged = Vec::new();
    for endpoint in webhook_endpoints::list(state, actor).await? {
        logged.push(webhook_endpoints::deliveries(state, actor, &endpoint.id, LOG_SHOWN).await?);
    }
    Ok(logged)
}

/// The settings' webhooks section: each endpoint with its log, and for an admin the buttons
/// and the form that makes one (`refused`: the form's error and what was typed in it).
pub(super) fn section(
    me: &SignedIn,
    webhooks: &[Logged],
    refused: Option<(Markup, &HashMap<String, String>)>,
) -> Markup {
    let manages = me.actor.role.may(Action::ManageKeys);
    let csrf = &me.session.csrf;
    let typed = |field: &str| {
        refused
            .as_ref()
            .and_then(|(_, typed)| typed.get(field).cloned())
            .unwrap_or_default()
    };
    html! {
        h2 { "Webhooks" }
        p { "Lien posts what happens to your devices (payments, locks, releases, appeals) to these \
             addresses, signed as Standard Webhooks with the endpoint's secret." }
        @if webhooks.is_empty() { p id="no-webhooks" { "No endpoints yet." } }
        @for (endpoint, log) in webhooks {
            div class="box" id={ "endpoint-" (endpoint.id) } {
                p {
                    // Whole for admins; others get only its origin (see `webhook_endpoints::list`).
                    code { (endpoint.url) } " — "
                    @if endpoint.event_types.is_empty() { "every event" } @else { (endpoint.event_types.join(", ")) }
                    @if endpoint.disabled_us.is_some() { strong { " — disabled (it answered 410 Gone)" } }
                }
                (deliveries(log))
                @if manages {
                    form class="inline" method="post" action={ "/console/settings/webhooks/" (endpoint.id) "/rotate" } {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Rotate the secret" }
                    }
                    " "
                    form class="inline" method="post" action={ "/console/settings/webhooks/" (endpoint.id) "/delete" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label { input type="checkbox" name="confirm" required; " confirm" }
                        button type="submit" { "Delete" }
                    }
                }
            }
        }
        @if manages {
            h3 { "Add an endpoint" }
            @if let Some((error, _)) = &refused { (error) }
            form class="stack" method="post" action="/console/settings/webhooks" id="webhook-form" {
                input type="hidden" name="csrf" value=(csrf);
                label for="webhook-url" { "Address (https)" }
                input id="webhook-url" name="url" value=(typed("url")) maxlength="2048" required;
                fieldset {
                    legend { "Events (none ticked: every event)" }
                    @for t in EventType::ALL {
                        label {
                            input type="checkbox" name={ "event:" (t.as_str()) } checked[typed(&format!("event:{}", t.as_str())) == "on"];
                            " " (t.as_str())
                        }
                    }
                }
                button type="submit" { "Add the endpoint" }
            }
        }
    }
}

fn deliveries(log: &[DeliveryRecord]) -> Markup {
    html! {
        @if log.is_empty() { p { "Nothing sent yet." } }
        @else {
            div class="scroll" {
                table {
                    thead { tr { th { "Event" } th { "Status" } th { "Attempts" } th { "Last answer" } th { "Last attempt" } } }
                    tbody { @for d in log {
                        tr {
                            td { (d.event_type) }
                            td { (d.status.as_str()) }
                            td { (d.attempts) }
                            td {
                                @if let Some(code) = d.last_status { (code) " " }
                                @if let Some(error) = &d.last_error { (error) }
                            }
                            td { @match d.last_attempt_us { Some(us) => (when(&rfc3339(from_micros(us)))), None => "—" } }
                        }
                    } }
                }
            }
        }
    }
}

/// The page that shows an endpoint's secret, this once.
fn secret_page(me: &SignedIn, title: &str, endpoint: &WebhookEndpointRecord) -> Response {
    let body = html! {
        div class="box ok" id="webhook-secret" {
            p { "The signing secret of " code { (endpoint.url) } ". It is shown this once; give it to \
                 the receiver, which checks each delivery's signature with it:" }
            p { code id="new-secret" { (endpoint.secret) } }
            @if let Some(until) = endpoint.previous_secret_until_us {
                p { "Until " (when(&rfc3339(from_micros(until)))) " every delivery is also signed with the \
                     secret before, so the receiver can switch at its own pace." }
            }
        }
        p { a href="/console/settings" { "Back to the settings" } }
    };
    page(StatusCode::OK, Some(me), title, body)
}

/// Makes an endpoint; shows its secret once.
pub async fn create(State(state): State<AppState>, form: SignedForm) -> Response {
    let me = form.me();
    let types: Vec<EventType> = EventType::ALL
        .into_iter()
        .filter(|t| form.field(&format!("event:{}", t.as_str())) == "on")
        .collect();
    match webhook_endpoints::create(&state, &me.actor, form.field("url").trim(), &types).await {
        Ok(endpoint) => secret_page(me, "Webhook endpoint added", &endpoint),
        Err(error @ (ApiError::Invalid(_) | ApiError::Conflict(_))) => {
            super::settings::refuse(&state, me, "webhook", error, form.fields.clone()).await
        }
        Err(err) => error_page(Some(me), err),
    }
}

/// Gives an endpoint a new secret; shows it once.
pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    let me = form.me();
    match webhook_endpoints::rotate(&state, &me.actor, &id).await {
        Ok(endpoint) => secret_page(me, "Webhook secret rotated", &endpoint),
        Err(err) => error_page(Some(me), err),
    }
}

/// Deletes an endpoint, once confirmed.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    let me = form.me();
    if let Err(error) =
        form.confirmed("tick the box to confirm: nothing more is sent to a deleted endpoint")
    {
        return super::settings::refuse(&state, me, "webhook", error, HashMap::new()).await;
    }
    match webhook_endpoints::delete(&state, &me.actor, &id).await {
        Ok(()) => Redirect::to("/console/settings").into_response(),
        Err(err) => error_page(Some(me), err),
    }
}
