//! Signing in and out, and accepting an invitation.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    Jar, Person, Session, cookie_value, error_box, error_page, form_token_matches, page, set_cookie,
};
use crate::app::AppState;
use crate::commands::people::{self, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Opened, SignInError};
use crate::error::ApiError;
use crate::routes::public::PublicClient;

/// What the sign-in form sends.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    form_token: String,
}

/// What the invitation form sends.
#[derive(Debug, Deserialize)]
pub struct InvitationForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
    #[serde(default)]
    form_token: String,
}

/// What a signed-in form sends when it carries nothing but its token.
#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// A pre-session form's page, with a fresh form token set as its cookie.
fn with_form_token(
    state: &AppState,
    status: StatusCode,
    title: &str,
    body: impl FnOnce(&str) -> Markup,
) -> Response {
    let token = match people::random_token() {
        Ok(token) => token,
        Err(err) => return error_page(None, err),
    };
    let mut response = page(status, None, title, body(&token));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, Jar::Form, Some(&token)),
    );
    response
}

fn sign_in_markup(token: &str, email: &str, error: Option<&ApiError>) -> Markup {
    html! {
        @if let Some(err) = error { (error_box(err)) }
        form class="stack" method="post" action="/console/sign-in" {
            input type="hidden" name="form_token" value=(token);
            label for="email" { "E-mail address" }
            input id="email" name="email" type="email" value=(email) autocomplete="username" required;
            label for="password" { "Password" }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
        p { "No account yet? Ask your administrator for an invitation link." }
    }
}

/// The sign-in page (or the devices, for someone signed in).
pub async fn sign_in_form(State(state): State<AppState>, session: Session) -> Response {
    if session.0.is_some() {
        return Redirect::to("/console/devices").into_response();
    }
    with_form_token(&state, StatusCode::OK, "Sign in", |token| {
        sign_in_markup(token, "", None)
    })
}

/// Signs in: a session cookie and the devices, or the form again with what went wrong.
pub async fn sign_in(
    State(state): State<AppState>,
    client: PublicClient,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let again = |status: StatusCode, err: ApiError| {
        let email = form.email.clone();
        with_form_token(&state, status, "Sign in", move |token| {
            sign_in_markup(token, &email, Some(&err))
        })
    };
    if !form_token_matches(&state, &headers, &form.form_token) {
        return again(
            StatusCode::FORBIDDEN,
            ApiError::Forbidden(
                "the sign-in form had expired or did not come from this console; please sign in again"
                    .into(),
            ),
        );
    }
    match people::sign_in(&state, client.key(), &form.email, &form.password).await {
        Ok(opened) => signed_in_response(&state, opened, "/console/devices"),
        Err(SignInError::Wrong) => again(
            StatusCode::UNAUTHORIZED,
            ApiError::Unauthorized(SignInError::Wrong.to_string()),
        ),
        Err(SignInError::TooMany(secs)) => {
            let mut response = again(
                StatusCode::TOO_MANY_REQUESTS,
                ApiError::Forbidden(SignInError::TooMany(secs).to_string()),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
            response
        }
        Err(SignInError::Failed(err)) => again(err.status(), err),
    }
}

/// The redirect after a session opens: its cookie set, the form's cookie removed.
fn signed_in_response(state: &AppState, opened: Opened, to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    let set = response.headers_mut();
    set.append(
        header::SET_COOKIE,
        set_cookie(state, Jar::Session, Some(&opened.cookie)),
    );
    set.append(header::SET_COOKIE, set_cookie(state, Jar::Form, None));
    response
}

/// Signs out: the session ends on the server (not only in this browser).
pub async fn sign_out(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = person.csrf_refusal(&form.csrf) {
        return refused;
    }
    if let Some(cookie) = cookie_value(&headers, Jar::Session.name(&state))
        && let Err(err) = people::sign_out(&state, &cookie).await
    {
        return error_page(Some(&person.0), err);
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, Jar::Session, None));
    response
}

fn invitation_markup(
    path: &str,
    token: &str,
    email: &str,
    role: &str,
    name: &str,
    error: Option<&ApiError>,
) -> Markup {
    html! {
        p { "You are invited to Lien's console as " strong { (role) } ", with the address " strong { (email) } "." }
        @if let Some(err) = error { (error_box(err)) }
        form class="stack" method="post" action=(path) {
            input type="hidden" name="form_token" value=(token);
            label for="name" { "Your name" }
            input id="name" name="name" value=(name) autocomplete="name" maxlength="100" required;
            label for="password" { "Password (" (MIN_PASSWORD_CHARS) " to " (MAX_PASSWORD_CHARS) " characters)" }
            input id="password" name="password" type="password" autocomplete="new-password"
                minlength=(MIN_PASSWORD_CHARS) maxlength=(MAX_PASSWORD_CHARS) required;
            label for="password_again" { "The same password again" }
            input id="password_again" name="password_again" type="password" autocomplete="new-password" required;
            button type="submit" { "Set my password and sign in" }
        }
    }
}

/// The page of an invitation link: who it is for, and the form to accept it.
pub async fn invitation_form(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let person = match people::invitation(&state, &token).await {
        Ok(person) => person,
        Err(err) => return gone_invitation(err),
    };
    let path = format!("/console/invitations/{token}");
    with_form_token(&state, StatusCode::OK, "Welcome", |form_token| {
        invitation_markup(&path, form_token, &person.email, &person.role, "", None)
    })
}

/// Accepts an invitation: the password is set, the person signed in.
pub async fn accept_invitation(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<InvitationForm>,
) -> Response {
    let person = match people::invitation(&state, &token).await {
        Ok(person) => person,
        Err(err) => return gone_invitation(err),
    };
    let path = format!("/console/invitations/{token}");
    let again = |status: StatusCode, err: ApiError| {
        with_form_token(&state, status, "Welcome", |form_token| {
            invitation_markup(
                &path,
                form_token,
                &person.email,
                &person.role,
                &form.name,
                Some(&err),
            )
        })
    };
    if !form_token_matches(&state, &headers, &form.form_token) {
        return again(
            StatusCode::FORBIDDEN,
            ApiError::Forbidden(
                "the form had expired or did not come from this console; please send it again"
                    .into(),
            ),
        );
    }
    match people::accept(
        &state,
        &token,
        &form.name,
        &form.password,
        &form.password_again,
    )
    .await
    {
        Ok(opened) => signed_in_response(&state, opened, "/console/devices"),
        Err(err @ ApiError::NotFound(_)) => gone_invitation(err),
        Err(err) => again(err.status(), err),
    }
}

/// An invitation link that does not work (any more): one page for unknown, used and expired.
fn gone_invitation(err: ApiError) -> Response {
    match err {
        ApiError::NotFound(_) => page(
            StatusCode::NOT_FOUND,
            None,
            "Invitation not valid",
            html! {
                p class="box err" id="error" {
                    "This invitation link does not work: it was used already, it expired, or it \
                     was mistyped. Ask whoever invited you for a new one, or "
                    a href="/console/sign-in" { "sign in" } " if you have set your password."
                }
            },
        ),
        other => error_page(None, other),
    }
}
