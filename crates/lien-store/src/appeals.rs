//! Appeals as stored (issue 6), and the public IMEI history. The store knows rows, not the
//! domain: the claim and the status are words the server writes.

use async_trait::async_trait;

use crate::StoreError;

/// An uploaded document as stored. The bytes are kept by the server's attachment store under
/// `path`: a file under the data directory, or a row of [`Attachments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRecord {
    /// The document's key in the attachment store: `appeals/<reference>.<ext>`, which is also
    /// its path relative to the data directory when the store is local.
    pub path: String,
    /// The media type Lien recognised from the content (not the one the client declared).
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
    /// SHA-256 of the content.
    pub sha256: Vec<u8>,
}

/// An appeal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppealRecord {
    /// The unguessable reference the borrower follows it by.
    pub reference: String,
    /// The device appealed about.
    pub device_id: String,
    /// The device's financier, who answers.
    pub financier_id: String,
    /// `paid`, `owner` or `wrong_lock`.
    pub claim: String,
    /// How the financier reaches the borrower.
    pub contact: String,
    /// The borrower's words.
    pub statement: String,
    /// For `paid`: the payment's reference.
    pub payment_reference: Option<String>,
    /// For `paid`: the date paid, `YYYY-MM-DD`.
    pub paid_on: Option<String>,
    /// For `paid`: the amount, minor units.
    pub amount_minor: Option<i64>,
    /// For `paid`: its currency.
    pub currency: Option<String>,
    /// `open`, `accepted` or `rejected`.
    pub status: String,
    /// When it was opened.
    pub opened_us: i64,
    /// When the financier must have answered.
    pub deadline_us: i64,
    /// For `paid`: the end of the provisional unlock that starts at the deadline if unanswered.
    pub unlock_until_us: Option<i64>,
    /// When it was answered.
    pub decided_us: Option<i64>,
    /// Who answered (an API key id).
    pub decided_by: Option<String>,
    /// The answer's reason, shown to the borrower.
    pub decision_reason: Option<String>,
    /// The uploaded document, if any.
    pub attachment: Option<AttachmentRecord>,
}

/// The appeal part of a device change, written in the change's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppealWrite {
    /// A new appeal. Refused with a conflict while another appeal of the device is open.
    Open(Box<AppealRecord>),
    /// The answer to an open appeal. Refused with a conflict if it is no longer open.
    Decide {
        /// Which appeal.
        reference: String,
        /// `accepted` or `rejected`.
        status: String,
        /// When.
        decided_us: i64,
        /// Who.
        decided_by: String,
        /// Why.
        reason: String,
    },
}

/// Filters of the appeal list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppealFilter {
    /// Only this financier's appeals; `None` for platform-wide readers.
    pub financier_id: Option<String>,
    /// Only appeals with this status.
    pub status: Option<String>,
    /// Only appeals about this device.
    pub device_id: Option<String>,
    /// At most this many, newest first (or, with `soonest_deadline_first`, the ones whose
    /// answer is due soonest first).
    pub limit: u32,
    /// Order by the response deadline, soonest first: a queue to work through.
    pub soonest_deadline_first: bool,
}

/// Appeals. They are written only through [`crate::Devices::update_device`], with the device's
/// overrides and audit record, so an appeal never exists without its dispute freeze.
#[async_trait]
pub trait Appeals: Send + Sync {
    /// One appeal.
    async fn appeal(&self, reference: &str) -> Result<AppealRecord, StoreError>;
    /// Appeals matching the filter, newest first.
    async fn list_appeals(&self, filter: &AppealFilter) -> Result<Vec<AppealRecord>, StoreError>;
}

/// What the public IMEI check needs beyond the devices' current claims.
#[async_trait]
pub trait ImeiHistory: Send + Sync {
    /// The latest final release of a device with this IMEI (either slot), if any.
    async fn last_release(&self, imei: &str) -> Result<Option<i64>, StoreError>;
}

/// Appeal documents kept in the database, for servers that share one (the server's
/// `attachment_store = "database"`). Written before the appeal row that points at them, so a
/// document whose appeal was never written is removed by the server, or left unreachable if
/// the server stops in between: no row names its key.
#[async_trait]
pub trait Attachments: Send + Sync {
    /// Stores a document under `key`. A conflict if the key is taken.
    async fn put_attachment(
        &self,
        key: &str,
        content: &[u8],
        media_type: &str,
        created_us: i64,
    ) -> Result<(), StoreError>;
    /// The document under `key` and its media type; `NotFound` if there is none.
    async fn attachment(&self, key: &str) -> Result<(Vec<u8>, String), StoreError>;
    /// Removes the document under `key`, if there is one.
    async fn delete_attachment(&self, key: &str) -> Result<(), StoreError>;
}
