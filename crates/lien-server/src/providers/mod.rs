//! Payment providers that call Lien themselves, rather than through a financier's own code,
//! and their statements.
//!
//! Each provider module reads the provider's callbacks into typed values and manages the
//! financier's endpoint (its secret and where callbacks may come from); the device changes a
//! callback causes are commands (`commands::mobile_money`), like every other device change.

pub mod generic;
pub mod mpesa;
pub mod statement;

use lien_store::UnmatchedPaymentRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::from_micros;
use crate::domain::rfc3339;

/// A payment a provider confirmed that matched no device, as the financier sees it. The payer
/// is not shown: Lien keeps only a keyed hash of the number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnmatchedPaymentView {
    /// `unm_` and hex.
    pub id: String,
    /// The financier whose endpoint received it.
    pub financier_id: String,
    /// The provider, e.g. `mpesa`.
    pub provider: String,
    /// The provider's transaction id (M-Pesa's `TransID`).
    pub reference: String,
    /// The account number the payer typed.
    pub account: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When the provider took the payment (RFC 3339).
    pub received_at: String,
    /// Why it matched no device.
    pub reason: String,
    /// When Lien kept it.
    pub recorded_at: String,
    /// `open`, or `assigned` once recorded on a device.
    pub status: String,
    /// The device it was assigned to.
    pub device_id: Option<String>,
    /// When it was assigned.
    pub assigned_at: Option<String>,
}

impl UnmatchedPaymentView {
    /// The view of a stored row.
    pub fn of(record: &UnmatchedPaymentRecord) -> UnmatchedPaymentView {
        UnmatchedPaymentView {
            id: record.id.clone(),
            financier_id: record.financier_id.clone(),
            provider: record.provider.clone(),
            reference: record.provider_ref.clone(),
            account: record.account.clone(),
            amount_minor: record.amount_minor,
            currency: record.currency.clone(),
            received_at: rfc3339(from_micros(record.received_us)),
            reason: record.reason.clone(),
            recorded_at: rfc3339(from_micros(record.recorded_us)),
            status: if record.assigned_device_id.is_some() {
                "assigned"
            } else {
                "open"
            }
            .into(),
            device_id: record.assigned_device_id.clone(),
            assigned_at: record.assigned_us.map(|us| rfc3339(from_micros(us))),
        }
    }
}

/// The financier's unmatched payments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnmatchedPaymentList {
    /// Newest first (by when Lien kept them), at most `limit`.
    pub payments: Vec<UnmatchedPaymentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Assigns an unmatched payment to a device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRequest {
    /// The financier's device the payment was meant for.
    pub device_id: String,
}
