//! Bulk enrollment from the console: a CSV file uploaded from a form, enrolled row by row
//! through the same command as the API's `POST /v1/devices/bulk`, with every row's outcome.

use std::collections::HashMap;

use std::time::Duration;

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{Person, error_box, error_page, page};
use crate::app::AppState;
use crate::auth::Action;
use crate::commands::bulk::{BULK_COLUMNS, BulkResult};
use crate::commands::bulk_jobs::Progress;
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
pub async fn upload(State(state): State<AppState>, person: Person, form: Multipart) -> Response {
    let me = &person.0;
    if let Err(err) = me.actor.require(Action::Enroll) {
        return error_page(Some(me), err);
    }
    // Room among the server's bulk jobs is asked before the file is read (and again when the
    // job starts).
    if let Err(err) = crate::commands::bulk::admit(&state, &me.actor) {
        return again(me, err.status(), err);
    }
    let signed = match signed_upload(&person, form).await {
        Ok(signed) => signed,
        Err(refused) => return refused,
    };
    let file = match signed.read().await {
        Ok(upload) => upload.file,
        Err((status, err)) => return again(me, status, err),
    };
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return again(
            me,
            StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::invalid("file", "choose a CSV file to upload"),
        );
    };
    match state.bulk_jobs.start(&state, &me.actor, &file).await {
        Ok(job) => {
            // A small file is done by the time its page is first shown; a large one's page
            // shows how far it has come.
            state.bulk_jobs.settle(&job, SETTLE).await;
            Redirect::to(&format!("/console/uploads/{job}")).into_response()
        }
        Err(err @ (ApiError::Forbidden(_) | ApiError::Internal(_))) => error_page(Some(me), err),
        Err(err) => again(me, err.status(), err),
    }
}

/// How long an upload's request waits for its rows before showing their progress instead.
const SETTLE: Duration = Duration::from_secs(2);

/// How often a running upload's page reloads itself, in seconds.
const REFRESH_SECS: u32 = 2;

/// An upload's page: how far its rows have come, then every row's outcome.
pub async fn progress(
    State(state): State<AppState>,
    person: Person,
    Path(id): Path<String>,
) -> Response {
    let me = &person.0;
    match state.bulk_jobs.progress(&me.actor, &id) {
        Ok(Progress::Running { done, total }) => {
            let body = html! {
                p id="progress-text" { "Enrolled " (done) " of " (total) " rows…" }
                progress id="progress" value=(done) max=(total) { (done) " of " (total) }
                p { "This page updates itself every " (REFRESH_SECS) " seconds. You may leave it: \
                     the rows go on being enrolled, and their outcome stays here for an hour." }
            };
            super::page_refreshing(me, "Enrolling from a file", REFRESH_SECS, body)
        }
        Ok(Progress::Finished(result)) => page(
            StatusCode::OK,
            Some(me),
            "Enrolled from a file",
            outcome(&result),
        ),
        Ok(Progress::Failed(why)) => error_page(
            Some(me),
            ApiError::Unavailable(format!(
                "the enrollment stopped ({why}); the rows before it are enrolled: look them up \
                 in Devices before sending the file again"
            )),
        ),
        Err(err) => error_page(Some(me), err),
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

/// The most rows listed one by one on an outcome page; past it only the refused rows are
/// (every refused row always is: they are what the person must fix).
const ROWS_LISTED: usize = 1000;

fn outcome(result: &BulkResult) -> Markup {
    let all = result.rows.len() <= ROWS_LISTED;
    html! {
        p class={ "box " @if result.failed == 0 { "ok" } @else { "err" } } id="outcome" {
            (result.enrolled) " enrolled, " (result.failed) " refused."
        }
        @if !all {
            p { "The refused rows are listed below; the enrolled ones are in "
                a href="/console/devices" { "Devices" } "." }
        }
        div class="scroll" {
            table id="rows" {
                thead { tr { th { "Line" } th { "Contract" } th { "Outcome" } } }
                tbody { @for row in result.rows.iter().filter(|r| all || r.device_id.is_none()) {
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

/// A file uploaded from a console form, with the form's other fields.
pub(super) struct Upload {
    /// The text fields after the token, by name (the last of a name wins).
    pub fields: HashMap<String, String>,
    /// The field named `file`, if one was sent.
    pub file: Option<Vec<u8>>,
}

/// The longest text field of an upload form read, in bytes.
const MAX_TEXT_FIELD: usize = 4096;

/// A console form sent as `multipart/form-data` whose first field, the session's token, has
/// been checked; nothing after it is read yet (a caller may admit the request first).
pub(super) struct SignedUpload(Multipart);

/// Checks the token in the form's first field: a form without it, or with another, is refused
/// with the 403 page before anything else of it is read.
pub(super) async fn signed_upload(
    person: &Person,
    mut form: Multipart,
) -> Result<SignedUpload, Response> {
    let refused = || super::forbidden_form(Some(&person.0));
    match form.next_field().await {
        Ok(Some(field)) if field.name() == Some("csrf") => {
            let offered = field.text().await.unwrap_or_default();
            match person.csrf_refusal(&offered) {
                Some(refusal) => Err(refusal),
                None => Ok(SignedUpload(form)),
            }
        }
        Ok(_) => Err(refused()),
        Err(err) => Err(error_page(
            Some(&person.0),
            ApiError::BadRequest(err.body_text()),
        )),
    }
}

impl SignedUpload {
    /// Reads the rest of the form. A part that cannot be read (too large, malformed) is the
    /// `Err`, with the status to answer, for the caller to show on its form again.
    pub(super) async fn read(self) -> Result<Upload, (StatusCode, ApiError)> {
        let SignedUpload(mut form) = self;
        let mut upload = Upload {
            fields: HashMap::new(),
            file: None,
        };
        loop {
            let field = match form.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => return Ok(upload),
                Err(err) => return Err((err.status(), ApiError::BadRequest(err.body_text()))),
            };
            let Some(name) = field.name().map(str::to_string) else {
                continue;
            };
            let bytes = match field.bytes().await {
                Ok(bytes) => bytes,
                Err(err) => return Err((err.status(), ApiError::TooLarge(err.body_text()))),
            };
            if name == "file" {
                upload.file = Some(bytes.to_vec());
            } else if bytes.len() <= MAX_TEXT_FIELD {
                upload
                    .fields
                    .insert(name, String::from_utf8_lossy(&bytes).into_owned());
            } else {
                let err = ApiError::invalid(&name, format!("at most {MAX_TEXT_FIELD} bytes"));
                return Err((StatusCode::UNPROCESSABLE_ENTITY, err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::bulk::BulkRow;

    fn result(enrolled: usize, refused: usize) -> BulkResult {
        let row = |line: usize, ok: bool| BulkRow {
            line,
            contract_ref: format!("C-{line}"),
            device_id: ok.then(|| format!("dev_{line}")),
            error: (!ok).then(|| "imei1: not an IMEI".to_string()),
        };
        BulkResult {
            enrolled,
            failed: refused,
            rows: (0..enrolled + refused)
                .map(|i| row(i + 2, i < enrolled))
                .collect(),
        }
    }

    #[test]
    fn a_small_file_lists_every_row_and_a_large_one_its_refused_rows() {
        let small = outcome(&result(3, 1)).into_string();
        assert_eq!(small.matches("<tr><td>").count(), 4, "{small}");
        let large = outcome(&result(ROWS_LISTED, 2)).into_string();
        assert_eq!(large.matches("<tr><td>").count(), 2);
        assert!(large.contains("1000 enrolled, 2 refused."));
        assert!(large.contains("imei1: not an IMEI"));
    }
}
