//! The overview: a financier's portfolio at a glance (the platform's, for its own roles), each
//! figure a link to the devices behind it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use lien_money::Style;
use maud::html;

use super::{Person, error_page, page};
use crate::app::AppState;
use crate::commands::reads::{self, NOT_SEEN_DAYS};
use crate::wire::DeviceStateJson;

/// The overview page.
pub async fn overview(State(state): State<AppState>, person: Person) -> Response {
    let me = &person.0;
    let portfolio = match reads::portfolio(&state, &me.actor).await {
        Ok(portfolio) => portfolio,
        Err(err) => return error_page(Some(me), err),
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
        }
        h2 { "Payments today (UTC)" }
        @if portfolio.payments.is_empty() { p id="payments" { "None yet today." } }
        @else {
            ul id="payments" { @for (currency, count, amount) in &portfolio.payments {
                li { (count) " payments, " (lien_money::format(*amount, currency, Style::Grouped)) }
            } }
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
