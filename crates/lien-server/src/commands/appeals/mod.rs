//! The appeal commands: a borrower opens an appeal, the financier answers it.
//!
//! Opening an appeal is one device change: the appeal row, a dispute freeze (nothing gets worse
//! while the appeal is open) and, for a payment appeal that would cure the arrears, a
//! provisional unlock that starts at the response deadline, written with the audit record in
//! one transaction. The pending unlock is an ordinary override, so the decision's own
//! `next_change` schedules the evaluation at the deadline: the scheduler grants it without
//! anyone calling an API. An answer ends both overrides (cancelling the unlock if it has not
//! begun); accepting a payment appeal records the payment in the same change.
//!
//! [`rules`] holds the appeal rules as pure functions of what was read and `now`; [`lookup`]
//! finds what a borrower means without an account; this module reads the store, calls them
//! and writes.

pub mod lookup;
pub mod rules;

pub use lookup::{AppealPublicView, find_device, plausible_reference, public_appeal, public_view};

use jiff::Timestamp;
use jiff::civil::Date;
use lien_core::{Currency, Imei};
use lien_store::{
    AppealFilter, AppealRecord, AttachmentRecord, DeviceRecord, DeviceSnapshot, DevicesExt,
    StoreError, UpdateError,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use self::rules::{
    Recording, answer_mutation, appeal_terms, history_refusal, not_proven, open_mutation,
    status_code_matches, superseded_cutoff_us,
};
use super::device_change::{change_device, completed};
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::micros;
use crate::error::ApiError;

// How long a released phone stays "released" on the public IMEI check: an appeal about it
// meanwhile is a conflict rather than "not proven".
use crate::commands::imei_check::RELEASE_SHOWN_DAYS;

/// The actor the audit log records for what the borrower does without an account.
pub(crate) const BORROWER: &str = "borrower";

/// What an appeal claims: the borrower paid (a receipt), owns the phone (a proof of purchase),
/// or the lock is wrong for another reason (a statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimKind {
    /// `paid`
    Paid,
    /// `owner`
    Owner,
    /// `wrong_lock`
    WrongLock,
}

/// Where an appeal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppealStatus {
    /// `open`: waiting for the financier.
    Open,
    /// `accepted`
    Accepted,
    /// `rejected`
    Rejected,
}

/// The financier's verdict on an appeal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// `accept`: the claim holds.
    Accept,
    /// `reject`: it does not; the reason says why.
    Reject,
}

/// The text form of the appeal enums, as the store keeps it and the wire shows it; read back
/// with `parse`, a stored text no variant names is an internal error.
macro_rules! stored_text {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every variant.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The text the store keeps and the wire shows.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The variant `text` names, if any.
            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// The variant a stored row names.
            pub fn stored(text: &str) -> Result<$name, ApiError> {
                Self::parse(text).ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!(
                        "stored {} {text:?} is not known",
                        stringify!($name)
                    ))
                })
            }
        }
    };
}

stored_text!(ClaimKind { Paid => "paid", Owner => "owner", WrongLock => "wrong_lock" });
stored_text!(AppealStatus { Open => "open", Accepted => "accepted", Rejected => "rejected" });

/// What a new appeal claims, checked field by field (see `routes::appeals::form`).
#[derive(Debug, Clone)]
pub struct Claim {
    /// What is claimed.
    pub claim: ClaimKind,
    /// How the financier reaches the borrower.
    pub contact: String,
    /// The borrower's words.
    pub statement: String,
    /// For `paid`: the payment's reference.
    pub payment_reference: Option<String>,
    /// For `paid`: the date paid, not in the future.
    pub paid_on: Option<Date>,
    /// For `paid`: the amount, in minor units of the currency given.
    pub amount: Option<(i64, Currency)>,
}

/// An uploaded document, recognised by its content as a whole PDF, JPEG or PNG.
#[derive(Debug, Clone)]
pub struct Document {
    /// The content.
    pub bytes: Vec<u8>,
    /// `application/pdf`, `image/jpeg` or `image/png`.
    pub media_type: &'static str,
    /// The file extension for that type.
    pub ext: &'static str,
}

/// A request to open an appeal: the holder's proof, the claim and its document.
#[derive(Debug, Clone)]
pub struct AppealRequest {
    /// The IMEI of the phone appealed about.
    pub imei: Imei,
    /// The 8-digit status code its lock screen shows: the proof of holding it.
    pub status_code: String,
    /// What is claimed.
    pub claim: Claim,
    /// The receipt, proof of purchase or other document.
    pub document: Option<Document>,
}

/// An appeal just opened, and why a payment appeal will not unlock the phone at its deadline
/// if it will not.
#[derive(Debug, Clone)]
pub struct OpenedAppeal {
    /// The appeal as written.
    pub record: AppealRecord,
    /// For a payment appeal without a provisional unlock: why (see [`rules::unlock_withheld`]).
    pub unlock_withheld: Option<String>,
}

/// The financier's answer to an appeal.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Accept or reject.
    pub verdict: Verdict,
    /// Why; the borrower sees it. Required to reject, at most 500 characters.
    pub reason: String,
    /// For an accepted payment appeal: record the claimed payment (the default).
    pub record_payment: Option<bool>,
}

/// Opens an appeal: checks the holder's proof (IMEI and lock-screen status code), that no
/// appeal is open or cooling down after a rejection, and the claim against the plan; stores the
/// document, then writes the appeal, its overrides and the audit record in one device change.
/// If the change fails, the document goes.
///
/// What can be checked without the device was checked when the request was made, so a refusal
/// for a bad field says nothing about the phone; what is about the phone (the history of its
/// appeals, its plan's currency) is told only once the proof holds.
pub async fn open_appeal(
    state: &AppState,
    request: AppealRequest,
) -> Result<OpenedAppeal, ApiError> {
    let AppealRequest {
        imei,
        status_code,
        claim,
        document,
    } = request;
    let now = state.clock.now();
    let device = proven_device(state, &imei, &status_code).await?;
    let now_us = micros(now);
    check_appeal_history(state, &device, now_us).await?;
    if let Some((_, currency)) = claim.amount
        && currency.code() != device.decision.currency
    {
        return Err(ApiError::invalid(
            "currency",
            format!(
                "this phone's plan is in {}; give the amount paid in {0}",
                device.decision.currency
            ),
        ));
    }
    let (response_us, unlock_us) = appeal_terms(
        &device.enrolled.policy_json,
        state.settings.appeal_response_hours,
        state.settings.appeal_unlock_hours,
    )?;
    let reference = new_reference()?;

    // The document first, under a key of its own; the row that points at it comes after (see
    // `crate::attachments` for what a failure in between leaves).
    let mut stored_key = None;
    let attachment = match document {
        Some(document) => {
            let key = format!("appeals/{reference}.{}", document.ext);
            state
                .attachments
                .put(&key, &document.bytes, document.media_type)
                .await
                .map_err(|e| {
                    ApiError::Internal(anyhow::Error::new(e).context("storing an upload"))
                })?;
            stored_key = Some(key.clone());
            Some(AttachmentRecord {
                path: key,
                media_type: document.media_type.to_string(),
                size: document.bytes.len() as i64,
                sha256: Sha256::digest(&document.bytes).to_vec(),
            })
        }
        None => None,
    };
    let record = AppealRecord {
        reference,
        device_id: device.enrolled.id.clone(),
        financier_id: device.enrolled.financier_id.clone(),
        claim: claim.claim.as_str().to_string(),
        contact: claim.contact,
        statement: claim.statement,
        payment_reference: claim.payment_reference,
        paid_on: claim.paid_on.map(|d| d.to_string()),
        amount_minor: claim.amount.map(|a| a.0),
        currency: claim.amount.map(|a| a.1.code().to_string()),
        status: AppealStatus::Open.as_str().into(),
        opened_us: now_us,
        deadline_us: now_us + response_us,
        // Decided with the device's inputs under its lock, in `write_open`.
        unlock_until_us: None,
        decided_us: None,
        decided_by: None,
        decision_reason: None,
        attachment,
    };
    let written = write_open(state, record, unlock_us, now).await;
    // A refusal wrote nothing, so its document goes. A database failure may have come after
    // the commit reached the disk: the document stays, as a row may name it.
    let nothing_written = matches!(&written, Err(e) if !matches!(e, ApiError::Internal(_)));
    if nothing_written
        && let Some(key) = stored_key
        && let Err(e) = state.attachments.delete(&key).await
    {
        // The document stays, unreachable: no row names it.
        tracing::warn!(error = %e, key, "an upload whose appeal was not written was not removed");
    }
    match written {
        // Another appeal opened between the check and the write: name it, as the check would.
        Err(ApiError::Conflict(message)) => {
            check_appeal_history(state, &device, now_us).await?;
            Err(ApiError::Conflict(message))
        }
        other => other,
    }
}

/// Writes a new appeal as one device change, deciding its provisional unlock under the
/// device's lock. Audited under the borrower, who has no account.
async fn write_open(
    state: &AppState,
    record: AppealRecord,
    unlock_us: i64,
    now: Timestamp,
) -> Result<OpenedAppeal, ApiError> {
    let closure_state = state.clone();
    let device_id = record.device_id.clone();
    let result = state
        .store
        .update_device_with(&device_id, move |snapshot: &DeviceSnapshot| {
            let (mutation, opened) = open_mutation(snapshot, record, unlock_us, now)?;
            let c = completed(&closure_state, snapshot, BORROWER, mutation, now)?;
            Ok((c.change, (c.before, c.after, opened)))
        })
        .await;
    match result {
        Ok((_, (before, after, opened))) => {
            state.metrics.state_changed(&before, &after);
            state.scheduler_wake.notify_one();
            Ok(opened)
        }
        Err(UpdateError::Refused(e)) => Err(e),
        Err(UpdateError::Store(StoreError::NotFound)) => Err(ApiError::NotFound("device")),
        Err(UpdateError::Store(e)) => Err(e.into()),
    }
}

/// The financed device whose phone shows `code`, found by `imei`: the appellant's proof of
/// holding the phone. The code must be the current token's or one superseded within
/// `status_code_grace_hours` (a phone shows its new code only after it has checked in), and is
/// compared with each in constant time. Anything else is [`not_proven`], except a phone whose
/// release the public IMEI check shows: that is a conflict, as nobody holds a claim to appeal.
/// Each try on a financed phone counts against the phone's own limit (`AppState::proof_limit`),
/// right or wrong, so that guesses from many addresses cannot walk its codes.
pub(crate) async fn proven_device(
    state: &AppState,
    imei: &Imei,
    code: &str,
) -> Result<DeviceRecord, ApiError> {
    let released =
        || ApiError::Conflict("this phone is released: no financier holds a claim on it".into());
    let device = match state.store.device_by_imei(imei.as_str()).await {
        Ok(device) => device,
        Err(StoreError::NotFound) => {
            let now_us = micros(state.clock.now());
            return match state.store.last_release(imei.as_str()).await? {
                Some(at) if now_us - at < RELEASE_SHOWN_DAYS * 86_400_000_000 => Err(released()),
                _ => Err(not_proven()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    if device.released_us.is_some() {
        return Err(released());
    }
    // Keyed by the phone's first IMEI, whichever was typed: a dual-SIM phone has one limit.
    let key = device
        .enrolled
        .imei1
        .parse::<u64>()
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("a stored IMEI is not digits")))?;
    state
        .proof_limit
        .check(key)
        .map_err(|limited| limited.error(rules::TOO_MANY_PROOFS))?;
    let shown = state
        .store
        .recent_status_codes(&device.enrolled.id, superseded_cutoff_us(state))
        .await?;
    if status_code_matches(&shown, code) {
        Ok(device)
    } else {
        Err(not_proven())
    }
}

/// One appeal at a time, and none during the cool-down after a rejection (see
/// [`history_refusal`]). Appeals of a device follow one another (a second cannot open while
/// one is open), so its newest is the one that matters.
async fn check_appeal_history(
    state: &AppState,
    device: &DeviceRecord,
    now_us: i64,
) -> Result<(), ApiError> {
    let latest = state
        .store
        .list_appeals(&AppealFilter {
            device_id: Some(device.enrolled.id.clone()),
            limit: 1,
            ..AppealFilter::default()
        })
        .await?;
    let cooldown_us = i64::from(state.settings.appeal_cooldown_hours) * 3_600_000_000;
    history_refusal(latest.first(), now_us, cooldown_us)
}

/// The actor's appeals (a platform role's: every financier's), newest first, at most `limit`
/// (1 to 1000).
pub async fn list_appeals(
    state: &AppState,
    actor: &Actor,
    status: Option<AppealStatus>,
    device_id: Option<String>,
    limit: u32,
) -> Result<Vec<AppealRecord>, ApiError> {
    actor.require(Action::Read)?;
    let filter = lien_store::AppealFilter {
        financier_id: actor.financier_id.clone(),
        status: status.map(|s| s.as_str().to_string()),
        device_id,
        limit: limit.clamp(1, 1000),
        // Open appeals are a queue: the most urgent first, however many there are.
        soonest_deadline_first: status == Some(AppealStatus::Open),
    };
    Ok(state.store.list_appeals(&filter).await?)
}

/// The document uploaded with an appeal the actor may read: the appeal, the document's record
/// and its bytes. A document this server cannot reach (kept locally by another server) is
/// [`ApiError::Unavailable`], saying why.
pub async fn attachment(
    state: &AppState,
    actor: &Actor,
    reference: &str,
) -> Result<(AppealRecord, lien_store::AttachmentRecord, Vec<u8>), ApiError> {
    use crate::attachments::AttachmentStoreKind;
    let a = visible_appeal(state, actor, reference).await?;
    let file = a
        .attachment
        .clone()
        .ok_or(ApiError::NotFound("attachment"))?;
    match state.attachments.get(&file.path).await {
        Ok(Some((bytes, _))) => Ok((a, file, bytes)),
        Ok(None) => {
            tracing::warn!(
                key = file.path,
                "an appeal's document is not in this server's attachment store"
            );
            let why = match state.settings.attachment_store {
                AttachmentStoreKind::Local => {
                    "this server does not hold the appeal's document: it was received by \
                     another server that keeps documents locally; servers sharing a database \
                     need attachment_store = \"database\""
                }
                // Kept in the database before this server's setting changed, or lost there.
                AttachmentStoreKind::Database => {
                    "the appeal's document is not in the database's attachment store: it may \
                     have been received while a server kept documents locally \
                     (attachment_store = \"local\")"
                }
            };
            Err(ApiError::Unavailable(why.into()))
        }
        Err(e) => Err(ApiError::Internal(
            anyhow::Error::new(e).context("reading an upload"),
        )),
    }
}

/// An appeal the caller may see; another financier's is "not found" like a missing one.
pub async fn visible_appeal(
    state: &AppState,
    actor: &Actor,
    reference: &str,
) -> Result<AppealRecord, ApiError> {
    actor.require(Action::Read)?;
    match state.store.appeal(reference).await {
        Ok(a) if actor.sees_financier(&a.financier_id) => Ok(a),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("appeal")),
        Err(e) => Err(e.into()),
    }
}

/// Answers an open appeal the actor can see: ends its dispute freeze and provisional unlock,
/// and, accepting a payment appeal, records the claimed payment unless told not to or it is
/// already recorded. A rejection must say why (the borrower reads it). Returns the appeal as
/// answered.
pub async fn answer_appeal(
    state: &AppState,
    actor: &Actor,
    reference: &str,
    answer: Answer,
) -> Result<AppealRecord, ApiError> {
    actor.require(Action::AnswerAppeal)?;
    let reason = answer.reason.trim().to_string();
    let accept = answer.verdict == Verdict::Accept;
    if !accept && reason.is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "say why the appeal is rejected; the borrower sees it",
        ));
    }
    if reason.chars().count() > 500 {
        return Err(ApiError::invalid("reason", "at most 500 characters"));
    }
    let appeal = visible_appeal(state, actor, reference).await?;
    if AppealStatus::stored(&appeal.status)? != AppealStatus::Open {
        return Err(ApiError::Conflict(format!(
            "appeal {} is already {}",
            appeal.reference, appeal.status
        )));
    }
    let record_payment = accept
        && ClaimKind::stored(&appeal.claim)? == ClaimKind::Paid
        && answer.record_payment.unwrap_or(true);
    let recording = match (record_payment, actor.role.may(Action::RecordPayment)) {
        (false, _) => Recording::Nothing,
        (true, true) => Recording::Claimed,
        (true, false) => Recording::UpToDue,
    };
    let decided_by = actor.key_id.clone();
    let releases_at_payoff = actor.vouches_for_payoff();
    let a = appeal.clone();
    change_device(
        state,
        actor,
        &appeal.device_id,
        None,
        move |snapshot, now| {
            let mut mutation =
                answer_mutation(snapshot, now, &a, accept, reason, recording, decided_by)?;
            mutation.releases_at_payoff = releases_at_payoff;
            Ok((mutation, ()))
        },
    )
    .await?;
    Ok(state.store.appeal(&appeal.reference).await?)
}

/// A new appeal reference: `AP-` and 20 characters of an unambiguous alphabet (100 bits from
/// the operating system), in groups of four.
pub fn new_reference() -> Result<String, ApiError> {
    const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    let groups: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
    Ok(format!("AP-{}", groups.join("-")))
}
