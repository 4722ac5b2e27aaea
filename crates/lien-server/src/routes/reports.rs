//! Reports for a financier's own systems: the payments whose unlock broke the policy's promise.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Actor;
use crate::clock::from_micros;
use crate::commands::late_unlocks::{self, LateUnlock};
use crate::commands::reads;
use crate::domain::rfc3339;
use crate::error::{ApiError, ErrorBody};
use crate::wire::MoneyJson;

/// The period of a report: UTC dates, both included.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    from: String,
    to: String,
}

/// A payment whose unlock broke its policy's promise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LateUnlockView {
    /// The device.
    pub device_id: String,
    /// The payment's reference.
    pub reference: String,
    /// The payment.
    pub amount: MoneyJson,
    /// When Lien recorded the payment.
    pub recorded_at: String,
    /// When the phone acknowledged the token that lifted its restriction; absent: not yet.
    pub acknowledged_at: Option<String>,
    /// Seconds from recording to acknowledgement (to now, when not acknowledged yet).
    pub delay_seconds: i64,
    /// The promise it broke, in minutes.
    pub promised_minutes: u32,
    /// Owed to the borrower under the policy: its compensation for each started day beyond
    /// the promise. Absent when the policy names none, or names it in another currency.
    pub compensation: Option<MoneyJson>,
}

/// The late unlocks of a period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LateUnlocksView {
    /// By recording time.
    pub late: Vec<LateUnlockView>,
    /// More payments were slow than listed (at most 1,000 are read); narrow the period.
    pub truncated: bool,
}

impl LateUnlockView {
    fn of(l: &LateUnlock) -> LateUnlockView {
        let p = &l.payment;
        LateUnlockView {
            device_id: p.device_id.clone(),
            reference: p.reference.clone(),
            amount: MoneyJson {
                minor: p.amount_minor,
                currency: p.currency.clone(),
            },
            recorded_at: rfc3339(from_micros(p.recorded_us)),
            acknowledged_at: p.acked_us.map(|t| rfc3339(from_micros(t))),
            delay_seconds: l.delay.as_secs(),
            promised_minutes: l.promise.within_minutes,
            compensation: l.compensation.map(|m| MoneyJson {
                minor: m.minor(),
                currency: m.currency().code().to_string(),
            }),
        }
    }
}

/// The payments whose unlock took longer than the device's policy promises.
#[utoipa::path(
    get,
    path = "/v1/reports/late-unlocks",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("from" = String, Query, description = "First day of the period (UTC date, `YYYY-MM-DD`), by the payments' recording."),
        ("to" = String, Query, description = "Last day of the period, included; at most 366 days after `from`."),
    ),
    responses(
        (status = 200, description = "The caller's payments (every financier's for the platform's roles) that lifted a phone's restriction later than the policy's `unlock_promise`: from Lien's recording of the payment to the phone's acknowledgement of the token it issued, or to now when the phone has not acknowledged it yet. With the compensation the policy defines for each started day beyond the promise.", body = LateUnlocksView),
        (status = 400, description = "A query parameter is missing or unknown.", body = ErrorBody),
        (status = 403, description = "The role may not read.", body = ErrorBody),
        (status = 422, description = "`from` or `to` is not a date, `to` is before `from`, or the period is longer than 366 days.", body = ErrorBody),
    )
)]
pub async fn late_unlocks(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Json<LateUnlocksView>, ApiError> {
    let Query(q) = query?;
    let period = reads::report_period(&q.from, &q.to)?;
    let report = late_unlocks::late_unlocks(&state, &actor, period).await?;
    Ok(Json(LateUnlocksView {
        late: report.late.iter().map(LateUnlockView::of).collect(),
        truncated: report.truncated,
    }))
}
