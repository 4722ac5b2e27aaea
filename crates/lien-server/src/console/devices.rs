//! The devices: a searchable, filtered list in pages, and one device with why it is in its
//! state, what happens next, its plan, payments and audited history.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use lien_money::Style;
use maud::{Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::{Person, error_box, error_page, page, took, when};
use crate::app::AppState;
use crate::auth::Action;
use crate::clock::from_micros;
use crate::commands::reads::{self, DeviceQuery};
use crate::commands::{device_view, people::SignedIn};
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::wire::{DeviceStateJson, DeviceView, MoneyJson, OfflineCode, PlanJson};

/// The list's query: a search, filters and the page.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    overdue: Option<String>,
    #[serde(default)]
    not_seen_days: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    cursor: Option<String>,
}

impl ListQuery {
    /// The link to the page after `cursor`, with the same filters.
    fn next_link(&self, cursor: &str) -> String {
        let enc = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        let mut link = format!(
            "/console/devices?state={}&not_seen_days={}&policy={}&cursor={}",
            enc(&self.state),
            enc(&self.not_seen_days),
            enc(&self.policy),
            enc(cursor)
        );
        if self.overdue.is_some() {
            link.push_str("&overdue=on");
        }
        link
    }

    /// The CSV export of every device these filters match.
    fn export_link(&self) -> String {
        self.next_link("")
            .replacen("/console/devices?", "/console/devices.csv?", 1)
    }

    /// The filters as the commands layer takes them, or the field that is refused.
    fn device_query(&self) -> Result<DeviceQuery, ApiError> {
        let state = match self.state.as_str() {
            "" => None,
            name => Some(
                name.parse::<DeviceStateJson>()
                    .map_err(|e| ApiError::invalid("state", e))?,
            ),
        };
        let not_seen_days = match self.not_seen_days.trim() {
            "" => None,
            days => Some(days.parse::<u32>().map_err(|_| {
                ApiError::invalid("not_seen_days", "must be a whole number of days")
            })?),
        };
        Ok(DeviceQuery {
            state,
            overdue: self.overdue.is_some(),
            not_seen_days,
            policy: Some(self.policy.trim().to_string()).filter(|p| !p.is_empty()),
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
            limit: Some(PAGE),
        })
    }
}

/// Devices per page.
const PAGE: u32 = 50;

/// The device list: a search by IMEI, status code or contract reference, or a filtered page.
pub async fn list(
    State(state): State<AppState>,
    person: Person,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let me = &person.0;
    let q = match query {
        Ok(Query(q)) => q,
        Err(rejection) => return error_page(Some(me), rejection.into()),
    };
    let (devices, next, error) = if !q.q.trim().is_empty() {
        match reads::find_devices(&state, &me.actor, &q.q).await {
            Ok(found) => (found, None, None),
            Err(err) => (Vec::new(), None, Some(err)),
        }
    } else {
        match q.device_query() {
            Ok(filters) => match reads::list_devices(&state, &me.actor, filters).await {
                Ok(page) => (page.devices, page.next_cursor, None),
                Err(err) => (Vec::new(), None, Some(err)),
            },
            Err(err) => (Vec::new(), None, Some(err)),
        }
    };
    if let Some(err @ (ApiError::Forbidden(_) | ApiError::Internal(_))) = error {
        return error_page(Some(me), err);
    }
    let views: Result<Vec<DeviceView>, ApiError> = devices.iter().map(device_view).collect();
    let views = match views {
        Ok(views) => views,
        Err(err) => return error_page(Some(me), err),
    };
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let body = html! {
        @if me.actor.role.may(Action::Enroll) {
            p { a href="/console/devices/upload" id="upload" { "Enroll devices from a CSV file" } }
        }
        (filters(&q))
        @if let Some(err) = &error { (error_box(err)) }
        @if views.is_empty() && error.is_none() {
            p id="none" { "No devices match." }
        } @else {
            (device_table(&views))
        }
        @if let Some(cursor) = next {
            p { a id="next" href=(q.next_link(&cursor)) { "Next page" } }
        }
        @if q.q.trim().is_empty() {
            p { a id="export" href=(q.export_link()) { "All devices matching these filters, as CSV" } }
        }
    };
    page(status, Some(me), "Devices", body)
}

fn filters(q: &ListQuery) -> Markup {
    html! {
        form method="get" action="/console/devices" id="search" {
            label for="q" { "IMEI, status code or contract reference " }
            input id="q" name="q" value=(q.q) autocomplete="off";
            button type="submit" { "Find" }
        }
        form method="get" action="/console/devices" id="filter" {
            label for="state" { "State " }
            select id="state" name="state" {
                option value="" { "any" }
                @for s in DeviceStateJson::ALL {
                    option value=(s.as_str()) selected[q.state == s.as_str()] { (s.as_str()) }
                }
            }
            " "
            label { input type="checkbox" name="overdue" checked[q.overdue.is_some()]; " overdue" }
            " "
            label for="not_seen_days" { "not seen for days " }
            input id="not_seen_days" name="not_seen_days" value=(q.not_seen_days) inputmode="numeric" size="4";
            " "
            label for="policy" { "policy " }
            select id="policy" name="policy" {
                option value="" { "any" }
                @for p in lien_core::policy::Preset::ALL.map(|p| p.name()).into_iter().chain(["custom"]) {
                    option value=(p) selected[q.policy == p] { (p) }
                }
            }
            " "
            button type="submit" { "Filter" }
        }
    }
}

fn money(m: &MoneyJson) -> String {
    lien_money::format(m.minor, &m.currency, Style::Grouped)
}

fn money_of(m: &lien_core::Money) -> String {
    lien_money::format(m.minor(), m.currency().code(), Style::Grouped)
}

fn device_table(views: &[DeviceView]) -> Markup {
    html! {
        div class="scroll" {
            table id="devices" {
                thead { tr {
                    th { "Contract" } th { "IMEI" } th { "Model" } th { "State" } th { "Why" }
                    th { "Due now" } th { "Last check-in" }
                } }
                tbody {
                    @for d in views {
                        tr {
                            td { a href={ "/console/devices/" (d.id) } { (d.contract_ref) } }
                            td { (d.imei1) }
                            td { (d.model) }
                            td class="state" { (d.decision.state.as_str()) }
                            td { (d.decision.reason.text) }
                            td { (money(&d.decision.amount_due)) }
                            td { @match &d.last_check_in { Some(at) => (when(at)), None => "never" } }
                        }
                    }
                }
            }
        }
    }
}

/// A form that was refused: which, why, and what was typed in it.
pub struct Failed {
    /// The action (see [`super::actions::ACTIONS`]).
    pub action: &'static str,
    /// Why.
    pub error: ApiError,
    /// The form's fields as sent.
    pub typed: HashMap<String, String>,
}

impl Failed {
    fn typed_in(failed: Option<&Failed>, action: &str, field: &str) -> String {
        failed
            .filter(|f| f.action == action)
            .and_then(|f| f.typed.get(field).cloned())
            .unwrap_or_default()
    }
}

/// The device page's query: which action was just done.
#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    done: Option<String>,
}

/// One device: its state and why, what comes next, the plan, payments and the history, and
/// the actions the person's role may take.
pub async fn show(
    State(state): State<AppState>,
    person: Person,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Response {
    let me = &person.0;
    let done = query.ok().and_then(|Query(q)| q.done);
    match render_device(&state, me, &id, done.as_deref(), None, None).await {
        Ok(page) => page,
        Err(err) => error_page(Some(me), err),
    }
}

/// What a done action's notice says (a fixed text per action: nothing from the query is shown).
fn done_notice(action: &str) -> Option<&'static str> {
    Some(match action {
        "payment" => "Payment recorded. The phone is told at once.",
        "reversal" => "Payment reversed.",
        "lock" => "Locked. The phone is told at once.",
        "unlock" => "Unlocked. The phone is told at once.",
        "provisional-unlock" => "Provisionally unlocked.",
        "reminder" => "Reminder sent to the phone.",
        "release" => "Release scheduled; it becomes final after the cancel window.",
        "cancel-release" => "Release cancelled.",
        "policy" => "Policy changed.",
        _ => return None,
    })
}

/// The device page, with a done action's notice, a refused form, or an offline code to read out.
pub async fn render_device(
    state: &AppState,
    me: &SignedIn,
    id: &str,
    done: Option<&str>,
    failed: Option<&Failed>,
    code: Option<&OfflineCode>,
) -> Result<Response, ApiError> {
    let snapshot = reads::visible_snapshot(state, &me.actor, id).await?;
    let view = reads::status_view(state, &snapshot)?;
    let history = reads::history_of(state, &snapshot).await?;
    let appeals = super::appeals::listed(state, &me.actor, None, Some(id.to_string()), 20).await?;
    let plan: Option<PlanJson> = serde_json::from_str(&snapshot.device.enrolled.plan_json).ok();
    let (installments, _) = reads::plan_standing(state, &snapshot)?;
    // Each form that records money carries a key of its own (see `actions::form_key`).
    let form_key = crate::commands::people::random_token()?;
    let reversal_keys = snapshot
        .payments
        .iter()
        .map(|_| crate::commands::people::random_token())
        .collect::<Result<Vec<_>, _>>()?;
    let may = |action| me.actor.role.may(action);
    let d = &view.decision;
    let path = format!("/console/devices/{}", view.id);
    let error_for = |action: &str| {
        failed
            .filter(|f| f.action == action)
            .map(|f| error_box(&f.error))
    };
    let typed = |action: &str, field: &str| Failed::typed_in(failed, action, field);
    let csrf = &me.session.csrf;
    // One of the device's actions: its title, the error it was refused with (if it was), and
    // its form, which carries the session's token.
    let action_form = |title: &str, action: &str, button: &str, fields: Markup| {
        html! {
            h2 { (title) }
            @if let Some(err) = error_for(action) { (err) }
            form class="stack" method="post" action={ (path) "/" (action) } id={ (action) "-form" } {
                input type="hidden" name="csrf" value=(csrf);
                (fields)
                button type="submit" { (button) }
            }
        }
    };
    let body = html! {
        @if let Some(notice) = done.and_then(done_notice) {
            p class="box ok" id="done" role="status" { (notice) }
        }
        @if let Some(code) = code {
            div class="box ok" id="offline-code" {
                p { "Read this response to the borrower; it is shown once:" }
                p { strong { code { (code.response) } } }
                p { "The phone stays unlocked until " (when(&code.unlocked_until)) "." }
            }
        }
        dl id="summary" {
            dt { "Contract" } dd { (view.contract_ref) }
            dt { "Financier" } dd { (snapshot.financier.name) }
            dt { "IMEI" } dd { (view.imei1) @if let Some(second) = &view.imei2 { ", " (second) } }
            dt { "Serial, model" } dd { (view.serial) ", " (view.model) }
            dt { "State" } dd id="state" { strong { (d.state.as_str()) } }
            dt { "Why" } dd id="reason" { (d.reason.text) }
            dt { "Due now" } dd { (money(&d.amount_due)) }
            dt { "Left to pay" } dd { (money(&d.outstanding)) }
            @if d.credit.minor > 0 { dt { "Credit" } dd { (money(&d.credit)) } }
            dt { "Next change" } dd id="next-change" {
                @match (&d.next_change_at, &d.next_restriction_at, d.next_restriction_state) {
                    (_, Some(at), Some(next)) => { (next.as_str()) " on " (when(at)) " unless paid" }
                    (Some(at), _, _) => { "re-evaluated on " (when(at)) }
                    _ => "none scheduled",
                }
            }
            @if let Some(at) = &view.release_final_at {
                dt { "Release" } dd { "final on " (when(at)) }
            }
            dt { "Phone" } dd id="phone" {
                @if view.pending { "not yet set up (no hello)" }
                @else {
                    "last check-in "
                    @match &view.last_check_in { Some(at) => (when(at)), None => "never" }
                    "; holds token " (view.applied_sequence.unwrap_or(0)) " of " (view.token_sequence)
                    @if view.applied_sequence.unwrap_or(0) >= view.token_sequence { " (up to date)" }
                    @else { " (not yet acknowledged)" }
                }
            }
        }
        @if may(Action::RecordPayment) && snapshot.device.released_us.is_none() {
            (action_form("Record a payment", "payment", "Record payment", html! {
                input type="hidden" name="form_key" value=(form_key);
                label for="amount" { "Amount (" (plan.as_ref().map_or("", |p| p.currency.as_str())) ")" }
                input id="amount" name="amount" value=(typed("payment", "amount")) inputmode="decimal" required;
                label for="reference" { "Receipt or transaction reference" }
                input id="reference" name="reference" value=(typed("payment", "reference")) maxlength="64" required;
            }))
        }
        @if may(Action::Lock) && snapshot.device.released_us.is_none() {
            (action_form("Lock", "lock", "Lock", html! {
                label for="message" { "Message on the lock screen (whom to call; nothing personal)" }
                input id="message" name="message" value=(typed("lock", "message")) maxlength="200" required;
                label for="note" { "Private note (never sent to the phone)" }
                input id="note" name="note" value=(typed("lock", "note")) maxlength="500";
                label { input type="checkbox" name="confirm" required; " I confirm: lock this phone now" }
            }))
            (action_form("Reminder", "reminder", "Send reminder", html! {
                label for="reminder-message" { "Message" }
                input id="reminder-message" name="message" value=(typed("reminder", "message")) maxlength="200" required;
                label for="days" { "Days on the phone (default 3)" }
                input id="days" name="days" value=(typed("reminder", "days")) inputmode="numeric";
            }))
        }
        @if may(Action::Unlock) && snapshot.device.released_us.is_none() {
            (action_form("Unlock", "unlock", "Lift manual locks", html! {
                label for="unlock-reason" { "Why" }
                input id="unlock-reason" name="reason" value=(typed("unlock", "reason")) maxlength="200" required;
            }))
        }
        @if may(Action::ProvisionalUnlock) && snapshot.device.released_us.is_none() {
            (action_form("Provisional unlock", "provisional-unlock", "Unlock provisionally", html! {
                label for="provisional-reason" { "Why" }
                input id="provisional-reason" name="reason" value=(typed("provisional-unlock", "reason")) maxlength="200" required;
                label for="provisional-hours" { "Hours" }
                input id="provisional-hours" name="hours" value=(typed("provisional-unlock", "hours")) inputmode="numeric" required;
            }))
            (action_form("Offline unlock code", "offline-code", "Make the code", html! {
                label for="challenge" { "Challenge on the lock screen (8 digits)" }
                input id="challenge" name="challenge" value=(typed("offline-code", "challenge")) inputmode="numeric" maxlength="8" required;
                label for="offline-reason" { "Why" }
                input id="offline-reason" name="reason" value=(typed("offline-code", "reason")) maxlength="200" required;
                label for="offline-hours" { "Hours unlocked (default 48, at most 168)" }
                input id="offline-hours" name="hours" value=(typed("offline-code", "hours")) inputmode="numeric";
            }))
        }
        @if may(Action::ChangePolicy) && snapshot.device.released_us.is_none() {
            (action_form("Lock policy", "policy", "Change policy", html! {
                label for="preset" { "Preset" }
                select id="preset" name="preset" {
                    @for p in ["strict-dealer", "kenya", "india-draft"] {
                        option value=(p) selected[typed("policy", "preset") == p] { (p) }
                    }
                }
                label for="policy-reason" { "Why" }
                input id="policy-reason" name="reason" value=(typed("policy", "reason")) maxlength="200" required;
            }))
        }
        @if may(Action::Lock) && snapshot.device.released_us.is_none() {
            h2 { "Release" }
            @if view.release_final_at.is_some() {
                @if let Some(err) = error_for("cancel-release") { (err) }
                form method="post" action={ (path) "/cancel-release" } id="cancel-release-form" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Cancel the release" }
                }
            } @else {
                @if let Some(err) = error_for("release") { (err) }
                form class="stack" method="post" action={ (path) "/release" } id="release-form" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="release-reason" { "Why" }
                    input id="release-reason" name="reason" value=(typed("release", "reason")) maxlength="200" required;
                    label { input type="checkbox" name="confirm" required; " I confirm: free this phone for good after the cancel window" }
                    button type="submit" { "Release" }
                }
            }
        }
        @if let Some(plan) = &plan {
            h2 { "Plan" }
            p { "Down payment " (lien_money::format(plan.down_payment_minor, &plan.currency, Style::Grouped))
                ", in " (plan.time_zone) }
            div class="scroll" {
                table id="plan" {
                    thead { tr { th { "Due" } th { "Amount" } th { "Paid" } th { "Standing" } } }
                    tbody { @for i in &installments {
                        tr class=[i.late.then_some("late")] {
                            td { (i.due) }
                            td { (money_of(&i.amount)) }
                            td { (money_of(&i.paid)) }
                            td { @if i.paid == i.amount { "paid" }
                                 @else if i.late { "late" }
                                 @else if i.paid.minor() > 0 { "part paid" }
                                 @else { "due" } }
                        }
                    } }
                }
            }
        }
        h2 { "Payments" }
        @if let Some(err) = error_for("reversal") { (err) }
        @if snapshot.payments.is_empty() { p { "None yet." } }
        @else {
            div class="scroll" {
                table id="payments" {
                    thead { tr { th { "Received" } th { "Reference" } th { "Amount" } th { "Phone told" } th { "Reversed" } } }
                    tbody { @for (p, reversal_key) in snapshot.payments.iter().zip(&reversal_keys) {
                        tr {
                            td { (when(&rfc3339(from_micros(p.received_us)))) }
                            td { (p.reference) }
                            td { (lien_money::format(p.amount_minor, &p.currency, Style::Grouped)) }
                            td class="acknowledged" {
                                @match p.acknowledged_us {
                                    Some(at) => { (when(&rfc3339(from_micros(at))))
                                        " (" (took(at - p.recorded_us)) " after it was recorded)" }
                                    None => "not yet acknowledged",
                                }
                            }
                            td {
                                @if let Some(r) = snapshot.reversals.iter().find(|r| r.reference == p.reference) {
                                    (when(&rfc3339(from_micros(r.at_us))))
                                } @else if may(Action::RecordPayment) {
                                    form method="post" action={ (path) "/reversal" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="form_key" value=(reversal_key);
                                        input type="hidden" name="reference" value=(p.reference);
                                        input name="reason" placeholder="why" maxlength="200" required;
                                        label { input type="checkbox" name="confirm" required; " confirm" }
                                        button type="submit" { "Reverse" }
                                    }
                                }
                            }
                        }
                    } }
                }
            }
        }
        h2 { "Appeals" }
        (super::appeals::appeals_table(&appeals))
        h2 { "History" }
        @if history.chain_intact {
            p id="chain" class="box ok" { "The audit chain is intact: every record links to the one before." }
        } @else {
            p id="chain" class="box err" { "The audit chain does not link up: a record was changed or removed." }
        }
        div class="scroll" {
            table id="history" {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Why" } } }
                tbody { @for r in history.records.iter().rev() {
                    tr { td { (when(&r.at)) } td { (r.actor) } td { (r.action) } td { (r.reason) } }
                } }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        Some(me),
        &format!("Device {}", view.contract_ref),
        body,
    ))
}

/// The CSV export: every device the filters match, read from the store a page at a time and
/// sent as it is read, so that a fleet is never held in memory at once.
pub async fn export(
    State(state): State<AppState>,
    person: Person,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let me = person.0;
    if let Some(wait) = super::over_report_limit(&state, &me) {
        return wait;
    }
    let filters = match query
        .map_err(ApiError::from)
        .and_then(|Query(q)| q.device_query())
    {
        Ok(filters) => filters,
        Err(err) => return error_page(Some(&me), err),
    };
    // The first page is read before answering, so that a refusal is a page, not a broken file.
    let first = match reads::list_devices(&state, &me.actor, export_page(&filters, None)).await {
        Ok(first) => first,
        Err(err) => return error_page(Some(&me), err),
    };
    let header =
        "id,contract_ref,imei1,imei2,serial,model,state,reason,amount_due,currency,last_check_in\n";
    // Each step yields a page's lines and reads the next; a read that fails ends the download
    // with an error (the connection is cut), never with a file that looks whole.
    let pages = futures_util::stream::unfold(
        (Some(Ok(first)), filters, state, me),
        |(step, filters, state, me)| async move {
            let page = match step? {
                Ok(page) => page,
                Err(why) => {
                    return Some((Err(std::io::Error::other(why)), (None, filters, state, me)));
                }
            };
            let text = csv_rows(&page.devices);
            let next = match page.next_cursor {
                Some(cursor) => Some(
                    reads::list_devices(&state, &me.actor, export_page(&filters, Some(cursor)))
                        .await
                        .map_err(|err| {
                            tracing::error!(error = %err, "device export stopped");
                            "the device export stopped: reading the next page failed"
                        }),
                ),
                None => None,
            };
            Some((Ok(text), (next, filters, state, me)))
        },
    );
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(header.to_string()) })
            .chain(pages);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"devices.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// A page of the export: the largest the store reads at once.
fn export_page(filters: &DeviceQuery, cursor: Option<String>) -> DeviceQuery {
    DeviceQuery {
        cursor,
        limit: Some(reads::MAX_PAGE),
        ..filters.clone()
    }
}

/// Devices as CSV lines (quoted by the csv crate where a field needs it).
fn csv_rows(devices: &[lien_store::DeviceRecord]) -> String {
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for device in devices {
        let Ok(view) = device_view(device) else {
            continue;
        };
        let d = &view.decision;
        let amount = lien_money::format_decimal(
            d.amount_due.minor,
            lien_money::minor_digits(&d.amount_due.currency).unwrap_or(2),
            Style::Plain,
        );
        // The reason's word, as the JSON API writes it.
        let reason = serde_json::to_value(d.reason.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = out.write_record([
            view.id.as_str(),
            &inert(&view.contract_ref),
            &view.imei1,
            view.imei2.as_deref().unwrap_or(""),
            &inert(&view.serial),
            &inert(&view.model),
            d.state.as_str(),
            &reason,
            &amount,
            &d.amount_due.currency,
            view.last_check_in.as_deref().unwrap_or(""),
        ]);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A financier's text as a spreadsheet cell that stays text: one that a spreadsheet would read
/// as a formula (starting `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`,
/// which spreadsheets do not show but which keeps the cell text.
pub(super) fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn a_cell_a_spreadsheet_would_run_is_kept_as_text() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(inert("C-1001"), "C-1001");
    }
}
