//! Appeals: a borrower who is locked although they paid (or who owns the phone, or who thinks
//! the lock is wrong) opens one without an account; the financier answers.
//!
//! Opening an appeal is one device change: the appeal row, a dispute freeze (nothing gets
//! worse while the appeal is open) and, for a payment appeal, a provisional unlock that starts
//! at the response deadline, all written with the audit record in one transaction. The pending
//! unlock is an ordinary override, so the decision's own `next_change` schedules the
//! evaluation at the deadline: the scheduler grants it without anyone calling an API, and the
//! phone gets it at its next check-in. An answer ends both overrides (cancelling the unlock if
//! it has not begun); accepting a payment appeal records the payment in the same change.
//!
//! Uploaded documents are files under `<data dir>/appeals/`; the row keeps the path, the
//! recognised type, the size and the SHA-256. Only the device's financier and support can
//! download them.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::civil::Date;
use lien_core::{Currency, Imei, Money, PaymentRef};
use lien_store::{
    AppealFilter, AppealRecord, AppealWrite, AttachmentRecord, DeviceChange, DeviceRecord,
    DeviceSnapshot, DevicesExt, OverrideRecord, PaymentRecord, StoreError, UpdateError,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

use super::{JsonText, Mutation, complete, json_text, mutate_device};
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::{from_micros, micros};
use crate::domain::{kind, rfc3339};
use crate::error::{ApiError, ErrorBody};
use crate::wire::{MoneyJson, PolicyJson};

/// The claims a borrower can make.
pub const CLAIMS: [&str; 3] = ["paid", "owner", "wrong_lock"];

/// The file fields the form accepts: the receipt of a payment, the proof of purchase of a
/// second-hand phone, any document for a wrong lock.
const FILE_FIELDS: [&str; 3] = ["receipt", "proof_of_purchase", "document"];

/// Text fields are short; this bounds what a form can make the server hold.
const MAX_TEXT_BYTES: usize = 4096;
const MAX_FIELDS: usize = 24;

/// A file as uploaded.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The form field it came in.
    pub field: String,
    /// The name the browser gave it.
    pub file_name: String,
    /// The type the client declared.
    pub declared_type: Option<String>,
    /// The content.
    pub bytes: Vec<u8>,
}

/// A multipart appeal form, read but not yet checked.
#[derive(Debug, Clone, Default)]
pub struct AppealForm {
    /// Text fields by name (the last value wins).
    pub fields: HashMap<String, String>,
    /// The one file, if any was chosen.
    pub file: Option<Upload>,
}

impl AppealForm {
    fn text(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// A size for messages: `5 MiB`, or bytes when not whole mebibytes.
pub fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

/// A form the multipart parser gave up on: over the route's body limit (413; a body that never
/// shows its boundary ends here too, after the limit), or malformed (400).
fn unreadable_form(e: axum::extract::multipart::MultipartError) -> ApiError {
    if let Some(timeout) = ApiError::from_body_error(&e) {
        return timeout;
    }
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge("the form is larger than an appeal may be".into())
    } else {
        ApiError::BadRequest(format!("the form could not be read: {e}"))
    }
}

/// Reads a multipart form, stopping as soon as a file passes `max_file` bytes or a text field
/// passes its bound, so a huge upload costs the server no more than the limit.
pub async fn read_form(mut multipart: Multipart, max_file: u64) -> Result<AppealForm, ApiError> {
    let mut form = AppealForm::default();
    let mut count = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(unreadable_form(e)),
        };
        count += 1;
        if count > MAX_FIELDS {
            return Err(ApiError::BadRequest("the form has too many fields".into()));
        }
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let declared_type = field.content_type().map(str::to_string);
        let is_file = FILE_FIELDS.contains(&name.as_str());
        if !is_file && file_name.is_some() {
            return Err(ApiError::invalid(
                &name,
                format!("files are accepted only as {}", FILE_FIELDS.join(", ")),
            ));
        }
        let limit = if is_file {
            max_file as usize
        } else {
            MAX_TEXT_BYTES
        };
        let mut bytes = Vec::new();
        let mut field = field;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > limit {
                        return Err(if is_file {
                            ApiError::invalid(
                                &name,
                                format!(
                                    "the file is larger than {}; send a smaller one",
                                    mib(max_file)
                                ),
                            )
                        } else {
                            ApiError::invalid(&name, format!("at most {MAX_TEXT_BYTES} bytes"))
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e)
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE
                        || ApiError::from_body_error(&e).is_some() =>
                {
                    return Err(unreadable_form(e));
                }
                Err(e) => {
                    return Err(ApiError::invalid(
                        &name,
                        format!("the upload could not be read ({e})"),
                    ));
                }
            }
        }
        if is_file {
            let file_name = file_name.unwrap_or_default();
            // A browser sends an empty, nameless part for a file input left empty.
            if file_name.is_empty() && bytes.is_empty() {
                continue;
            }
            if form.file.is_some() {
                return Err(ApiError::invalid(&name, "send one document only"));
            }
            if file_name.contains('\0') {
                return Err(ApiError::invalid(
                    &format!("{name} (file name)"),
                    crate::no_nul::NUL_PROBLEM,
                ));
            }
            form.file = Some(Upload {
                field: name,
                file_name,
                declared_type,
                bytes,
            });
        } else {
            let text = String::from_utf8(bytes)
                .map_err(|_| ApiError::invalid(&name, "is not UTF-8 text"))?;
            if text.contains('\0') {
                return Err(ApiError::invalid(&name, crate::no_nul::NUL_PROBLEM));
            }
            form.fields.insert(name, text);
        }
    }
    Ok(form)
}

/// The types accepted, recognised by their first bytes.
const ACCEPTED: [(&str, &str, &[u8]); 3] = [
    ("application/pdf", "pdf", b"%PDF-"),
    ("image/jpeg", "jpg", &[0xFF, 0xD8, 0xFF]),
    (
        "image/png",
        "png",
        &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
    ),
];

/// The smallest document accepted: a photo or scan of a receipt, or a PDF a bank or a
/// mobile-money service produces, is several times larger; a file this small is not one.
pub const MIN_DOCUMENT_BYTES: usize = 1024;

/// Whether `bytes`, which begin like a PNG, are laid out as one: the chunks tile the file
/// exactly, the first is a non-empty `IHDR`, image data comes before `IEND`, and `IEND` ends
/// the file. Chunk checksums and the compressed data are not checked: this tells a document
/// from a few magic bytes and filler, it does not prove the picture shows a receipt.
fn png_is_whole(bytes: &[u8]) -> bool {
    let be32 = |at: usize| -> Option<usize> {
        let word: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(word)).ok()
    };
    let mut at = 8;
    let mut data = false;
    let mut first = true;
    while let (Some(length), Some(kind)) = (be32(at), bytes.get(at + 4..at + 8)) {
        let Some(end) = length.checked_add(12).and_then(|l| l.checked_add(at)) else {
            return false;
        };
        if end > bytes.len() {
            return false;
        }
        if first {
            let size_ok =
                be32(at + 8).is_some_and(|w| w > 0) && be32(at + 12).is_some_and(|h| h > 0);
            if kind != b"IHDR" || length != 13 || !size_ok {
                return false;
            }
            first = false;
        }
        match kind {
            b"IDAT" => data = true,
            b"IEND" => return data && end == bytes.len(),
            _ => {}
        }
        at = end;
    }
    false
}

/// Whether `bytes`, which begin like a JPEG, are laid out as one: marker segments with their
/// lengths up to the start of the scan, a frame header (SOF) among them, and an end-of-image
/// marker after the scan.
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let mut at = 2;
    let mut frame = false;
    loop {
        if bytes.get(at) != Some(&0xFF) {
            return false;
        }
        // Fill bytes: any number of 0xFF before the marker.
        while bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let Some(&marker) = bytes.get(at + 1) else {
            return false;
        };
        at += 2;
        match marker {
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            // No image before the end, or a second start.
            0xD8 | 0xD9 | 0x00 => return false,
            _ => {}
        }
        let Some(length) = bytes
            .get(at..at + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return false;
        };
        if length < 2 || at + length > bytes.len() {
            return false;
        }
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            frame = true;
        }
        at += length;
        if marker == 0xDA {
            return frame && bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
    }
}

/// Whether `bytes`, which begin like a PDF, are one: a version after the header, at least one
/// object, and the cross-reference pointer and end-of-file marker in the last kilobyte.
fn pdf_is_whole(bytes: &[u8]) -> bool {
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    matches!(bytes.get(5..7), Some(b"1.") | Some(b"2."))
        && contains(bytes, b" obj")
        && contains(tail, b"startxref")
        && contains(tail, b"%%EOF")
}

/// Checks an upload: not empty, not too big, and a PDF, JPEG or PNG by its content (the
/// declared type, if the client gave one, must be one of those too), laid out as a whole file
/// of that type and at least [`MIN_DOCUMENT_BYTES`] long. Returns the recognised type and file
/// extension.
pub fn check_upload(upload: &Upload, max: u64) -> Result<(&'static str, &'static str), ApiError> {
    let field = upload.field.as_str();
    if upload.bytes.is_empty() {
        return Err(ApiError::invalid(field, "the file is empty"));
    }
    if upload.bytes.len() as u64 > max {
        return Err(ApiError::invalid(
            field,
            format!("the file is larger than {}; send a smaller one", mib(max)),
        ));
    }
    let declared = upload
        .declared_type
        .as_deref()
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_ascii_lowercase());
    let declared_ok = declared.as_deref().is_none_or(|t| {
        t == "application/octet-stream" || t == "image/jpg" || ACCEPTED.iter().any(|a| a.0 == t)
    });
    if !declared_ok {
        return Err(ApiError::invalid(
            field,
            format!(
                "only PDF, JPEG or PNG files are accepted; this one is {}",
                declared.unwrap_or_default()
            ),
        ));
    }
    let (media_type, ext) = ACCEPTED
        .iter()
        .find(|(_, _, magic)| upload.bytes.starts_with(magic))
        .map(|(t, ext, _)| (*t, *ext))
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                "the file is not a PDF, JPEG or PNG (its content is something else)",
            )
        })?;
    if upload.bytes.len() < MIN_DOCUMENT_BYTES {
        return Err(ApiError::invalid(
            field,
            format!(
                "the file is too small to be a receipt or a photo of one ({} bytes; at least \
                 {MIN_DOCUMENT_BYTES}); send the document itself",
                upload.bytes.len()
            ),
        ));
    }
    let whole = match ext {
        "png" => png_is_whole(&upload.bytes),
        "jpg" => jpeg_is_whole(&upload.bytes),
        _ => pdf_is_whole(&upload.bytes),
    };
    if !whole {
        return Err(ApiError::invalid(
            field,
            format!(
                "the file starts like a {} but is not a whole one (cut off or made up); send \
                 the document itself",
                ext.to_ascii_uppercase()
            ),
        ));
    }
    Ok((media_type, ext))
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

/// Whether `text` looks like an appeal reference (before any look-up).
fn plausible_reference(text: &str) -> bool {
    text.len() == 27
        && text.starts_with("AP-")
        && text[3..]
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The amount a borrower says they paid, typed as a decimal such as `1000` or `1,000.50`, in
/// the currency's minor units: read by `lien_money` (no sign, no more decimals than the
/// currency has, no overflow) and more than zero.
pub fn parse_amount(field: &str, text: &str, currency: Currency) -> Result<i64, ApiError> {
    let amount = Money::parse_decimal(field, text, currency)
        .map_err(|e| ApiError::invalid(&e.field, e.problem))?;
    if !amount.is_positive() {
        return Err(ApiError::invalid(
            field,
            "the amount must be more than zero",
        ));
    }
    Ok(amount.minor())
}

/// Finds the financed device an appeal or a page is about, from an IMEI or a lock-screen
/// status code. `field` names what the borrower typed, for the message.
pub async fn find_device(state: &AppState, query: &str) -> Result<DeviceRecord, ApiError> {
    let query: String = query.chars().filter(|c| !c.is_whitespace()).collect();
    if query.len() == 8 && query.bytes().all(|b| b.is_ascii_digit()) {
        // Only codes a phone may still be showing match: an old token's code would otherwise
        // keep matching for ever, and a large fleet's old codes fill the code space.
        let mut ids: Vec<String> = state
            .store
            .recent_tokens_by_status_code(&query, superseded_cutoff_us(state))
            .await?
            .into_iter()
            .map(|m| m.device_id)
            .collect();
        ids.sort();
        ids.dedup();
        return match ids.as_slice() {
            [id] => Ok(state.store.device(id).await?),
            [] => Err(ApiError::NotFound("status code")),
            _ => Err(ApiError::invalid(
                "status_code",
                "this code matches more than one phone; enter the IMEI instead",
            )),
        };
    }
    let imei = Imei::parse(&query).map_err(|e| {
        ApiError::invalid(
            "imei",
            format!("{e}; enter the 15-digit IMEI (dial *#06#) or the 8-digit status code from the lock screen"),
        )
    })?;
    match state.store.device_by_imei(imei.as_str()).await {
        Ok(device) => Ok(device),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("financed device with this IMEI")),
        Err(e) => Err(e.into()),
    }
}

/// Status codes of tokens superseded before this instant no longer match on the public pages
/// or for appeals (`status_code_grace_hours` ago).
pub fn superseded_cutoff_us(state: &AppState) -> i64 {
    micros(state.clock.now()) - i64::from(state.settings.status_code_grace_hours) * 3_600_000_000
}

/// The one answer to an appellant who did not prove holding the phone, whatever was wrong: an
/// IMEI no financier claims, a phone not set up yet, a wrong or superseded code. It says neither
/// whether the IMEI is financed nor which of the two did not match.
pub fn not_proven() -> ApiError {
    ApiError::NotFound("phone with this IMEI and status code")
}

/// Reads the holder's proof from a form: the IMEI and the 8-digit status code the lock screen
/// shows. A missing or malformed field is named (that says nothing about any phone).
fn proof_fields(form: &AppealForm) -> Result<(Imei, String), ApiError> {
    let compact = |text: &str| -> String { text.chars().filter(|c| !c.is_whitespace()).collect() };
    let imei_text = form.text("imei").ok_or_else(|| {
        ApiError::invalid(
            "imei",
            "enter the IMEI shown on the lock screen (or dial *#06#)",
        )
    })?;
    let imei = Imei::parse(&compact(imei_text)).map_err(|e| {
        ApiError::invalid(
            "imei",
            format!("{e}; enter the 15-digit IMEI shown on the lock screen (or dial *#06#)"),
        )
    })?;
    let code = compact(form.text("status_code").ok_or_else(|| {
        ApiError::invalid(
            "status_code",
            "enter the 8-digit status code shown on the phone's lock screen; it shows that you \
             have the phone",
        )
    })?);
    if code.len() != 8 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            "status_code",
            "the status code is the 8 digits shown on the phone's lock screen",
        ));
    }
    Ok((imei, code))
}

/// The financed device whose phone shows `code`, found by `imei`: the appellant's proof of
/// holding the phone. The code must be the current token's or one superseded within
/// `status_code_grace_hours` (a phone shows its new code only after it has checked in), and is
/// compared with each in constant time. Anything else is [`not_proven`], except a phone whose
/// release the public IMEI check shows: that is a conflict, as nobody holds a claim to appeal.
async fn proven_device(
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
                Some(at) if now_us - at < super::public::RELEASE_SHOWN_DAYS * 86_400_000_000 => {
                    Err(released())
                }
                _ => Err(not_proven()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    if device.released_us.is_some() {
        return Err(released());
    }
    let shown = state
        .store
        .recent_status_codes(&device.enrolled.id, superseded_cutoff_us(state))
        .await?;
    let mut matched = subtle::Choice::from(0);
    for candidate in &shown {
        matched |= candidate.as_bytes().ct_eq(code.as_bytes());
    }
    if bool::from(matched) {
        Ok(device)
    } else {
        Err(not_proven())
    }
}

/// One appeal at a time, and none during the cool-down after a rejection. Told only to an
/// appellant who proved holding the phone, so the references it names reach no stranger.
/// Appeals of a device follow one another (a second cannot open while one is open), so its
/// newest is the one that matters.
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
    let Some(last) = latest.first() else {
        return Ok(());
    };
    if last.status == "open" {
        return Err(ApiError::Conflict(format!(
            "appeal {} about this phone is already open; follow it with its reference",
            last.reference
        )));
    }
    let cooldown_us = i64::from(state.settings.appeal_cooldown_hours) * 3_600_000_000;
    if last.status == "rejected"
        && let Some(decided_us) = last.decided_us
        && now_us < decided_us + cooldown_us
    {
        return Err(ApiError::Conflict(format!(
            "appeal {} about this phone was rejected at {}; a new appeal can be opened from {}",
            last.reference,
            rfc3339(from_micros(decided_us)),
            rfc3339(from_micros(decided_us + cooldown_us))
        )));
    }
    Ok(())
}

/// Why a payment appeal will not unlock the phone at its deadline, or `None` if it will. The
/// provisional unlock stands in for recording the claimed payment while the financier is
/// silent, so it is granted only where recording it would lift the arrears: something is due
/// now, the claimed amount (in the plan's currency, checked before) covers it, and the payment
/// reference is not one already recorded. The receipt was checked as a whole document of a
/// plausible size before, and the appellant proved holding the phone.
fn unlock_withheld(
    snapshot: &DeviceSnapshot,
    appeal: &AppealRecord,
    now: Timestamp,
) -> Result<Option<String>, ApiError> {
    let inputs = crate::domain::Inputs::of(snapshot)?;
    let due = lien_core::decide(
        &inputs.plan,
        &inputs.payments,
        &inputs.overrides,
        &inputs.policy,
        now,
    )
    .amount_due;
    if !due.is_positive() {
        return Ok(Some(
            "nothing is overdue on this phone now, so there is no lock for a payment to lift"
                .into(),
        ));
    }
    if let Some(reference) = &appeal.payment_reference
        && snapshot.payments.iter().any(|p| &p.reference == reference)
    {
        return Ok(Some(format!(
            "payment {reference} is already recorded on this phone's account"
        )));
    }
    let claimed = appeal.amount_minor.unwrap_or(0);
    if claimed < due.minor() {
        return Ok(Some(format!(
            "the amount claimed ({}) does not cover the {due} due now",
            Money::new(claimed, due.currency()),
        )));
    }
    Ok(None)
}

/// The response deadline and provisional-unlock length of a device's policy: a custom policy's
/// own settings, else the server's; the unlock never outlasts the policy's lease.
fn appeal_terms(state: &AppState, device: &DeviceRecord) -> Result<(i64, i64), ApiError> {
    let policy: PolicyJson = serde_json::from_str(&device.enrolled.policy_json)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let parsed = crate::domain::parse_policy(&policy)?;
    let lease_hours = i64::from(parsed.settings().lease_days) * 24;
    let (response, unlock) = match &policy {
        PolicyJson::Custom(s) => (s.appeal_response_hours, s.appeal_unlock_hours),
        PolicyJson::Preset(_) => (None, None),
    };
    let response = i64::from(response.unwrap_or(state.settings.appeal_response_hours)).max(1);
    let unlock = i64::from(unlock.unwrap_or(state.settings.appeal_unlock_hours))
        .clamp(1, lease_hours.max(1));
    Ok((response * 3_600_000_000, unlock * 3_600_000_000))
}

/// What a new appeal says, checked.
struct Claim {
    claim: &'static str,
    contact: String,
    statement: String,
    payment_reference: Option<String>,
    paid_on: Option<Date>,
    amount: Option<(i64, Currency)>,
}

/// Checks a form as [`open_appeal`] does before it looks anything up: the claim and the fields
/// it requires, each refusal naming its field. For the fuzz targets (crates/lien-fuzz).
#[doc(hidden)]
pub fn check_form(form: &AppealForm, today: Date) -> Result<(), ApiError> {
    check_claim(form, today).map(|_| ())
}

fn check_claim(form: &AppealForm, today: Date) -> Result<Claim, ApiError> {
    let claim_text = form
        .text("claim")
        .ok_or_else(|| ApiError::invalid("claim", "choose one: paid, owner or wrong_lock"))?;
    let claim = CLAIMS
        .iter()
        .find(|c| **c == claim_text)
        .copied()
        .ok_or_else(|| {
            ApiError::invalid(
                "claim",
                format!("{claim_text:?} is not one of paid, owner, wrong_lock"),
            )
        })?;
    let contact = form
        .text("contact")
        .ok_or_else(|| {
            ApiError::invalid(
                "contact",
                "give a phone number or e-mail address where the financier can reach you",
            )
        })?
        .to_string();
    if contact.chars().count() > 200 {
        return Err(ApiError::invalid("contact", "at most 200 characters"));
    }
    let statement = form.text("statement").unwrap_or_default().to_string();
    if statement.chars().count() > 2000 {
        return Err(ApiError::invalid("statement", "at most 2000 characters"));
    }
    let mut checked = Claim {
        claim,
        contact,
        statement,
        payment_reference: None,
        paid_on: None,
        amount: None,
    };
    match claim {
        "paid" => {
            let reference = form.text("payment_reference").ok_or_else(|| {
                ApiError::invalid(
                    "payment_reference",
                    "give the reference on your receipt (the transaction code)",
                )
            })?;
            let reference = PaymentRef::parse(reference)
                .map_err(|e| ApiError::invalid("payment_reference", e))?;
            let paid_on_text = form.text("paid_on").ok_or_else(|| {
                ApiError::invalid("paid_on", "give the date you paid (YYYY-MM-DD)")
            })?;
            let paid_on: Date = paid_on_text.parse().map_err(|_| {
                ApiError::invalid(
                    "paid_on",
                    format!("{paid_on_text:?} is not a date in the form YYYY-MM-DD"),
                )
            })?;
            if paid_on > today {
                return Err(ApiError::invalid("paid_on", "the date is in the future"));
            }
            let code = form
                .text("currency")
                .ok_or_else(|| ApiError::invalid("currency", "give the currency, e.g. KES"))?;
            let currency = crate::domain::parse_currency("currency", &code.to_ascii_uppercase())?;
            let amount = form
                .text("amount")
                .ok_or_else(|| ApiError::invalid("amount", "give the amount you paid"))?;
            let minor = parse_amount("amount", amount, currency)?;
            checked.payment_reference = Some(reference.as_str().to_string());
            checked.paid_on = Some(paid_on);
            checked.amount = Some((minor, currency));
            if form.file.is_none() {
                return Err(ApiError::invalid(
                    "receipt",
                    "attach the receipt (PDF, JPEG or PNG)",
                ));
            }
        }
        "owner" => {
            if form.file.is_none() {
                return Err(ApiError::invalid(
                    "proof_of_purchase",
                    "attach the proof of purchase (PDF, JPEG or PNG)",
                ));
            }
        }
        _ => {
            if checked.statement.is_empty() {
                return Err(ApiError::invalid(
                    "statement",
                    "say why you think the lock is wrong",
                ));
            }
        }
    }
    Ok(checked)
}

/// An appeal just opened, and why a payment appeal will not unlock the phone at its deadline
/// if it will not.
#[derive(Debug, Clone)]
pub struct OpenedAppeal {
    /// The appeal as written.
    pub record: AppealRecord,
    /// For a payment appeal without a provisional unlock: why (see [`unlock_withheld`]).
    pub unlock_withheld: Option<String>,
}

/// Opens an appeal from a checked form: checks the holder's proof (IMEI and lock-screen status
/// code), that no appeal is open or cooling down after a rejection, and the claim against the
/// plan; stores the document, then writes the appeal, its overrides and the audit record in one
/// device change. If the change fails, the file goes.
///
/// Everything that can be checked without the device is checked first, so a refusal for a bad
/// field says nothing about the phone; what is about the phone (the history of its appeals, its
/// plan's currency) is told only once the proof holds.
pub async fn open_appeal(state: &AppState, form: AppealForm) -> Result<OpenedAppeal, ApiError> {
    let (imei, code) = proof_fields(&form)?;
    let now = state.clock.now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let claim = check_claim(&form, today)?;
    let max = state.settings.appeal_upload_max_bytes;
    let checked_file = match &form.file {
        Some(upload) => Some((upload, check_upload(upload, max)?)),
        None => None,
    };
    let device = proven_device(state, &imei, &code).await?;
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
    let (response_us, unlock_us) = appeal_terms(state, &device)?;
    let reference = new_reference()?;
    let deadline_us = now_us + response_us;

    // The document first, under a name of its own; the row that points at it comes after.
    let mut stored_path = None;
    let attachment = match checked_file {
        Some((upload, (media_type, ext))) => {
            let relative = format!("appeals/{reference}.{ext}");
            let path = state.settings.data_dir.join(&relative);
            write_file(&path, &upload.bytes).await?;
            stored_path = Some(path);
            Some(AttachmentRecord {
                path: relative,
                media_type: media_type.to_string(),
                size: upload.bytes.len() as i64,
                sha256: Sha256::digest(&upload.bytes).to_vec(),
            })
        }
        None => None,
    };
    let record = AppealRecord {
        reference: reference.clone(),
        device_id: device.enrolled.id.clone(),
        financier_id: device.enrolled.financier_id.clone(),
        claim: claim.claim.to_string(),
        contact: claim.contact,
        statement: claim.statement,
        payment_reference: claim.payment_reference,
        paid_on: claim.paid_on.map(|d| d.to_string()),
        amount_minor: claim.amount.map(|a| a.0),
        currency: claim.amount.map(|a| a.1.code().to_string()),
        status: "open".into(),
        opened_us: now_us,
        deadline_us,
        // Decided with the device's inputs under its lock, in `write_open`.
        unlock_until_us: None,
        decided_us: None,
        decided_by: None,
        decision_reason: None,
        attachment,
    };
    let written = write_open(state, record, unlock_us, now).await;
    if written.is_err()
        && let Some(path) = stored_path
    {
        let _ = tokio::fs::remove_file(&path).await;
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

async fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), ApiError> {
    use tokio::io::AsyncWriteExt;
    let internal =
        |e: std::io::Error| ApiError::Internal(anyhow::Error::new(e).context("storing an upload"));
    if let Some(dir) = path.parent() {
        crate::private_files::create_private_dir(dir)
            .map_err(|e| ApiError::Internal(e.context("storing an upload")))?;
    }
    let partial = path.with_extension("part");
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(crate::private_files::FILE_MODE);
    let mut file = options.open(&partial).await.map_err(internal)?;
    file.write_all(bytes).await.map_err(internal)?;
    // On disk before the appeal that points at it is acknowledged.
    file.sync_all().await.map_err(internal)?;
    drop(file);
    tokio::fs::rename(&partial, path).await.map_err(internal)
}

/// The actor the audit log records for what the borrower does without an account.
const BORROWER: &str = "borrower";

async fn write_open(
    state: &AppState,
    record: AppealRecord,
    unlock_us: i64,
    now: Timestamp,
) -> Result<OpenedAppeal, ApiError> {
    let closure_state = state.clone();
    let device_id = record.device_id.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let result = state
        .store
        .update_device_with(
            &device_id,
            Box::new(move |snapshot: &DeviceSnapshot| {
                let run = || -> Result<DeviceChange, ApiError> {
                    if snapshot.device.released_us.is_some() {
                        return Err(ApiError::Conflict(
                            "this phone is released: no financier holds a claim on it".into(),
                        ));
                    }
                    let mut record = record;
                    let mut unlock_withheld_because = None;
                    if record.claim == "paid" {
                        match unlock_withheld(snapshot, &record, now)? {
                            None => record.unlock_until_us = Some(record.deadline_us + unlock_us),
                            Some(why) => unlock_withheld_because = Some(why),
                        }
                    }
                    let r = &record;
                    let actor = format!("appeal:{}", r.reference);
                    let freeze = OverrideRecord {
                        id: 0,
                        kind: kind::DISPUTE_FREEZE.into(),
                        reason: format!("appeal {} is under review", r.reference),
                        from_us: r.opened_us,
                        until_us: None,
                        cancelled_us: None,
                        actor: actor.clone(),
                        created_us: r.opened_us,
                    };
                    let unlock = r.unlock_until_us.map(|until| OverrideRecord {
                        id: 0,
                        kind: kind::PROVISIONAL_UNLOCK.into(),
                        reason: format!("appeal {} was not answered by its deadline", r.reference),
                        from_us: r.deadline_us,
                        until_us: Some(until),
                        cancelled_us: None,
                        actor,
                        created_us: r.opened_us,
                    });
                    let mut reason = format!(
                        "appeal {} ({}) opened; the financier must answer by {}",
                        r.reference,
                        r.claim,
                        rfc3339(from_micros(r.deadline_us))
                    );
                    if let Some(until) = r.unlock_until_us {
                        reason.push_str(&format!(
                            ", or the phone is unlocked from then until {}",
                            rfc3339(from_micros(until))
                        ));
                    }
                    if let Some(why) = &unlock_withheld_because {
                        reason.push_str(&format!("; no provisional unlock: {why}"));
                    }
                    let mutation = Mutation {
                        action: "appeal_opened",
                        reason,
                        change: DeviceChange {
                            new_override: Some(freeze),
                            more_overrides: unlock.into_iter().collect(),
                            appeal: Some(AppealWrite::Open(Box::new(record.clone()))),
                            ..DeviceChange::default()
                        },
                        response: Some(serde_json::Value::Null),
                    };
                    let (change, _, before, after) =
                        complete(&closure_state, snapshot, BORROWER, mutation, now)?;
                    let opened = OpenedAppeal {
                        record,
                        unlock_withheld: unlock_withheld_because,
                    };
                    let _ = tx.send((before, after, opened));
                    Ok(change)
                };
                run().map(|change| (change, ()))
            }),
        )
        .await;
    match result {
        Ok(_) => {
            let (before, after, opened) = rx.recv().map_err(|_| {
                ApiError::Internal(anyhow::anyhow!("an appeal was written without its record"))
            })?;
            state.metrics.state_changed(&before, &after);
            state.scheduler_wake.notify_one();
            Ok(opened)
        }
        Err(UpdateError::Refused(e)) => Err(e),
        Err(UpdateError::Store(StoreError::NotFound)) => Err(ApiError::NotFound("device")),
        Err(UpdateError::Store(e)) => Err(e.into()),
    }
}

/// Where an appeal stands, in words the borrower understands.
pub fn progress(appeal: &AppealRecord, now_us: i64) -> String {
    let deadline = rfc3339(from_micros(appeal.deadline_us));
    match appeal.status.as_str() {
        "accepted" => "Accepted by the financier.".to_string(),
        "rejected" => "Rejected by the financier.".to_string(),
        _ => match appeal.unlock_until_us {
            Some(until) if now_us >= appeal.deadline_us && now_us < until => format!(
                "Not answered by the deadline ({deadline}): the phone is unlocked until {} \
                 while the financier reviews it.",
                rfc3339(from_micros(until))
            ),
            Some(until) if now_us >= until => format!(
                "Not answered by the deadline ({deadline}); the provisional unlock ended at {}. \
                 The lock will not get worse while the appeal is open.",
                rfc3339(from_micros(until))
            ),
            Some(_) => format!(
                "Waiting for the financier, who must answer by {deadline}. If they do not, the \
                 phone is unlocked for a while from then. Nothing gets worse meanwhile."
            ),
            None if appeal.claim == "paid" => format!(
                "Waiting for the financier, who should answer by {deadline}. Nothing gets worse \
                 meanwhile. This claim does not unlock the phone at the deadline: the amount \
                 claimed does not lift what is overdue, or the payment is already recorded."
            ),
            None => format!(
                "Waiting for the financier, who should answer by {deadline}. Nothing gets worse \
                 meanwhile."
            ),
        },
    }
}

/// An appeal as the borrower sees it, by its reference: nothing the borrower did not send,
/// and no document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppealPublicView {
    /// The reference to follow it by.
    pub reference: String,
    /// `paid`, `owner` or `wrong_lock`.
    pub claim: String,
    /// `open`, `accepted` or `rejected`.
    pub status: String,
    /// Where it stands, in words.
    pub progress: String,
    /// When it was opened (RFC 3339).
    pub opened_at: String,
    /// When the financier must answer.
    pub deadline: String,
    /// For a payment appeal: until when an unanswered appeal unlocks the phone.
    pub provisional_unlock_until: Option<String>,
    /// When it was answered.
    pub decided_at: Option<String>,
    /// The financier's reason.
    pub decision_reason: Option<String>,
    /// Who decides: the financier's public name.
    pub financier_name: String,
    /// How to reach the financier.
    pub financier_contact: String,
}

/// A document attached to an appeal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentView {
    /// `application/pdf`, `image/jpeg` or `image/png`, recognised from the content.
    pub media_type: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Where the financier and support download it.
    pub url: String,
}

/// An appeal as the financier and support see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppealView {
    /// The reference.
    pub reference: String,
    /// The device.
    pub device_id: String,
    /// `paid`, `owner` or `wrong_lock`.
    pub claim: String,
    /// How to reach the borrower.
    pub contact: String,
    /// The borrower's words.
    pub statement: String,
    /// For `paid`: the payment's reference.
    pub payment_reference: Option<String>,
    /// For `paid`: the date paid.
    pub paid_on: Option<String>,
    /// For `paid`: the amount claimed.
    pub amount: Option<MoneyJson>,
    /// `open`, `accepted` or `rejected`.
    pub status: String,
    /// Where it stands.
    pub progress: String,
    /// Opened at (RFC 3339).
    pub opened_at: String,
    /// The response deadline.
    pub deadline: String,
    /// For `paid`: the end of the provisional unlock an unanswered appeal grants.
    pub provisional_unlock_until: Option<String>,
    /// Answered at.
    pub decided_at: Option<String>,
    /// Answered by (API key id).
    pub decided_by: Option<String>,
    /// The answer's reason.
    pub decision_reason: Option<String>,
    /// The uploaded document.
    pub attachment: Option<AttachmentView>,
}

/// The financier's view of an appeal.
pub fn appeal_view(a: &AppealRecord, now_us: i64) -> AppealView {
    let at = |us: i64| rfc3339(from_micros(us));
    AppealView {
        reference: a.reference.clone(),
        device_id: a.device_id.clone(),
        claim: a.claim.clone(),
        contact: a.contact.clone(),
        statement: a.statement.clone(),
        payment_reference: a.payment_reference.clone(),
        paid_on: a.paid_on.clone(),
        amount: a
            .amount_minor
            .zip(a.currency.clone())
            .map(|(minor, currency)| MoneyJson { minor, currency }),
        status: a.status.clone(),
        progress: progress(a, now_us),
        opened_at: at(a.opened_us),
        deadline: at(a.deadline_us),
        provisional_unlock_until: a.unlock_until_us.map(at),
        decided_at: a.decided_us.map(at),
        decided_by: a.decided_by.clone(),
        decision_reason: a.decision_reason.clone(),
        attachment: a.attachment.as_ref().map(|f| AttachmentView {
            media_type: f.media_type.clone(),
            size: f.size,
            sha256: hex::encode(&f.sha256),
            url: format!("/v1/appeals/{}/attachment", a.reference),
        }),
    }
}

/// The borrower's view of an appeal.
pub async fn public_view(state: &AppState, reference: &str) -> Result<AppealPublicView, ApiError> {
    let reference = reference.trim().to_ascii_uppercase();
    if !plausible_reference(&reference) {
        return Err(ApiError::invalid(
            "reference",
            "an appeal reference looks like AP-XXXX-XXXX-XXXX-XXXX-XXXX",
        ));
    }
    let a = match state.store.appeal(&reference).await {
        Ok(a) => a,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("appeal")),
        Err(e) => return Err(e.into()),
    };
    let financier = state.store.financier(&a.financier_id).await?;
    let now_us = micros(state.clock.now());
    let at = |us: i64| rfc3339(from_micros(us));
    Ok(AppealPublicView {
        reference: a.reference.clone(),
        claim: a.claim.clone(),
        status: a.status.clone(),
        progress: progress(&a, now_us),
        opened_at: at(a.opened_us),
        deadline: at(a.deadline_us),
        provisional_unlock_until: a.unlock_until_us.map(at),
        decided_at: a.decided_us.map(at),
        decision_reason: a.decision_reason.clone(),
        financier_name: financier.name,
        financier_contact: financier.contact,
    })
}

/// The form fields of `POST /v1/public/appeals` (multipart/form-data), for the document.
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)]
pub struct AppealFormDoc {
    /// The phone's IMEI, as the lock screen shows it (or dial *#06#).
    imei: String,
    /// The 8-digit status code the phone's lock screen shows now: the proof that the appellant
    /// holds the phone. The code of the phone's current status token matches, and for
    /// `status_code_grace_hours` (24 by default) after a new token, the previous ones.
    status_code: String,
    /// `paid`, `owner` or `wrong_lock`.
    claim: String,
    /// Where the financier can reach the borrower.
    contact: String,
    /// The borrower's words (required for `wrong_lock`).
    statement: Option<String>,
    /// `paid`: the payment's reference.
    payment_reference: Option<String>,
    /// `paid`: the date paid, YYYY-MM-DD.
    paid_on: Option<String>,
    /// `paid`: the amount, e.g. `1000.00`.
    amount: Option<String>,
    /// `paid`: the currency, e.g. `KES`; it must be the currency of the phone's plan.
    currency: Option<String>,
    /// `paid`: the receipt (a whole PDF, JPEG or PNG file of at least 1 KiB and at most 5 MiB by
    /// default).
    #[schema(value_type = Option<String>, format = Binary)]
    receipt: Option<Vec<u8>>,
    /// `owner`: the proof of purchase.
    #[schema(value_type = Option<String>, format = Binary)]
    proof_of_purchase: Option<Vec<u8>>,
    /// `wrong_lock`: any supporting document.
    #[schema(value_type = Option<String>, format = Binary)]
    document: Option<Vec<u8>>,
}

/// What the borrower gets back: the reference to follow the appeal by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppealOpened {
    /// Keep it: it is the only way to follow the appeal.
    pub reference: String,
    /// Where it stands.
    pub appeal: AppealPublicView,
    /// For a payment appeal that will not unlock the phone if its deadline passes unanswered:
    /// why (nothing is overdue, the amount claimed does not cover what is, or the payment is
    /// already recorded). The appeal is open all the same, and nothing gets worse meanwhile.
    pub provisional_unlock_withheld: Option<String>,
}

/// Opens an appeal, without an account.
#[utoipa::path(
    post,
    path = "/v1/public/appeals",
    tag = "public",
    request_body(content = AppealFormDoc, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The appeal is open; the dispute freeze is in force.", body = AppealOpened),
        (status = 400, description = "The form could not be read.", body = ErrorBody),
        (status = 404, description = "No phone with this IMEI shows this status code: the one answer whatever did not match (an IMEI no financier claims, a phone not set up yet, a wrong or superseded code).", body = ErrorBody),
        (status = 409, description = "The phone is released; or, to an appellant whose IMEI and status code match, an appeal about this phone is already open (the message names its reference) or the last one was rejected less than `appeal_cooldown_hours` ago (the message says from when a new one can be opened).", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong (the currency must be the plan's), or the document is empty, too small, too big, or not a whole PDF, JPEG or PNG; the message names the field.", body = ErrorBody),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = ErrorBody),
    )
)]
pub async fn open(
    State(state): State<AppState>,
    limited: super::public::PublicClient,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    if let Err(limited) = limited.check(&state) {
        return Ok(limited.into_response());
    }
    let form = read_form(multipart, state.settings.appeal_upload_max_bytes).await?;
    let opened = open_appeal(&state, form).await?;
    let view = public_view(&state, &opened.record.reference).await?;
    Ok(json_text(
        StatusCode::CREATED,
        &AppealOpened {
            reference: opened.record.reference,
            appeal: view,
            provisional_unlock_withheld: opened.unlock_withheld,
        },
    )?
    .into_response())
}

/// Follows an appeal by its reference.
#[utoipa::path(
    get,
    path = "/v1/public/appeals/{reference}",
    tag = "public",
    params(("reference" = String, Path, description = "The reference given when the appeal was opened.")),
    responses(
        (status = 200, description = "Status, deadline, decision and reason.", body = AppealPublicView),
        (status = 404, description = "No appeal has this reference.", body = ErrorBody),
        (status = 422, description = "This is not an appeal reference.", body = ErrorBody),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = ErrorBody),
    )
)]
pub async fn follow(
    State(state): State<AppState>,
    limited: super::public::PublicClient,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    if let Err(limited) = limited.check(&state) {
        return Ok(limited.into_response());
    }
    Ok(Json(public_view(&state, &reference).await?).into_response())
}

/// Filters of the appeal list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppealQuery {
    /// `open`, `accepted` or `rejected`.
    pub status: Option<String>,
    /// Only this device's appeals.
    pub device_id: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// The caller's appeals (support and platform admins: all), newest first.
#[utoipa::path(
    get,
    path = "/v1/appeals",
    tag = "appeals",
    security(("api_key" = [])),
    params(AppealQuery),
    responses(
        (status = 200, description = "The appeals.", body = Vec<AppealView>),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not do this.", body = ErrorBody),
        (status = 422, description = "A filter is wrong.", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<AppealQuery>,
) -> Result<Json<Vec<AppealView>>, ApiError> {
    actor.require(Action::Read)?;
    if let Some(s) = &query.status
        && !["open", "accepted", "rejected"].contains(&s.as_str())
    {
        return Err(ApiError::invalid(
            "status",
            "one of open, accepted, rejected",
        ));
    }
    let filter = AppealFilter {
        financier_id: actor.financier_id.clone(),
        status: query.status,
        device_id: query.device_id,
        limit: query.limit.unwrap_or(100).clamp(1, 1000),
    };
    let now_us = micros(state.clock.now());
    let appeals = state.store.list_appeals(&filter).await?;
    Ok(Json(
        appeals.iter().map(|a| appeal_view(a, now_us)).collect(),
    ))
}

/// An appeal the caller may see; another financier's is "not found" like a missing one.
async fn visible_appeal(
    state: &AppState,
    actor: &Actor,
    reference: &str,
) -> Result<AppealRecord, ApiError> {
    match state.store.appeal(reference).await {
        Ok(a) if actor.sees_financier(&a.financier_id) => Ok(a),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("appeal")),
        Err(e) => Err(e.into()),
    }
}

/// One appeal.
#[utoipa::path(
    get,
    path = "/v1/appeals/{reference}",
    tag = "appeals",
    security(("api_key" = [])),
    params(("reference" = String, Path, description = "The appeal's reference.")),
    responses(
        (status = 200, description = "The appeal.", body = AppealView),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not do this.", body = ErrorBody),
        (status = 404, description = "No such appeal among the caller's.", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    actor: Actor,
    Path(reference): Path<String>,
) -> Result<Json<AppealView>, ApiError> {
    actor.require(Action::Read)?;
    let a = visible_appeal(&state, &actor, &reference).await?;
    Ok(Json(appeal_view(&a, micros(state.clock.now()))))
}

/// The document uploaded with an appeal, to the device's financier and support only.
#[utoipa::path(
    get,
    path = "/v1/appeals/{reference}/attachment",
    tag = "appeals",
    security(("api_key" = [])),
    params(("reference" = String, Path, description = "The appeal's reference.")),
    responses(
        (status = 200, description = "The document, as uploaded.", content_type = "application/octet-stream"),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not do this.", body = ErrorBody),
        (status = 404, description = "No such appeal among the caller's, or it has no document.", body = ErrorBody),
    )
)]
pub async fn attachment(
    State(state): State<AppState>,
    actor: Actor,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    actor.require(Action::Read)?;
    let a = visible_appeal(&state, &actor, &reference).await?;
    let file = a.attachment.ok_or(ApiError::NotFound("attachment"))?;
    let bytes = tokio::fs::read(state.settings.data_dir.join(&file.path))
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("reading an upload")))?;
    let ext = file.path.rsplit('.').next().unwrap_or("bin");
    let mut headers = HeaderMap::new();
    let value = |s: &str| {
        s.parse()
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("bad header value")))
    };
    headers.insert(header::CONTENT_TYPE, value(&file.media_type)?);
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(&format!("attachment; filename=\"{}.{ext}\"", a.reference))?,
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, value("nosniff")?);
    headers.insert(header::CACHE_CONTROL, value("private, no-store")?);
    Ok((headers, Body::from(bytes)).into_response())
}

/// The financier's answer to an appeal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealDecision {
    /// `accept` or `reject`.
    pub decision: String,
    /// Why; the borrower sees it. Required to reject.
    #[serde(default)]
    pub reason: String,
    /// Accepting a payment appeal records the claimed payment (reference, amount, date) unless
    /// this is false or a payment with that reference is already recorded.
    #[serde(default)]
    pub record_payment: Option<bool>,
}

/// Answers an appeal: ends its dispute freeze and provisional unlock; accepting a payment
/// appeal records the payment, in the same change.
#[utoipa::path(
    post,
    path = "/v1/appeals/{reference}/decision",
    tag = "appeals",
    security(("api_key" = [])),
    params(("reference" = String, Path, description = "The appeal's reference.")),
    request_body = AppealDecision,
    responses(
        (status = 200, description = "The answered appeal.", body = AppealView),
        (status = 401, description = "No API key, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The role may not do this.", body = ErrorBody),
        (status = 404, description = "No such appeal among the caller's.", body = ErrorBody),
        (status = 409, description = "The appeal is already answered, or the payment is already recorded differently.", body = ErrorBody),
        (status = 422, description = "A field is wrong; the message names it.", body = ErrorBody),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    actor: Actor,
    Path(reference): Path<String>,
    body: Result<Json<AppealDecision>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<AppealView>, ApiError> {
    actor.require(Action::AnswerAppeal)?;
    let Json(answer) = body?;
    let accept = match answer.decision.as_str() {
        "accept" => true,
        "reject" => false,
        other => {
            return Err(ApiError::invalid(
                "decision",
                format!("{other:?} is neither \"accept\" nor \"reject\""),
            ));
        }
    };
    let reason = answer.reason.trim().to_string();
    if !accept && reason.is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "say why the appeal is rejected; the borrower sees it",
        ));
    }
    if reason.chars().count() > 500 {
        return Err(ApiError::invalid("reason", "at most 500 characters"));
    }
    let appeal = visible_appeal(&state, &actor, &reference).await?;
    if appeal.status != "open" {
        return Err(ApiError::Conflict(format!(
            "appeal {} is already {}",
            appeal.reference, appeal.status
        )));
    }
    let record_payment = accept && appeal.claim == "paid" && answer.record_payment.unwrap_or(true);
    let decided_by = actor.key_id.clone();
    let a = appeal.clone();
    let _: JsonText = mutate_device(
        &state,
        &actor,
        &appeal.device_id,
        None,
        move |snapshot, now| {
            answer_mutation(
                snapshot,
                now,
                &a,
                accept,
                reason,
                record_payment,
                decided_by,
            )
        },
    )
    .await?;
    let answered = state.store.appeal(&appeal.reference).await?;
    Ok(Json(appeal_view(&answered, micros(state.clock.now()))))
}

fn answer_mutation(
    snapshot: &DeviceSnapshot,
    now: Timestamp,
    appeal: &AppealRecord,
    accept: bool,
    reason: String,
    record_payment: bool,
    decided_by: String,
) -> Result<Mutation, ApiError> {
    let now_us = micros(now);
    let ours = format!("appeal:{}", appeal.reference);
    // End what the appeal put in force: what has begun ends now, what has not never applies.
    let override_updates = crate::commands::end_or_cancel(
        snapshot.overrides.iter().filter(|o| o.actor == ours),
        now_us,
    );
    let mut payment = None;
    if record_payment
        && let (Some(reference), Some(minor), Some(currency), Some(paid_on)) = (
            &appeal.payment_reference,
            appeal.amount_minor,
            &appeal.currency,
            &appeal.paid_on,
        )
        && !snapshot.payments.iter().any(|p| &p.reference == reference)
    {
        let paid_on: Date = paid_on
            .parse()
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("stored paid_on {paid_on:?}")))?;
        let received = paid_on
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(now)
            .min(now);
        payment = Some(PaymentRecord {
            reference: reference.clone(),
            amount_minor: minor,
            currency: currency.clone(),
            received_us: micros(received),
            recorded_us: now_us,
        });
    }
    let status = if accept { "accepted" } else { "rejected" };
    let mut audit_reason = format!("appeal {} {status}", appeal.reference);
    if !reason.is_empty() {
        audit_reason.push_str(&format!(": {reason}"));
    }
    if let Some(p) = &payment {
        audit_reason.push_str(&format!("; payment {} recorded", p.reference));
    }
    Ok(Mutation {
        action: if accept {
            "appeal_accepted"
        } else {
            "appeal_rejected"
        },
        reason: audit_reason,
        change: DeviceChange {
            payment,
            override_updates,
            appeal: Some(AppealWrite::Decide {
                reference: appeal.reference.clone(),
                status: status.into(),
                decided_us: now_us,
                decided_by,
                reason,
            }),
            ..DeviceChange::default()
        },
        response: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(declared: Option<&str>, bytes: &[u8]) -> Upload {
        Upload {
            field: "receipt".into(),
            file_name: "r".into(),
            declared_type: declared.map(str::to_string),
            bytes: bytes.to_vec(),
        }
    }

    /// A PNG of about `size` bytes, laid out as one: IHDR, IDAT, IEND.
    fn png(size: usize) -> Vec<u8> {
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0; 4]);
            c
        };
        let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        b.extend(chunk(b"IHDR", &[0, 0, 0, 9, 0, 0, 0, 9, 8, 2, 0, 0, 0]));
        b.extend(chunk(b"IDAT", &vec![0x78; size.saturating_sub(57)]));
        b.extend(chunk(b"IEND", b""));
        b
    }

    /// A JPEG of `size` bytes: APP0, a frame header, a scan and the end marker.
    fn jpeg(size: usize) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        b.extend_from_slice(b"JFIF\0");
        b.extend_from_slice(&[1, 1, 0, 0, 1, 0, 1, 0, 0]);
        b.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0, 9, 0, 9, 1, 1, 0x11, 0]);
        b.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0x3F, 0]);
        b.resize(size.saturating_sub(2).max(b.len()), 0x55);
        b.extend_from_slice(&[0xFF, 0xD9]);
        b
    }

    /// A PDF of about `size` bytes: header, one object, startxref and %%EOF.
    fn pdf(size: usize) -> Vec<u8> {
        let mut b = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%".to_vec();
        b.resize(size.saturating_sub(20).max(b.len()), b' ');
        b.extend_from_slice(b"\nstartxref\n0\n%%EOF\n");
        b
    }

    #[test]
    fn uploads_are_recognised_by_content_and_refused_with_the_field_named() {
        let max = 10_000;
        assert_eq!(
            check_upload(&upload(Some("application/pdf"), &pdf(2000)), max).unwrap(),
            ("application/pdf", "pdf")
        );
        assert_eq!(
            check_upload(&upload(None, &jpeg(2000)), max).unwrap(),
            ("image/jpeg", "jpg")
        );
        assert_eq!(
            check_upload(&upload(Some("image/png"), &png(2000)), max).unwrap(),
            ("image/png", "png")
        );
        let empty = check_upload(&upload(Some("image/png"), b""), max).unwrap_err();
        assert_eq!(empty.to_string(), "receipt: the file is empty");
        let big = check_upload(&upload(None, &pdf(max as usize + 100)), max).unwrap_err();
        assert!(
            big.to_string()
                .starts_with("receipt: the file is larger than"),
            "{big}"
        );
        let text = check_upload(&upload(Some("text/plain"), &pdf(2000)), max).unwrap_err();
        assert!(text.to_string().contains("only PDF, JPEG or PNG"), "{text}");
        let disguised = check_upload(&upload(Some("image/png"), b"MZ\x90\0"), max).unwrap_err();
        assert!(
            disguised.to_string().contains("is not a PDF, JPEG or PNG"),
            "{disguised}"
        );
    }

    #[test]
    fn a_file_that_only_starts_like_a_document_is_refused() {
        let max = 10_000;
        // The first bytes and filler: what buys nothing any more.
        for (bytes, kind) in [
            (
                [&png(0)[..8], &[0u8; 2000][..]].concat(),
                "starts like a PNG but is not a whole one",
            ),
            (
                [&[0xFF, 0xD8, 0xFF][..], &[0x41; 2000][..]].concat(),
                "starts like a JPG but is not a whole one",
            ),
            (
                [&b"%PDF-1.7\n"[..], &[b' '; 2000][..]].concat(),
                "starts like a PDF but is not a whole one",
            ),
        ] {
            let refused = check_upload(&upload(None, &bytes), max).unwrap_err();
            assert!(refused.to_string().contains(kind), "{refused}");
        }
        // Cut off: the end is missing.
        let mut cut = png(2000);
        cut.truncate(1500);
        assert!(check_upload(&upload(None, &cut), max).is_err());
        let mut cut = jpeg(2000);
        cut.truncate(1500);
        assert!(check_upload(&upload(None, &cut), max).is_err());
        // Whole, but too small to be a receipt.
        let tiny = check_upload(&upload(None, &png(100)), max).unwrap_err();
        assert!(tiny.to_string().contains("too small"), "{tiny}");
        assert!(
            png_is_whole(&png(100)),
            "the sample itself is laid out right"
        );
    }

    #[test]
    fn amounts_are_read_in_minor_units() {
        let kes = Currency::parse("KES").unwrap();
        assert_eq!(parse_amount("amount", "1000", kes).unwrap(), 100_000);
        assert_eq!(parse_amount("amount", "1,000.5", kes).unwrap(), 100_050);
        assert!(parse_amount("amount", "10.001", kes).is_err());
        assert!(parse_amount("amount", "-3", kes).is_err());
        assert!(parse_amount("amount", "0", kes).is_err());
        assert_eq!(Money::new(100_050, kes).to_string(), "KES 1000.50");
    }

    #[test]
    fn references_are_long_and_recognisable() {
        let r = new_reference().unwrap();
        assert!(plausible_reference(&r), "{r}");
        assert_ne!(r, new_reference().unwrap());
    }
}
