//! The overview: a financier's portfolio at a glance (the platform's, for its own roles), each
//! figure a link to the devices behind it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use lien_money::Style;
use maud::html;

use lien_store::ArrearsAge;

use super::{Person, error_page, page, took};
use crate::app::AppState;
use crate::commands::reads::{self, ARREARS_AGES, NOT_SEEN_DAYS};
use crate::wire::DeviceStateJson;

/// The overview page.
pub async fn overview(State(state): State<AppState>, person: Person) -> Response {
    let me = &person.0;
    let read = async {
        Ok::<_, crate::error::ApiError>((
            reads::portfolio(&state, &me.actor).await?,
            reads::locks_today(&state, &me.actor).await?,
            reads::payment_acks(&state, &me.actor).await?,
        ))
    };
    let (portfolio, (locks, unlocks), acks) = match read.await {
        Ok(read) => read,
        Err(err) => return error_page(Some(me), err),
    };
    let [first, second, third] = ARREARS_AGES;
    let age = |age: ArrearsAge| match age {
        ArrearsAge::UpToFirst => format!("1–{first} days"),
        ArrearsAge::UpToSecond => format!("{}–{second} days", first + 1),
        ArrearsAge::UpToThird => format!("{}–{third} days", second + 1),
        ArrearsAge::Older => format!("over {third} days"),
        ArrearsAge::Unknown => "not yet known".to_string(),
    };
    let count = |s: DeviceStateJson| {
        portfolio
            .by_state
            .iter()
            .find(|(name, _)| name == s.as_str())
            .map_or(0, |(_, n)| *n)
    };
    let total: i64 = portfolio.by_state.iter().map(|(_, n)| n).sum();
    let body = html! {
        h2 { "Devices" }
        div class="scroll" {
            table id="by-state" {
                thead { tr { th { "State" } th { "Devices" } } }
                tbody {
                    @for s in DeviceStateJson::ALL {
                        tr {
                            td { a href={ "/console/devices?state=" (s.as_str()) } { (s.as_str()) } }
                            td id={ "count-" (s.as_str()) } { (count(s)) }
                        }
                    }
                    tr { td { strong { "all" } } td id="count-all" { strong { (total) } } }
                }
            }
        }
        h2 { "Arrears" }
        @if portfolio.overdue.is_empty() { p id="overdue" { "Nothing is overdue." } }
        @else {
            ul id="overdue" { @for (currency, devices, amount) in &portfolio.overdue {
                li { a href="/console/devices?overdue=on" { (devices) " devices" } " owe "
                     (lien_money::format(*amount, currency, Style::Grouped)) }
            } }
            div class="scroll" {
                table id="arrears-by-age" {
                    thead { tr { th { "Days past due" } th { "Devices" } th { "Owed" } } }
                    tbody { @for group in &portfolio.arrears_by_age {
                        tr {
                            td { (age(group.age)) }
                            td { (group.devices) }
                            td { (lien_money::format(group.amount_minor, &group.currency, Style::Grouped)) }
                        }
                    } }
                }
            }
        }
        h2 { "Locks today (UTC)" }
        p id="locks-today" { (locks) " locked, " (unlocks) " unlocked." }
        h2 { "Payments today (UTC)" }
        @if portfolio.payments.is_empty() { p id="payments" { "None yet today." } }
        @else {
            ul id="payments" { @for (currency, count, amount) in &portfolio.payments {
                li { (count) " payments, " (lien_money::format(*amount, currency, Style::Grouped)) }
            } }
        }
        h2 { "Payment to phone, last 24 hours" }
        p id="payment-to-phone" {
            @match (acks.median_us, acks.p99_us) {
                (Some(median), Some(p99)) => {
                    "From a payment's recording to its phone saying it holds the new token: median "
                    (took(median)) ", 99th percentile " (took(p99)) ", over "
                    (acks.acknowledged) " payments."
                }
                _ => "No payment has reached its phone in the last 24 hours.",
            }
            @if acks.waiting > 0 { " " (acks.waiting) " still waiting for their phone." }
        }
        h2 { "Not seen" }
        p id="not-seen" {
            a href={ "/console/devices?not_seen_days=" (NOT_SEEN_DAYS) } {
                (portfolio.not_seen) " devices"
            }
            " have not checked in for " (NOT_SEEN_DAYS) " days or more (or never)."
        }
    };
    page(StatusCode::OK, Some(me), "Overview", body)
}
