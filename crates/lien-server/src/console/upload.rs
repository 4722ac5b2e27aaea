//! Bulk enrollment from the console: a CSV file uploaded from a form, enrolled row by row
//! through the same command as the API's `POST /v1/devices/bulk`, with every row's outcome.

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{Person, error_box, error_page, page};
use crate::app::AppState;
use crate::auth::Action;
use crate::commands::bulk::{BULK_COLUMNS, BulkResult, enroll_csv};
use crate::commands::people::SignedIn;
use crate::error::ApiError;

/// The upload form.
pub async fn form(person: Person) -> Response {
    let me = &person.0;
    if let Err(err) = me.actor.require(Action::Enroll) {
        return error_page(Some(me), err);
    }
    page(
        StatusCode::OK,
        Some(me),
        "Enroll from a file",
        upload_form(me, None),
    )
}

fn upload_form(me: &SignedIn, error: Option<&ApiError>) -> Markup {
    html! {
        p { "A CSV file with a header row naming the columns "
            code { (BULK_COLUMNS.join(",")) }
            " (see the API's bulk enrollment for each column). Each row is enrolled on its own: a \
             refused row writes nothing and does not stop the others. At most 20,000 rows." }
        @if let Some(err) = error { (error_box(err)) }
        form class="stack" method="post" action="/console/devices/upload" enctype="multipart/form-data" id="upload-form" {
            input type="hidden" name="csrf" value=(me.session.csrf);
            label for="file" { "CSV file" }
            input id="file" name="file" type="file" accept=".csv,text/csv" required;
            button type="submit" { "Enroll" }
        }
    }
}

/// Enrolls the uploaded file; shows each row's outcome.
pub async fn upload(
    State(state): State<AppState>,
    person: Person,
    mut form: Multipart,
) -> Response {
    let me = &person.0;
    if let Err(err) = me.actor.require(Action::Enroll) {
        return error_page(Some(me), err);
    }
    // The token comes first in the form; nothing of the file is read before it is checked.
    let mut file: Option<Vec<u8>> = None;
    let mut checked = false;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(err) => return again(me, err.status(), ApiError::BadRequest(err.body_text())),
        };
        match field.name() {
            Some("csrf") => {
                let offered = field.text().await.unwrap_or_default();
                if let Some(refused) = person.csrf_refusal(&offered) {
                    return refused;
                }
                checked = true;
            }
            Some("file") if checked => match field.bytes().await {
                Ok(bytes) => file = Some(bytes.to_vec()),
                Err(err) => {
                    return again(me, err.status(), ApiError::TooLarge(err.body_text()));
                }
            },
            _ => {}
        }
    }
    if !checked {
        return super::forbidden_form(Some(me));
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return again(
            me,
            StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::invalid("file", "choose a CSV file to upload"),
        );
    };
    match enroll_csv(&state, &me.actor, &file).await {
        Ok(result) => {
            if result.enrolled > 0 {
                state.scheduler_wake.notify_one();
            }
            page(
                StatusCode::OK,
                Some(me),
                "Enrolled from a file",
                outcome(&result),
            )
        }
        Err(err @ (ApiError::Forbidden(_) | ApiError::Internal(_))) => error_page(Some(me), err),
        Err(err) => again(me, err.status(), err),
    }
}

fn again(me: &SignedIn, status: StatusCode, err: ApiError) -> Response {
    page(
        status,
        Some(me),
        "Enroll from a file",
        upload_form(me, Some(&err)),
    )
}

fn outcome(result: &BulkResult) -> Markup {
    html! {
        p class={ "box " @if result.failed == 0 { "ok" } @else { "err" } } id="outcome" {
            (result.enrolled) " enrolled, " (result.failed) " refused."
        }
        div class="scroll" {
            table id="rows" {
                thead { tr { th { "Line" } th { "Contract" } th { "Outcome" } } }
                tbody { @for row in &result.rows {
                    tr {
                        td { (row.line) }
                        td { (row.contract_ref) }
                        td {
                            @match (&row.device_id, &row.error) {
                                (Some(id), _) => { a href={ "/console/devices/" (id) } { "enrolled" } }
                                (None, Some(error)) => { (error) }
                                (None, None) => "",
                            }
                        }
                    }
                } }
            }
        }
        p { a href="/console/devices/upload" { "Upload another file" } " · " a href="/console/devices" { "Devices" } }
    }
}
