//! Reading devices, for the API and the console alike: one device with its pending release,
//! its audit history, a filtered page of a financier's devices, and a search by IMEI, status
//! code or contract reference. Each read checks the role and hides other financiers' devices
//! exactly as the commands that change them do.

use lien_store::{DeviceFilter, DeviceRecord, DeviceSnapshot, StoreError};

use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::{from_micros, micros};
use crate::commands::{device_view, pending_release};
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::wire::{AuditView, DeviceStateJson, DeviceView, HistoryView, StatusCodeView};

/// The largest page of devices.
pub const MAX_PAGE: u32 = 500;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 50;

/// The longest "not seen for" filter, in days: a hundred years.
pub const MAX_NOT_SEEN_DAYS: u32 = 36_500;

/// Which devices to list.
#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    /// Only devices in this state.
    pub state: Option<DeviceStateJson>,
    /// Only devices with an amount due.
    pub overdue: bool,
    /// Only devices under this policy: a preset's name, or `custom` for settings of the
    /// financier's own.
    pub policy: Option<String>,
    /// Only devices not seen for at least this many days.
    pub not_seen_days: Option<u32>,
    /// The id after which the page starts (the previous page's `next_cursor`).
    pub cursor: Option<String>,
    /// Page size, 1 to [`MAX_PAGE`]; [`DEFAULT_PAGE`] when `None`.
    pub limit: Option<u32>,
}

/// A page of devices.
#[derive(Debug, Clone)]
pub struct DeviceList {
    /// The devices, in id order.
    pub devices: Vec<DeviceRecord>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

/// The device's snapshot, if the actor may read it; another financier's is "not found".
pub async fn visible_snapshot(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<DeviceSnapshot, ApiError> {
    actor.require(Action::Read)?;
    let snapshot = state.store.snapshot(id).await?;
    if !actor.sees_financier(&snapshot.device.enrolled.financier_id) {
        return Err(ApiError::NotFound("device"));
    }
    Ok(snapshot)
}

/// The device as the financier sees it, with the instant its pending release becomes final.
pub fn status_view(state: &AppState, snapshot: &DeviceSnapshot) -> Result<DeviceView, ApiError> {
    let mut view = device_view(&snapshot.device)?;
    let now = state.clock.now();
    view.release_final_at = pending_release(snapshot, now).map(|o| rfc3339(from_micros(o.from_us)));
    view.hardship_pause_until = super::hardship::pause_until(snapshot, now).map(rfc3339);
    view.hardship_request = super::hardship::request_view(snapshot);
    Ok(view)
}

/// The device as [`status_view`] shows it, with every schedule it was held to: the plans a
/// restructuring replaced, oldest first, and the one in force.
pub async fn device_detail(
    state: &AppState,
    snapshot: &DeviceSnapshot,
) -> Result<DeviceView, ApiError> {
    let mut view = status_view(state, snapshot)?;
    let parse = |json: &str| -> Result<crate::wire::PlanJson, ApiError> {
        serde_json::from_str(json)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("stored plan")))
    };
    let earlier = state
        .store
        .plan_versions(&snapshot.device.enrolled.id)
        .await?;
    let mut plans = earlier
        .iter()
        .map(|v| {
            Ok(crate::wire::PlanVersionView {
                version: v.version,
                in_force: false,
                plan: parse(&v.plan_json)?,
                superseded_at: Some(rfc3339(from_micros(v.superseded_us))),
                superseded_by: Some(v.actor.clone()),
                reason: Some(v.reason.clone()),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    plans.push(crate::wire::PlanVersionView {
        version: earlier.last().map_or(1, |v| v.version + 1),
        in_force: true,
        plan: parse(&snapshot.device.enrolled.plan_json)?,
        superseded_at: None,
        superseded_by: None,
        reason: None,
    });
    view.plans = Some(plans);
    Ok(view)
}

/// The plan of a device the caller has already read, each installment with what is paid of it
/// now (payments cover the oldest first, as the decision counts them), and the credit beyond
/// the plan.
pub fn plan_standing(
    state: &AppState,
    snapshot: &DeviceSnapshot,
) -> Result<(Vec<lien_core::InstallmentStanding>, i128), ApiError> {
    let inputs = crate::domain::Inputs::of(snapshot)?;
    let now = state.clock.now();
    let today = now.to_zoned(inputs.plan.time_zone().clone()).date();
    Ok(lien_core::installments_paid(
        &inputs.plan,
        inputs.payments.paid_at(now),
        today,
    ))
}

/// The device's audit chain, oldest first, and whether every hash links up.
pub async fn history(state: &AppState, actor: &Actor, id: &str) -> Result<HistoryView, ApiError> {
    actor.require(Action::Read)?;
    actor.visible(state.store.device(id).await?)?;
    chain_view(state, id).await
}

/// The audit chain of a device the caller has already read (with [`visible_snapshot`]), so
/// that a page showing both reads the device once.
pub async fn history_of(
    state: &AppState,
    snapshot: &DeviceSnapshot,
) -> Result<HistoryView, ApiError> {
    chain_view(state, &snapshot.device.enrolled.id).await
}

async fn chain_view(state: &AppState, id: &str) -> Result<HistoryView, ApiError> {
    let records = state.store.audit_chain(id).await?;
    let chain_intact = lien_store::audit::verify_chain(&records).is_ok();
    let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    Ok(HistoryView {
        records: records
            .iter()
            .map(|r| AuditView {
                seq: r.seq,
                at: rfc3339(from_micros(r.entry.at_us)),
                actor: r.entry.actor.clone(),
                action: r.entry.action.clone(),
                reason: r.entry.reason.clone(),
                before: parse(&r.entry.before_json),
                after: parse(&r.entry.after_json),
                prev_hash: hex::encode(&r.prev_hash),
                hash: hex::encode(&r.hash),
            })
            .collect(),
        chain_intact,
    })
}

/// A page of the actor's devices (a platform role's: every financier's), filtered.
pub async fn list_devices(
    state: &AppState,
    actor: &Actor,
    query: DeviceQuery,
) -> Result<DeviceList, ApiError> {
    actor.require(Action::Read)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    if query.not_seen_days.is_some_and(|d| d > MAX_NOT_SEEN_DAYS) {
        return Err(ApiError::invalid(
            "not_seen_days",
            format!("must be at most {MAX_NOT_SEEN_DAYS}"),
        ));
    }
    let policy_json = query.policy.as_deref().map(policy_match).transpose()?;
    let now = state.clock.now();
    let filter = DeviceFilter {
        financier_id: actor.financier_id.clone(),
        policy_json,
        state: query.state.map(|s| s.as_str().to_string()),
        overdue: query.overdue,
        not_seen_since_us: query
            .not_seen_days
            .map(|d| micros(now) - i64::from(d) * 86_400_000_000),
        after_id: query.cursor,
        limit: limit + 1,
    };
    let mut devices = state.store.list_devices(&filter).await?;
    let next_cursor = if devices.len() > limit as usize {
        devices.truncate(limit as usize);
        devices.last().map(|d| d.enrolled.id.clone())
    } else {
        None
    };
    Ok(DeviceList {
        devices,
        next_cursor,
    })
}

/// What a device's stored policy is for the filter `policy` (a preset's name, or `custom`): the
/// text the commands store for that preset, or none of the presets' texts.
fn policy_match(policy: &str) -> Result<lien_store::TextMatch, ApiError> {
    let stored = |preset: lien_core::policy::Preset| {
        serde_json::to_string(&crate::wire::PolicyJson::Preset(preset.name().to_string()))
            .map_err(|e| ApiError::Internal(e.into()))
    };
    let presets = lien_core::policy::Preset::ALL;
    if policy == "custom" {
        let all = presets.into_iter().map(stored).collect::<Result<_, _>>()?;
        return Ok(lien_store::TextMatch::NoneOf(all));
    }
    match lien_core::policy::Preset::from_name(policy) {
        Some(preset) => Ok(lien_store::TextMatch::Is(stored(preset)?)),
        None => Err(ApiError::invalid(
            "policy",
            "one of strict-dealer, kenya, india-draft or custom",
        )),
    }
}

/// The tokens with this status code on the actor's devices, each with its device's current
/// decision: what support reads off a lock screen to know which token the phone holds.
pub async fn status_code_tokens(
    state: &AppState,
    actor: &Actor,
    code: &str,
) -> Result<Vec<StatusCodeView>, ApiError> {
    actor.require(Action::Read)?;
    if code.len() != 8 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid("code", "a status code is 8 digits"));
    }
    let mut views = Vec::new();
    for m in state.store.tokens_by_status_code(code).await? {
        if !actor.sees_financier(&m.financier_id) {
            continue;
        }
        let device = state.store.device(&m.device_id).await?;
        let token_state = m
            .state
            .parse()
            .map_err(|e: lien_proto::UnknownTokenState| {
                ApiError::Internal(anyhow::anyhow!("stored token of {}: {e}", m.device_id))
            })?;
        views.push(StatusCodeView {
            device_id: m.device_id,
            sequence: m.sequence,
            state: token_state,
            issued_at: rfc3339(from_micros(m.issued_us)),
            current: crate::domain::stored_view(&device.decision)?,
        });
    }
    if views.is_empty() {
        return Err(ApiError::NotFound("status code"));
    }
    Ok(views)
}

/// The actor's devices that `text` names: an IMEI (15 digits, spaces and dashes ignored), a
/// status code from a lock screen (8 digits; rate-limited per actor like the API's look-up),
/// or a contract reference (exactly as enrolled). Empty when none does.
pub async fn find_devices(
    state: &AppState,
    actor: &Actor,
    text: &str,
) -> Result<Vec<DeviceRecord>, ApiError> {
    actor.require(Action::Read)?;
    let text = text.trim();
    let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let mut ids: Vec<String> = Vec::new();
    if digits.len() == 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        match state.store.device_by_imei(&digits).await {
            Ok(device) => ids.push(device.enrolled.id),
            Err(StoreError::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
    } else if digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Err(limited) = state.status_code_limit.check(actor.key_id.clone()) {
            return Err(ApiError::Forbidden(format!(
                "too many status-code look-ups; try again in {} seconds",
                limited.retry_after_secs
            )));
        }
        for m in state.store.tokens_by_status_code(&digits).await? {
            ids.push(m.device_id);
        }
    }
    if !text.is_empty() && text.len() <= 64 {
        let financiers = match &actor.financier_id {
            Some(own) => vec![own.clone()],
            None => state
                .store
                .financiers()
                .await?
                .into_iter()
                .map(|f| f.id)
                .collect(),
        };
        for financier in financiers {
            match state
                .store
                .device_id_by_contract_ref(&financier, text)
                .await
            {
                Ok(id) => ids.push(id),
                Err(StoreError::NotFound) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    ids.sort();
    ids.dedup();
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let device = state.store.device(&id).await?;
        if actor.sees_financier(&device.enrolled.financier_id) {
            found.push(device);
        }
    }
    Ok(found)
}

/// How many days without a check-in the overview counts as "not seen".
pub const NOT_SEEN_DAYS: i64 = 7;

/// The days past due that end the first three of the arrears' age groups.
pub const ARREARS_AGES: [i64; 3] = [30, 60, 90];

/// The actor's portfolio at the server's now: devices by state, overdue (and for how long, in
/// the groups of [`ARREARS_AGES`]), not seen for [`NOT_SEEN_DAYS`], and payments since midnight
/// UTC.
pub async fn portfolio(state: &AppState, actor: &Actor) -> Result<lien_store::Portfolio, ApiError> {
    actor.require(Action::Read)?;
    let now = state.clock.now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let not_seen_since = now - jiff::SignedDuration::from_hours(24 * NOT_SEEN_DAYS);
    let cutoff = |days: i64| {
        today
            .checked_sub(jiff::Span::new().days(days))
            .unwrap_or(today)
            .to_string()
    };
    Ok(state
        .store
        .portfolio(
            actor.financier_id.as_deref(),
            micros(not_seen_since),
            micros(midnight_utc(now)?),
            &ARREARS_AGES.map(cutoff),
        )
        .await?)
}

/// The start of the UTC day of `now`.
fn midnight_utc(now: jiff::Timestamp) -> Result<jiff::Timestamp, ApiError> {
    Ok(now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .start_of_day()
        .map_err(|e| ApiError::Internal(e.into()))?
        .timestamp())
}

/// The actor's locks and unlocks since midnight UTC.
pub async fn locks_today(state: &AppState, actor: &Actor) -> Result<(i64, i64), ApiError> {
    actor.require(Action::Read)?;
    let now = state.clock.now();
    let days = state
        .store
        .locks_by_day(
            actor.financier_id.as_deref(),
            micros(midnight_utc(now)?),
            micros(now) + 1,
        )
        .await?;
    Ok(days
        .iter()
        .fold((0, 0), |(l, u), d| (l + d.locks, u + d.unlocks)))
}

/// How fast the actor's payments of the last 24 hours reached their phones.
pub async fn payment_acks(
    state: &AppState,
    actor: &Actor,
) -> Result<lien_store::PaymentAcks, ApiError> {
    actor.require(Action::Read)?;
    let now = state.clock.now();
    let day_ago = now - jiff::SignedDuration::from_hours(24);
    Ok(state
        .store
        .payment_acks(
            actor.financier_id.as_deref(),
            micros(day_ago),
            micros(now) + 1,
        )
        .await?)
}

/// The actor's locks and unlocks in a period, by day.
pub async fn locks_by_day(
    state: &AppState,
    actor: &Actor,
    period: (i64, i64),
) -> Result<Vec<lien_store::DayLocks>, ApiError> {
    actor.require(Action::Read)?;
    Ok(state
        .store
        .locks_by_day(actor.financier_id.as_deref(), period.0, period.1)
        .await?)
}

/// The longest period a report covers, in days.
pub const MAX_REPORT_DAYS: i64 = 366;

/// A report's period from the dates a person typed (`YYYY-MM-DD`, UTC; `to` included), as
/// `[from_us, to_us)`; at most [`MAX_REPORT_DAYS`].
pub fn report_period(from: &str, to: &str) -> Result<(i64, i64), ApiError> {
    let day = |field: &str, text: &str| {
        text.trim()
            .parse::<jiff::civil::Date>()
            .map_err(|_| ApiError::invalid(field, "is not a date such as 2026-02-05"))
    };
    let (first, last) = (day("from", from)?, day("to", to)?);
    if last < first {
        return Err(ApiError::invalid("to", "is before from"));
    }
    let start = |d: jiff::civil::Date| -> Result<i64, ApiError> {
        Ok(micros(
            d.to_zoned(jiff::tz::TimeZone::UTC)
                .map_err(|_| ApiError::invalid("from", "is out of the range of dates Lien keeps"))?
                .timestamp(),
        ))
    };
    let end = last
        .tomorrow()
        .map_err(|_| ApiError::invalid("to", "is too far ahead"))?;
    let (from_us, to_us) = (start(first)?, start(end)?);
    if to_us - from_us > MAX_REPORT_DAYS * 86_400_000_000 {
        return Err(ApiError::invalid(
            "to",
            format!("a report covers at most {MAX_REPORT_DAYS} days"),
        ));
    }
    Ok((from_us, to_us))
}

/// A page of the actor's activity in a period (see [`lien_store::Reports::activity`]).
pub async fn activity(
    state: &AppState,
    actor: &Actor,
    period: (i64, i64),
    after: Option<&lien_store::ActivityCursor>,
    limit: u32,
) -> Result<Vec<lien_store::AuditRecord>, ApiError> {
    actor.require(Action::Read)?;
    Ok(state
        .store
        .activity(
            actor.financier_id.as_deref(),
            period.0,
            period.1,
            after,
            limit,
        )
        .await?)
}

/// The actor's payments in a period, by day and currency.
pub async fn payments_by_day(
    state: &AppState,
    actor: &Actor,
    period: (i64, i64),
) -> Result<Vec<lien_store::DayPayments>, ApiError> {
    actor.require(Action::Read)?;
    Ok(state
        .store
        .payments_by_day(actor.financier_id.as_deref(), period.0, period.1)
        .await?)
}
