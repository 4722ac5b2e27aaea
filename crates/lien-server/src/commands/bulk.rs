//! Enrolling many devices from a CSV file (the API's `POST /v1/devices/bulk` and the console's
//! upload): the file's columns, reading each row into an enrollment, and enrolling the rows
//! one by one. Each row is its own enrollment: a refused row writes nothing and does not stop
//! the others.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::commands;
use crate::commands::enrollment::own_financier;
use crate::error::ApiError;
use crate::wire::{EnrollRequest, PlanJson, PolicyJson};

/// One row's outcome in a bulk enrollment.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkRow {
    /// Line number in the file, counting the header as line 1.
    pub line: usize,
    /// The row's contract reference.
    pub contract_ref: String,
    /// The new device, when enrolled.
    pub device_id: Option<String>,
    /// Why the row was refused; nothing of it was written.
    pub error: Option<String>,
}

/// The result of a bulk enrollment.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkResult {
    /// Rows enrolled.
    pub enrolled: usize,
    /// Rows refused.
    pub failed: usize,
    /// Every row, in file order.
    pub rows: Vec<BulkRow>,
}

/// A CSV row of a bulk enrollment. `installments` is `DATE:AMOUNT` pairs separated by `;`.
#[derive(Debug, Deserialize)]
struct CsvRow {
    contract_ref: String,
    imei1: String,
    #[serde(default)]
    imei2: Option<String>,
    serial: String,
    model: String,
    currency: String,
    time_zone: String,
    #[serde(default)]
    down_payment_minor: Option<i64>,
    installments: String,
    policy: String,
}

impl CsvRow {
    fn request(self) -> Result<EnrollRequest, ApiError> {
        let installments = self
            .installments
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|pair| {
                let (due, amount) = pair.trim().split_once(':').ok_or_else(|| {
                    ApiError::invalid("installments", format!("{pair:?} is not DATE:AMOUNT"))
                })?;
                Ok(crate::wire::InstallmentJson {
                    due: due.to_string(),
                    amount_minor: amount.trim().parse().map_err(|_| {
                        ApiError::invalid(
                            "installments",
                            format!("{amount:?} is not an amount in minor units"),
                        )
                    })?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(EnrollRequest {
            contract_ref: self.contract_ref,
            imei1: self.imei1,
            imei2: self.imei2.filter(|s| !s.trim().is_empty()),
            serial: self.serial,
            model: self.model,
            plan: PlanJson {
                currency: self.currency,
                time_zone: self.time_zone,
                down_payment_minor: self.down_payment_minor.unwrap_or(0),
                installments,
            },
            policy: PolicyJson::Preset(self.policy),
        })
    }
}

/// The columns of a bulk enrollment CSV; the header row must name them all.
pub const BULK_COLUMNS: [&str; 10] = [
    "contract_ref",
    "imei1",
    "imei2",
    "serial",
    "model",
    "currency",
    "time_zone",
    "down_payment_minor",
    "installments",
    "policy",
];

/// A header row that lacks a required column, or names one twice or one Lien does not know, would fail
/// every row the same way: it is refused as a whole (400) before any row is read.
fn check_bulk_header(headers: &csv::StringRecord) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for name in headers {
        if !BULK_COLUMNS.contains(&name) {
            return Err(ApiError::BadRequest(format!(
                "CSV header: unknown column {name:?}; the columns are {}",
                BULK_COLUMNS.join(",")
            )));
        }
        if !seen.insert(name) {
            return Err(ApiError::BadRequest(format!(
                "CSV header: column {name:?} appears twice"
            )));
        }
    }
    // Only the columns that may be empty may be left out.
    let missing: Vec<&str> = BULK_COLUMNS
        .iter()
        .copied()
        .filter(|c| !seen.contains(c) && !["imei2", "down_payment_minor"].contains(c))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "CSV header: missing column(s) {}",
            missing.join(",")
        )));
    }
    Ok(())
}

/// Opens a bulk CSV body: a reader over its rows, and its header row.
pub fn bulk_csv_reader(body: &[u8]) -> Result<(csv::Reader<&[u8]>, csv::StringRecord), ApiError> {
    let (reader, headers) = crate::input::csv_reader(body)?;
    check_bulk_header(&headers)?;
    Ok((reader, headers))
}

/// Reads one row of a bulk CSV: its contract reference and the enrollment it asks for, or why
/// the row is refused. An error means the row could not be read at all (it has no contract
/// reference to report).
pub fn bulk_csv_row(
    headers: &csv::StringRecord,
    record: Result<csv::StringRecord, csv::Error>,
) -> Result<(String, Result<EnrollRequest, ApiError>), ApiError> {
    let record = record.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(column) = record
        .iter()
        .position(|field| field.contains('\0'))
        .and_then(|i| headers.get(i))
    {
        return Err(ApiError::invalid(column, crate::no_nul::NUL_PROBLEM));
    }
    let contract_ref = record.get(
        headers
            .iter()
            .position(|h| h == "contract_ref")
            .unwrap_or(usize::MAX),
    );
    let contract_ref = contract_ref.unwrap_or_default().to_string();
    let request = record
        .deserialize::<CsvRow>(Some(headers))
        .map_err(|e| ApiError::BadRequest(e.to_string()))
        .and_then(CsvRow::request);
    Ok((contract_ref, request))
}

/// The most rows one bulk request may carry.
const BULK_MAX_ROWS: usize = 20_000;

/// Whether the actor may start a bulk enrollment now: a role that enrolls, and room among the
/// server's bulk jobs (see [`super::bulk_jobs`]). Asked before the file is read, so neither a
/// role that may not enroll nor a financier already enrolling a file makes the server hold one.
pub fn admit(state: &AppState, actor: &Actor) -> Result<(), ApiError> {
    actor.require(Action::Enroll)?;
    state.bulk_jobs.room_for(actor)
}

/// Enrolls every row of a bulk CSV for the actor's financier; returns each row's outcome.
/// The header is checked first: a header that would fail every row is refused as a whole. It
/// runs as one of the server's bulk jobs, so the API and the console share their limits (one
/// file per financier at a time, a few per server), and a client that goes away does not stop
/// it halfway.
pub async fn enroll_csv(
    state: &AppState,
    actor: &Actor,
    body: &[u8],
) -> Result<Arc<BulkResult>, ApiError> {
    let id = state.bulk_jobs.start(state, actor, body).await?;
    state.bulk_jobs.finished(actor, &id).await
}

/// A bulk CSV read and checked as a whole, its rows not yet enrolled.
pub struct BulkFile {
    financier: lien_store::Financier,
    headers: csv::StringRecord,
    records: Vec<Result<csv::StringRecord, csv::Error>>,
}

impl BulkFile {
    /// How many rows it has.
    pub fn rows(&self) -> usize {
        self.records.len()
    }
}

/// Reads a bulk CSV for the actor's financier: refused as a whole (nothing enrolled) for a
/// role that may not enroll, a header that would fail every row, or too many rows.
pub async fn read_csv(state: &AppState, actor: &Actor, body: &[u8]) -> Result<BulkFile, ApiError> {
    actor.require(Action::Enroll)?;
    let financier = own_financier(state, actor).await?;
    let (mut reader, headers) = bulk_csv_reader(body)?;
    // Every record is read before any is enrolled: a file over the limit is refused whole,
    // not after its first rows were written.
    let records: Vec<_> = reader.records().take(BULK_MAX_ROWS + 1).collect();
    if records.len() > BULK_MAX_ROWS {
        return Err(ApiError::BadRequest(format!(
            "at most {BULK_MAX_ROWS} rows per request; split the file"
        )));
    }
    Ok(BulkFile {
        financier,
        headers,
        records,
    })
}

/// Enrolls the rows of `file`, each on its own (a refused row writes nothing and does not stop
/// the others), telling `progress` how many are done after each.
pub async fn enroll_rows(
    state: &AppState,
    actor: &Actor,
    file: BulkFile,
    progress: impl Fn(usize),
) -> Result<BulkResult, ApiError> {
    let BulkFile {
        financier,
        headers,
        records,
    } = file;
    let mut result = BulkResult {
        enrolled: 0,
        failed: 0,
        rows: Vec::new(),
    };
    for (i, record) in records.into_iter().enumerate() {
        let line = i + 2;
        let (contract_ref, outcome) = match bulk_csv_row(&headers, record) {
            Ok((contract_ref, req)) => {
                let outcome: Result<String, ApiError> = async {
                    let stored = commands::enroll_row(state, &financier, actor, &req?).await?;
                    Ok(stored.enrolled.id)
                }
                .await;
                (contract_ref, outcome)
            }
            Err(e) => (String::new(), Err(e)),
        };
        match outcome {
            Ok(id) => {
                result.enrolled += 1;
                result.rows.push(BulkRow {
                    line,
                    contract_ref,
                    device_id: Some(id),
                    error: None,
                });
            }
            Err(ApiError::Internal(e)) => return Err(ApiError::Internal(e)),
            Err(e) => {
                result.failed += 1;
                result.rows.push(BulkRow {
                    line,
                    contract_ref,
                    device_id: None,
                    error: Some(e.to_string()),
                });
            }
        }
        progress(i + 1);
    }
    if result.enrolled > 0 {
        state.scheduler_wake.notify_one();
    }
    Ok(result)
}
