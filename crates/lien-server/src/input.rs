//! Checks of what comes from outside, shared by the handlers and the commands: each refusal
//! is a 422 naming the field (but a CSV file whose header cannot be read, a 400).

use lien_core::Imei;

use crate::error::ApiError;

/// A non-empty text of at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_string())
}

/// A payment link as the borrower's pages will show it: an absolute `https` URL with a host,
/// at most 200 characters. Anything else (`javascript:`, `data:`, plain `http`) is refused.
pub fn payment_link(link: &str) -> Result<String, ApiError> {
    let link = required_text("payment_link", link, 200)?;
    let parsed = url::Url::parse(&link)
        .map_err(|e| ApiError::invalid("payment_link", format!("is not a URL ({e})")))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            "payment_link",
            "must be an https:// address",
        ));
    }
    Ok(parsed.to_string())
}

/// An IMEI as typed: 15 digits, or a 16-digit IMEISV.
pub fn parse_imei(field: &str, text: &str) -> Result<Imei, ApiError> {
    let text = text.trim();
    let parsed = if text.len() == 16 {
        Imei::from_imeisv(text)
    } else {
        Imei::parse(text)
    };
    parsed.map_err(|e| ApiError::invalid(field, e))
}

/// A phone's IMEIs as a request names them: `imei1`, and `imei2` where it has a second SIM
/// slot; an error names the field.
pub fn parse_imeis(imei1: &str, imei2: Option<&str>) -> Result<(Imei, Option<Imei>), ApiError> {
    let imei1 = parse_imei("imei1", imei1)?;
    let imei2 = imei2.map(|i| parse_imei("imei2", i)).transpose()?;
    Ok((imei1, imei2))
}

/// A new id: `prefix_` and 16 hex digits of randomness.
pub fn new_id(prefix: &str) -> Result<String, ApiError> {
    let bytes = crate::secrets::random_bytes().map_err(ApiError::Internal)?;
    Ok(format!("{prefix}_{}", hex::encode(&bytes[..8])))
}

/// Opens an uploaded CSV file (the bulk enrollment, a provider's statement): a reader over its
/// rows, fields trimmed, and its header row, or a 400 that says the header could not be read.
pub fn csv_reader(body: &[u8]) -> Result<(csv::Reader<&[u8]>, csv::StringRecord), ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| ApiError::BadRequest(format!("CSV header: {e}")))?
        .clone();
    Ok((reader, headers))
}

/// Reads the holder's proof (an appeal's, a hardship request's): the IMEI and the 8-digit status code the lock screen
/// shows. A missing or malformed field is named (that says nothing about any phone).
pub fn holder_proof(
    imei: Option<&str>,
    status_code: Option<&str>,
) -> Result<(Imei, String), ApiError> {
    let compact = |text: &str| -> String { text.chars().filter(|c| !c.is_whitespace()).collect() };
    let imei_text = imei.ok_or_else(|| {
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
    let code = compact(status_code.ok_or_else(|| {
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
