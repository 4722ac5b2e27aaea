//! Reports: payments, locks and unlocks by day for a period, and the activity log of the period as CSV (every
//! audited act on the financier's devices and on the financier itself), read a page at a time.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use lien_money::Style;
use maud::html;
use serde::Deserialize;

use super::{Person, error_box, error_page, page};
use crate::app::AppState;
use crate::clock::from_micros;
use crate::commands::{late_unlocks, reads};
use crate::domain::rfc3339;

/// Rows of the activity log read at once.
const ACTIVITY_PAGE: u32 = 1000;

/// The period asked for (UTC dates, both included); the last 30 days by default.
#[derive(Debug, Default, Deserialize)]
pub struct PeriodQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

impl PeriodQuery {
    fn dates(&self, state: &AppState) -> (String, String) {
        let today = state.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let default_from = today
            .checked_sub(jiff::Span::new().days(29))
            .unwrap_or(today);
        (
            self.from
                .clone()
                .unwrap_or_else(|| default_from.to_string()),
            self.to.clone().unwrap_or_else(|| today.to_string()),
        )
    }
}

/// The reports page.
pub async fn show(
    State(state): State<AppState>,
    person: Person,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Response {
    let me = &person.0;
    if let Some(wait) = super::over_report_limit(&state, me) {
        return wait;
    }
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (from, to) = q.dates(&state);
    let read = async {
        let period = reads::report_period(&from, &to)?;
        let payments = reads::payments_by_day(&state, &me.actor, period).await?;
        let locks = reads::locks_by_day(&state, &me.actor, period).await?;
        let late = late_unlocks::late_unlocks(&state, &me.actor, period).await?;
        Ok((period, (payments, locks, late)))
    };
    let days = read.await;
    let (status, error, rows) = match days {
        Ok((period, days)) => (StatusCode::OK, None, Some((period, days))),
        Err(err @ crate::error::ApiError::Invalid(_)) => (err.status(), Some(err), None),
        Err(err) => return error_page(Some(me), err),
    };
    let body = html! {
        form method="get" action="/console/reports" id="period" {
            label for="from" { "From " } input id="from" name="from" value=(from) size="10";
            " " label for="to" { "to " } input id="to" name="to" value=(to) size="10";
            " (UTC, both included) "
            button type="submit" { "Show" }
        }
        @if let Some(err) = &error { (error_box(err)) }
        @if let Some(((from_us, _), (days, locks, late))) = &rows {
            h2 { "Payments by day" }
            @if days.is_empty() { p id="no-payments" { "No payments in this period." } }
            @else {
                div class="scroll" {
                    table id="payments-by-day" {
                        thead { tr { th { "Day" } th { "Payments" } th { "Amount" } } }
                        tbody { @for d in days {
                            tr {
                                td { (day(*from_us, d.day)) }
                                td { (d.count) }
                                td { (lien_money::format(d.amount_minor, &d.currency, Style::Grouped)) }
                            }
                        } }
                    }
                }
            }
            h2 { "Locks and unlocks by day" }
            @if locks.is_empty() { p id="no-locks" { "No phone was locked or unlocked in this period." } }
            @else {
                div class="scroll" {
                    table id="locks-by-day" {
                        thead { tr { th { "Day" } th { "Locked" } th { "Unlocked" } } }
                        tbody { @for d in locks {
                            tr { td { (day(*from_us, d.day)) } td { (d.locks) } td { (d.unlocks) } }
                        } }
                    }
                }
            }
            h2 { "Late unlocks" }
            p { "Payments that lifted a phone's restriction later than its policy promises, \
                 from Lien's recording of the payment to the phone's acknowledgement." }
            @if late.late.is_empty() { p id="no-late-unlocks" { "Every unlock in this period kept its promise." } }
            @else {
                div class="scroll" {
                    table id="late-unlocks" {
                        thead { tr {
                            th { "Device" } th { "Payment" } th { "Recorded" } th { "Unlock took" }
                            th { "Promise" } th { "Owed to the borrower" }
                        } }
                        tbody { @for l in &late.late {
                            tr {
                                td { a href={ "/console/devices/" (l.payment.device_id) } { (l.payment.device_id) } }
                                td { (l.payment.reference) " · "
                                     (lien_money::format(l.payment.amount_minor, &l.payment.currency, Style::Grouped)) }
                                td { (rfc3339(from_micros(l.payment.recorded_us))) }
                                td { (took(l.delay)) @if l.payment.acked_us.is_none() { " (not yet)" } }
                                td { (l.promise.within_minutes) " min" }
                                td { @match l.compensation {
                                    Some(m) => (lien_money::format(m.minor(), m.currency().code(), Style::Grouped)),
                                    None => "—",
                                } }
                            }
                        } }
                    }
                }
                @if late.truncated { p { "Only the first 1,000 are listed; choose a shorter period." } }
            }
            h2 { "Activity" }
            p { a id="activity" href={ "/console/reports/activity.csv?from=" (from) "&to=" (to) } {
                "Every audited act of the period, as CSV" } }
        }
    };
    page(status, Some(me), "Reports", body)
}

/// A delay in whole hours and minutes, e.g. `26 h 05 min`.
fn took(delay: jiff::SignedDuration) -> String {
    let minutes = delay.as_secs() / 60;
    format!("{} h {:02} min", minutes / 60, minutes % 60)
}

/// The date of the `n`-th day of a period that starts at `from_us`.
fn day(from_us: i64, n: i64) -> String {
    let at = rfc3339(from_micros(from_us + n * 86_400_000_000));
    at.get(..10).unwrap_or_default().to_string()
}

/// The activity log of a period as CSV, streamed a page at a time.
pub async fn activity(
    State(state): State<AppState>,
    person: Person,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Response {
    let me = person.0;
    if let Some(wait) = super::over_report_limit(&state, &me) {
        return wait;
    }
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (from, to) = q.dates(&state);
    let period = match reads::report_period(&from, &to) {
        Ok(period) => period,
        Err(err) => return error_page(Some(&me), err),
    };
    let first = match reads::activity(&state, &me.actor, period, None, ACTIVITY_PAGE).await {
        Ok(first) => first,
        Err(err) => return error_page(Some(&me), err),
    };
    // Each step yields a page's lines and reads the next; a read that fails ends the download
    // with an error (the connection is cut), never with a file that looks whole.
    let pages = futures_util::stream::unfold(Some(Ok(first)), move |step| {
        let (state, me) = (state.clone(), me.clone());
        async move {
            let page = match step? {
                Ok(page) => page,
                Err(why) => return Some((Err(std::io::Error::other(why)), None)),
            };
            let text = csv_lines(&page);
            let next = match page.last() {
                Some(last) if page.len() == ACTIVITY_PAGE as usize => {
                    let after = (last.entry.at_us, last.chain.clone(), last.seq);
                    Some(
                        reads::activity(&state, &me.actor, period, Some(&after), ACTIVITY_PAGE)
                            .await
                            .map_err(|err| {
                                tracing::error!(error = %err, "activity export stopped");
                                "the activity export stopped: reading the next page failed"
                            }),
                    )
                }
                _ => None,
            };
            Some((Ok(text), next))
        }
    });
    let header = futures_util::stream::once(async {
        Ok::<_, std::io::Error>("at,chain,seq,actor,action,reason\n".to_string())
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"activity.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(header.chain(pages)),
    )
        .into_response()
}

/// Audit records as CSV lines; text a spreadsheet would run is kept inert.
fn csv_lines(records: &[lien_store::AuditRecord]) -> String {
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for r in records {
        let _ = out.write_record([
            rfc3339(from_micros(r.entry.at_us)).as_str(),
            &r.chain,
            &r.seq.to_string(),
            &super::devices::inert(&r.entry.actor),
            &r.entry.action,
            &super::devices::inert(&r.entry.reason),
        ]);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}
