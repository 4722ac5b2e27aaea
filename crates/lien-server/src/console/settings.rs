//! Settings: the financier's public profile, the API keys an admin manages (issue, list,
//! revoke), the webhooks (see `webhooks`) and the payments that matched no device (list, assign
//! to a device). Each through the same commands as the API.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use lien_store::UnmatchedStatus;
use maud::{Markup, html};

use super::{Person, SignedForm, error_box, error_page, page, webhooks, when};
use crate::app::AppState;
use crate::auth::{Action, Role};
use crate::clock::from_micros;
use crate::commands::people::SignedIn;
use crate::commands::{keys, mobile_money};
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::wire::{ApiKeyCreated, ApiKeyStatus};

/// How long a key made in the console lasts unless the person says otherwise, in days.
const CONSOLE_KEY_DAYS: i64 = 365;

/// A form refused on the settings page: which, why, and what was typed.
struct Refused {
    form: &'static str,
    error: ApiError,
    typed: HashMap<String, String>,
}

/// The settings page again, with `error` above `form` and what was typed in it.
pub(super) async fn refuse(
    state: &AppState,
    me: &SignedIn,
    form: &'static str,
    error: ApiError,
    typed: HashMap<String, String>,
) -> Response {
    let refused = Refused { form, error, typed };
    render(state, me, None, Some(refused)).await
}

/// The settings page.
pub async fn show(State(state): State<AppState>, person: Person) -> Response {
    render(&state, &person.0, None, None).await
}

/// The roles a key may be issued with by `role`: a financier's for a financier admin; a
/// platform admin issues the platform's own keys here (a financier's are issued by its admins).
fn key_roles(role: Role) -> &'static [Role] {
    match role {
        Role::PlatformAdmin => &[Role::Support, Role::PlatformAdmin],
        Role::FinancierAdmin => &[Role::FinancierAgent, Role::FinancierAdmin],
        Role::FinancierAgent | Role::Support => &[],
    }
}

async fn render(
    state: &AppState,
    me: &SignedIn,
    created: Option<&ApiKeyCreated>,
    refused: Option<Refused>,
) -> Response {
    let actor = &me.actor;
    let manages_keys = actor.role.may(Action::ManageKeys);
    let keys = if manages_keys {
        match keys::list(state, actor, actor.financier_id.clone()).await {
            Ok(keys) => keys,
            Err(err) => return error_page(Some(me), err),
        }
    } else {
        Vec::new()
    };
    let unmatched = match mobile_money::list_unmatched(
        state,
        actor,
        UnmatchedStatus::Open,
        None,
        mobile_money::DEFAULT_UNMATCHED_PAGE,
    )
    .await
    {
        Ok((payments, _)) => payments,
        Err(err) => return error_page(Some(me), err),
    };
    let logged = match webhooks::read(state, actor).await {
        Ok(logged) => logged,
        Err(err) => return error_page(Some(me), err),
    };
    let error_for = |form: &str| {
        refused
            .as_ref()
            .filter(|r| r.form == form)
            .map(|r| error_box(&r.error))
    };
    let typed = |form: &str, field: &str| {
        refused
            .as_ref()
            .filter(|r| r.form == form)
            .and_then(|r| r.typed.get(field).cloned())
            .unwrap_or_default()
    };
    let status = refused
        .as_ref()
        .map_or(StatusCode::OK, |r| r.error.status());
    let csrf = &me.session.csrf;
    // A key made here expires (a year on unless changed): a person's keys should not outlive
    // their part in the work by default. Keys without an expiry are made with the API.
    let default_expiry =
        rfc3339(state.clock.now() + jiff::SignedDuration::from_hours(24 * CONSOLE_KEY_DAYS));
    let profile = match (&actor.financier_id, manages_keys) {
        (Some(id), true) => match crate::commands::visible_financier(state, actor, id).await {
            Ok(f) => Some(f),
            Err(err) => return error_page(Some(me), err),
        },
        _ => None,
    };
    let body = html! {
        @if let Some(f) = &profile {
            h2 { "Public profile" }
            p { "What borrowers see on their lock screens and on the public pages." }
            @if let Some(err) = error_for("profile") { (err) }
            form class="stack" method="post" action="/console/settings/profile" id="profile-form" {
                input type="hidden" name="csrf" value=(csrf);
                label for="name" { "Name" }
                input id="name" name="name" maxlength="80" required
                    value=(refused_or(&typed("profile", "name"), &f.name));
                label for="contact" { "Contact (phone or address)" }
                input id="contact" name="contact" maxlength="120" required
                    value=(refused_or(&typed("profile", "contact"), &f.contact));
                label for="payment_link" { "Where borrowers pay (an https link; optional)" }
                input id="payment_link" name="payment_link"
                    value=(refused_or(&typed("profile", "payment_link"), f.payment_link.as_deref().unwrap_or("")));
                button type="submit" { "Save" }
            }
        }
        @if manages_keys {
            h2 { "API keys" }
            @if let Some(key) = created {
                div class="box ok" id="key-created" {
                    p { "The new key (" (key.role.name()) "). It is shown this once; keep it where your back office keeps secrets:" }
                    p { code id="new-key" { (key.key) } }
                }
            }
            (keys_table(me, &keys))
            @if let Some(err) = error_for("key") { (err) }
            form class="stack" method="post" action="/console/settings/keys" id="key-form" {
                input type="hidden" name="csrf" value=(csrf);
                label for="label" { "What the key is for" }
                input id="label" name="label" value=(typed("key", "label")) maxlength="80" required;
                label for="key-role" { "Role" }
                select id="key-role" name="role" {
                    @for role in key_roles(actor.role) {
                        option value=(role.name()) selected[typed("key", "role") == role.name()] { (role.name()) }
                    }
                }
                label for="expires_at" { "Expires (RFC 3339, at most 5 years ahead)" }
                input id="expires_at" name="expires_at" required
                    value=(refused_or(&typed("key", "expires_at"), &default_expiry));
                button type="submit" { "Create a key" }
            }
        }
        @if actor.financier_id.is_some() {
            (webhooks::section(me, &logged, refused.as_ref().filter(|r| r.form == "webhook")
                .map(|r| (error_box(&r.error), &r.typed))))
        }
        h2 { "Payments that matched no device" }
        @if let Some(err) = error_for("assign") { (err) }
        @if unmatched.is_empty() { p id="no-unmatched" { "None open." } }
        @else {
            div class="scroll" {
                table id="unmatched" {
                    thead { tr { th { "Received" } th { "Provider" } th { "Reference" } th { "Account typed" } th { "Amount" } th { "Why" } th {} } }
                    tbody { @for p in &unmatched {
                        tr {
                            td { (when(&rfc3339(from_micros(p.received_us)))) }
                            td { (p.provider) }
                            td { (p.provider_ref) }
                            td { (p.account) }
                            td { (lien_money::format(p.amount_minor, &p.currency, lien_money::Style::Grouped)) }
                            td { (p.reason) }
                            td {
                                @if actor.role.may(Action::RecordPayment) {
                                    form method="post" action={ "/console/settings/unmatched/" (p.id) } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input name="device_id" placeholder="dev_…" value=(typed("assign", "device_id")) required;
                                        button type="submit" { "Assign" }
                                    }
                                }
                            }
                        }
                    } }
                }
            }
        }
    };
    page(status, Some(me), "Settings", body)
}

fn keys_table(me: &SignedIn, keys: &[crate::wire::ApiKeyView]) -> Markup {
    html! {
        div class="scroll" {
            table id="keys" {
                thead { tr { th { "Key" } th { "For" } th { "Role" } th { "Status" } th { "Last used" } th {} } }
                tbody { @for k in keys {
                    tr {
                        td { code { (k.id) } }
                        td { (k.label) }
                        td { (k.role.name()) }
                        td { (status_name(k.status)) }
                        td { @match &k.last_used_at { Some(at) => (when(at)), None => "never" } }
                        td {
                            @if k.status == ApiKeyStatus::Active {
                                form method="post" action={ "/console/settings/keys/" (k.id) "/revoke" } {
                                    input type="hidden" name="csrf" value=(me.session.csrf);
                                    label { input type="checkbox" name="confirm" required; " confirm" }
                                    button type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                } }
            }
        }
    }
}

/// What was typed into a refused form, or else what is stored.
fn refused_or<'a>(typed: &'a str, stored: &'a str) -> &'a str {
    if typed.is_empty() { stored } else { typed }
}

/// Saves the financier's public profile.
pub async fn save_profile(State(state): State<AppState>, form: SignedForm) -> Response {
    let me = form.me();
    let Some(financier) = me.actor.financier_id.clone() else {
        return error_page(Some(me), ApiError::NotFound("financier"));
    };
    let profile = crate::wire::NewFinancier {
        name: form.field("name").to_string(),
        contact: form.field("contact").to_string(),
        payment_link: Some(form.field("payment_link").to_string()),
    };
    match crate::commands::financiers::update_profile(&state, &me.actor, &financier, &profile).await
    {
        Ok(_) => Redirect::to("/console/settings").into_response(),
        Err(error @ ApiError::Invalid(_)) => {
            refuse(&state, me, "profile", error, form.fields.clone()).await
        }
        Err(err) => error_page(Some(me), err),
    }
}

fn status_name(status: ApiKeyStatus) -> &'static str {
    match status {
        ApiKeyStatus::Active => "active",
        ApiKeyStatus::Expired => "expired",
        ApiKeyStatus::Revoked => "revoked",
    }
}

/// Issues a key; shows it once.
pub async fn create_key(State(state): State<AppState>, form: SignedForm) -> Response {
    let me = form.me();
    if let Err(err) = me.actor.require(Action::ManageKeys) {
        return error_page(Some(me), err);
    }
    let issued = match Role::from_name(form.field("role")) {
        Some(role) => match Some(form.field("expires_at").trim()).filter(|e| !e.is_empty()) {
            Some(expires) => {
                keys::issue(
                    &state,
                    &me.actor,
                    me.actor.financier_id.clone(),
                    role,
                    form.field("label"),
                    Some(expires),
                )
                .await
            }
            None => Err(ApiError::invalid(
                "expires_at",
                "a key made in the console expires: give a date",
            )),
        },
        None => Err(ApiError::invalid("role", "choose one of the roles listed")),
    };
    match issued {
        Ok(created) => render(&state, me, Some(&created), None).await,
        Err(err @ (ApiError::Forbidden(_) | ApiError::NotFound(_) | ApiError::Internal(_))) => {
            error_page(Some(me), err)
        }
        Err(error) => refuse(&state, me, "key", error, form.fields.clone()).await,
    }
}

/// Revokes a key.
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    let me = form.me();
    if let Err(error) = form.confirmed("tick the box to confirm: a revoked key stops at once") {
        return refuse(&state, me, "key", error, HashMap::new()).await;
    }
    match keys::revoke(&state, &me.actor, &id).await {
        Ok(_) => Redirect::to("/console/settings").into_response(),
        Err(err @ ApiError::Conflict(_)) => refuse(&state, me, "key", err, HashMap::new()).await,
        Err(err) => error_page(Some(me), err),
    }
}

/// Assigns an unmatched payment to a device: the payment is recorded on it.
pub async fn assign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    let me = form.me();
    match mobile_money::assign_unmatched(&state, &me.actor, &id, form.field("device_id").trim())
        .await
    {
        Ok(assigned) => match assigned.assigned_device_id {
            Some(device) => {
                Redirect::to(&format!("/console/devices/{device}?done=payment")).into_response()
            }
            None => Redirect::to("/console/settings").into_response(),
        },
        Err(err @ (ApiError::Forbidden(_) | ApiError::Internal(_))) => error_page(Some(me), err),
        Err(error) => refuse(&state, me, "assign", error, form.fields.clone()).await,
    }
}
