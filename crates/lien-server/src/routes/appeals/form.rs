//! Reading and checking what a borrower sends: the multipart form (bounded as it is read), the
//! uploaded document (recognised by its content and laid out as a whole file), the holder's
//! proof fields and the claim with the fields it requires. Every refusal names its field. The
//! fuzz targets (crates/lien-fuzz) call these through `lien_server::fuzzing`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Multipart;
use axum::http::StatusCode;
use jiff::civil::Date;
use lien_core::{Currency, Imei, Money, PaymentRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::app::AppState;
use crate::commands::appeals::{AppealRequest, Claim, ClaimKind, Document};
use crate::error::ApiError;
use crate::input::holder_proof;

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
#[derive(Debug, Default)]
pub struct AppealForm {
    /// Text fields by name (the last value wins).
    pub fields: HashMap<String, String>,
    /// The one file, if any was chosen.
    pub file: Option<Upload>,
    /// The form's share of [`AppState::appeal_uploads`], a KiB for each KiB it holds, kept as
    /// long as its bytes are.
    in_flight: Option<OwnedSemaphorePermit>,
}

impl AppealForm {
    /// A form made in memory, not read from a client (the simulation's borrowers): it holds no
    /// share of the upload budget.
    pub fn new(fields: HashMap<String, String>, file: Option<Upload>) -> AppealForm {
        AppealForm {
            fields,
            file,
            in_flight: None,
        }
    }

    /// Takes from `budget` (KiB) what the form's `held` bytes need beyond what it holds already.
    fn cover(&mut self, budget: &Arc<Semaphore>, held: usize) -> Result<(), ApiError> {
        let wanted = u32::try_from(held.div_ceil(1024)).unwrap_or(u32::MAX);
        let holding = self
            .in_flight
            .as_ref()
            .map_or(0, |p| p.num_permits() as u32);
        if wanted <= holding {
            return Ok(());
        }
        let more = budget
            .clone()
            .try_acquire_many_owned(wanted - holding)
            .map_err(|_| {
                ApiError::Unavailable(
                    "too many documents are being uploaded at once; try again in a minute".into(),
                )
            })?;
        match &mut self.in_flight {
            Some(permit) => permit.merge(more),
            None => self.in_flight = Some(more),
        }
        Ok(())
    }

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

/// Reads a multipart form, stopping as soon as a file passes `appeal_upload_max_bytes` or a text
/// field passes its bound, so a huge upload costs the server no more than the limit. The bytes
/// held are counted, as they arrive, against the server's budget for all forms
/// ([`crate::app::APPEAL_UPLOAD_BYTES_IN_FLIGHT`]): many slow uploads from many addresses may
/// not hold more than that in memory together, and a form that finds the budget spent is
/// refused (503). Counting what arrived, not what a form may hold, means that holding the
/// budget takes sending that many bytes.
pub async fn read_form(state: &AppState, multipart: Multipart) -> Result<AppealForm, ApiError> {
    let max_file = state.settings.appeal_upload_max_bytes;
    read_form_within(multipart, max_file, &state.appeal_uploads).await
}

/// [`read_form`] with its limit and budget given (the fuzzing harness has no server).
pub async fn read_form_within(
    mut multipart: Multipart,
    max_file: u64,
    budget: &Arc<Semaphore>,
) -> Result<AppealForm, ApiError> {
    let mut form = AppealForm::default();
    let mut held = 0usize;
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
                    held += chunk.len();
                    form.cover(budget, held)?;
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

/// Reads the holder's proof from an appeal form (see [`holder_proof`]).
pub(super) fn proof_fields(form: &AppealForm) -> Result<(Imei, String), ApiError> {
    holder_proof(form.text("imei"), form.text("status_code"))
}

/// Checks a form as [`checked_request`] does before it looks anything up: the claim and the fields
/// it requires, each refusal naming its field. For the fuzz targets (crates/lien-fuzz).
#[doc(hidden)]
pub fn check_form(form: &AppealForm, today: Date) -> Result<(), ApiError> {
    check_claim(form, today).map(|_| ())
}

/// The request a form makes, checked in the order a borrower reads the form: the holder's
/// proof (IMEI and status code), the claim and the fields it requires, then the document
/// (`max_file` bytes at most). Nothing here looks at any phone.
pub fn checked_request(
    form: AppealForm,
    today: Date,
    max_file: u64,
) -> Result<AppealRequest, ApiError> {
    let (imei, status_code) = proof_fields(&form)?;
    let claim = check_claim(&form, today)?;
    let document = match form.file {
        Some(upload) => {
            let (media_type, ext) = check_upload(&upload, max_file)?;
            Some(Document {
                bytes: upload.bytes,
                media_type,
                ext,
            })
        }
        None => None,
    };
    Ok(AppealRequest {
        imei,
        status_code,
        claim,
        document,
    })
}

pub(super) fn check_claim(form: &AppealForm, today: Date) -> Result<Claim, ApiError> {
    let claim_text = form
        .text("claim")
        .ok_or_else(|| ApiError::invalid("claim", "choose one: paid, owner or wrong_lock"))?;
    let claim = ClaimKind::parse(claim_text).ok_or_else(|| {
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
        ClaimKind::Paid => {
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
        ClaimKind::Owner => {
            if form.file.is_none() {
                return Err(ApiError::invalid(
                    "proof_of_purchase",
                    "attach the proof of purchase (PDF, JPEG or PNG)",
                ));
            }
        }
        ClaimKind::WrongLock => {
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
        let r = crate::commands::appeals::new_reference().unwrap();
        assert!(crate::commands::appeals::plausible_reference(&r), "{r}");
        assert_ne!(r, crate::commands::appeals::new_reference().unwrap());
    }
}
