//! M-Pesa's C2B API (Safaricom's Daraja): the validation and confirmation callbacks, read into
//! typed values, and the financier's endpoint they arrive at.
//!
//! **The endpoint.** Daraja cannot sign its callbacks, so the URLs a financier registers with
//! it carry the secret: `/v1/providers/mpesa/{token}/validation` and `.../confirmation`, where
//! the token is `mpt_` and 43 characters of base64url randomness, made by Lien when the financier
//! creates or rotates the endpoint, shown once and stored as its SHA-256 (as API keys are). A
//! rotation stops the old token at once. The financier may also name the networks callbacks may
//! come from (Safaricom publishes its callback addresses); the client address is the server's
//! usual one (`client_addr`: the peer, or behind a trusted proxy the address it forwards). An
//! unknown token is a 404 that writes nothing; a known token from a source outside the list is
//! a 403.
//!
//! **The account.** The account number a borrower types on the phone (`BillRefNumber`) is the
//! device's contract reference, exactly as enrolled (surrounding spaces ignored): the one
//! identifier the financier already gave the borrower, unique within the financier, and never
//! a device id or an IMEI, which the borrower should not need to know.
//!
//! **Money.** M-Pesa moves Kenyan shillings only: `TransAmount` is read as KES with
//! `lien-money`'s parser (at most two decimals, positive, at most the largest payment), and a
//! device whose plan is in another currency cannot be paid through it. `TransTime` is the
//! provider's local time, `YYYYMMDDHHMMSS` in Africa/Nairobi.
//!
//! **The payer.** The borrower's phone number (`MSISDN`) is kept only as a keyed hash (HMAC-SHA256
//! under a key derived, per financier, from the server's root key: see `Secrets::payer_key`),
//! and only with an unmatched payment, where it lets the financier's support confirm a caller's
//! claim without anyone storing the number; the names are read for their length and dropped.
//!
//! **Answers.** Daraja expects `{"ResultCode": ..., "ResultDesc": ...}`. A validation is
//! accepted with `"0"`, or rejected with one of Daraja's codes ([`Rejection`]), and then the
//! money never leaves the borrower. A confirmation is acknowledged with `0` once the payment is
//! recorded on its device, or kept as an unmatched payment: a confirmed payment is never lost.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use ipnet::IpNet;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use lien_store::{AuditEntry, MpesaEndpointRecord, StoreError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{Action, Actor, hash_key};
use crate::clock::{from_micros, micros};
use crate::commands::payments::MAX_PAYMENT_MINOR;
use crate::domain::rfc3339;
use crate::error::ApiError;

/// The provider's name, as unmatched payments record it.
pub const PROVIDER: &str = "mpesa";

/// The one currency M-Pesa moves.
pub const CURRENCY: &str = "KES";

/// The provider's time zone, in which `TransTime` is written.
pub const TIME_ZONE: &str = "Africa/Nairobi";

/// What a callback body may weigh: Daraja's are well under 1 KiB.
pub const MAX_CALLBACK_BODY_BYTES: usize = 4 * 1024;

/// The most networks an endpoint's allow-list may name.
pub const MAX_ALLOWED_SOURCES: usize = 32;

/// The longest account number kept: Daraja's own limit is 20 characters.
pub const MAX_ACCOUNT_CHARS: usize = 64;

/// The longest transaction id: Daraja's are 10 characters.
pub const MAX_TRANS_ID_CHARS: usize = 32;

/// The longest payer's number (or the provider's mask or hash of it) that is hashed.
const MAX_MSISDN_CHARS: usize = 128;

/// The longest any other field may be.
const MAX_FIELD_CHARS: usize = 100;

/// Daraja's C2B validation or confirmation request, as the provider documents it. Every field
/// is text; fields Lien does not use are checked for length only. Unknown fields are ignored,
/// as the provider adds some over time.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct C2bCallback {
    /// `Pay Bill` or `Buy Goods` (`CustomerPayBillOnline` in the sandbox).
    #[serde(default)]
    pub transaction_type: Option<String>,
    /// M-Pesa's transaction id, e.g. `RKTQDM7W6S`: the payment's reference and idempotency key.
    #[serde(rename = "TransID")]
    pub trans_id: String,
    /// When M-Pesa took the payment: `YYYYMMDDHHMMSS`, Africa/Nairobi time.
    pub trans_time: String,
    /// The amount in shillings, a decimal string such as `1500.00`.
    pub trans_amount: String,
    /// The financier's paybill or till number.
    #[serde(default)]
    pub business_short_code: Option<String>,
    /// The account number the borrower typed: the device's contract reference.
    #[serde(default)]
    pub bill_ref_number: Option<String>,
    /// Not used.
    #[serde(default)]
    pub invoice_number: Option<String>,
    /// Not used.
    #[serde(default)]
    pub org_account_balance: Option<String>,
    /// Not used.
    #[serde(default, rename = "ThirdPartyTransID")]
    pub third_party_trans_id: Option<String>,
    /// The payer's phone number (often masked by the provider): kept only as a keyed hash.
    #[serde(default, rename = "MSISDN")]
    pub msisdn: Option<String>,
    /// The payer's names: never kept.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Never kept.
    #[serde(default)]
    pub middle_name: Option<String>,
    /// Never kept.
    #[serde(default)]
    pub last_name: Option<String>,
}

/// Lien's answer to a validation: `"0"` to accept, or a Daraja rejection code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ValidationAnswer {
    /// `0`, or `C2B00011` (invalid MSISDN), `C2B00012` (invalid account number), `C2B00013`
    /// (invalid amount), `C2B00015` (invalid shortcode), `C2B00016` (other error).
    #[serde(rename = "ResultCode")]
    pub result_code: String,
    /// `Accepted`, or `Rejected:` and why.
    #[serde(rename = "ResultDesc")]
    pub result_desc: String,
}

/// Lien's acknowledgement of a confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfirmationAnswer {
    /// Always 0: the payment is recorded on its device or kept as unmatched.
    #[serde(rename = "ResultCode")]
    pub result_code: u8,
    /// `Accepted`.
    #[serde(rename = "ResultDesc")]
    pub result_desc: String,
}

impl ValidationAnswer {
    /// The acceptance.
    pub fn accepted() -> ValidationAnswer {
        ValidationAnswer {
            result_code: "0".into(),
            result_desc: "Accepted".into(),
        }
    }
}

impl ConfirmationAnswer {
    /// The acknowledgement.
    pub fn accepted() -> ConfirmationAnswer {
        ConfirmationAnswer {
            result_code: 0,
            result_desc: "Accepted".into(),
        }
    }
}

/// Why a validation is rejected, as Daraja's codes say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `C2B00011`.
    InvalidMsisdn,
    /// `C2B00012`: no device has this account number.
    InvalidAccount,
    /// `C2B00013`: not a positive amount of shillings Lien accepts.
    InvalidAmount,
    /// `C2B00016`: anything else (the device cannot take shillings, a malformed field).
    Other,
}

impl Rejection {
    /// Daraja's code.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::InvalidMsisdn => "C2B00011",
            Rejection::InvalidAccount => "C2B00012",
            Rejection::InvalidAmount => "C2B00013",
            Rejection::Other => "C2B00016",
        }
    }
}

/// A callback Lien cannot take: Daraja's rejection code, and the field and problem in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The code a validation answers with.
    pub rejection: Rejection,
    /// `Field: problem`.
    pub message: String,
}

impl Refused {
    fn new(rejection: Rejection, field: &str, problem: impl std::fmt::Display) -> Refused {
        Refused {
            rejection,
            message: format!("{field}: {problem}"),
        }
    }

    /// The validation's answer.
    pub fn answer(&self) -> ValidationAnswer {
        ValidationAnswer {
            result_code: self.rejection.code().into(),
            result_desc: format!("Rejected: {}", self.message),
        }
    }

    /// The confirmation's error: the field and problem, as a 422.
    pub fn into_api_error(self) -> ApiError {
        ApiError::Invalid(self.message)
    }
}

/// A callback, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct C2bPayment {
    /// M-Pesa's transaction id.
    pub trans_id: String,
    /// When M-Pesa took the payment.
    pub received_at: Timestamp,
    /// The amount, in cents of a shilling.
    pub amount_minor: i64,
    /// The account number, trimmed; empty when the borrower typed none (a till payment).
    pub account: String,
    /// Whether `account` is all that was typed (a confirmation's is cut to its bound).
    pub account_complete: bool,
    /// The payer's number as sent, to be hashed; never stored.
    msisdn: Option<String>,
}

impl std::fmt::Debug for C2bPayment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C2bPayment")
            .field("trans_id", &self.trans_id)
            .field("received_at", &self.received_at)
            .field("amount_minor", &self.amount_minor)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl C2bPayment {
    /// Checks a validation: every field bounded, the transaction id, the time and the amount
    /// read. The account is checked against the devices by the caller.
    pub fn parse(callback: &C2bCallback) -> Result<C2bPayment, Refused> {
        C2bPayment::read(callback, true)
    }

    /// Checks a confirmation. M-Pesa has taken the money by then, so only what a payment cannot
    /// be recorded without (the transaction id, the time, the amount) is refused: a field Lien
    /// does not keep is ignored when it is too long, a payer's number then goes unhashed, and
    /// an account number too long for any device is cut to its bound and matches none.
    pub fn parse_confirmed(callback: &C2bCallback) -> Result<C2bPayment, Refused> {
        C2bPayment::read(callback, false)
    }

    fn read(callback: &C2bCallback, strict: bool) -> Result<C2bPayment, Refused> {
        let optional = [
            ("TransactionType", &callback.transaction_type),
            ("BusinessShortCode", &callback.business_short_code),
            ("InvoiceNumber", &callback.invoice_number),
            ("OrgAccountBalance", &callback.org_account_balance),
            ("ThirdPartyTransID", &callback.third_party_trans_id),
            ("FirstName", &callback.first_name),
            ("MiddleName", &callback.middle_name),
            ("LastName", &callback.last_name),
        ];
        for (field, value) in optional {
            if strict
                && value
                    .as_deref()
                    .is_some_and(|v| v.chars().count() > MAX_FIELD_CHARS)
            {
                return Err(Refused::new(
                    Rejection::Other,
                    field,
                    format!("must be at most {MAX_FIELD_CHARS} characters"),
                ));
            }
        }
        let trans_id = callback.trans_id.trim();
        if trans_id.is_empty()
            || trans_id.chars().count() > MAX_TRANS_ID_CHARS
            || !trans_id.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(Refused::new(
                Rejection::Other,
                "TransID",
                format!("must be 1 to {MAX_TRANS_ID_CHARS} letters and digits"),
            ));
        }
        let received_at = parse_trans_time(&callback.trans_time)?;
        let amount_minor = parse_amount(&callback.trans_amount)?;
        let typed = callback.bill_ref_number.as_deref().unwrap_or("").trim();
        let account_complete = typed.chars().count() <= MAX_ACCOUNT_CHARS;
        if strict && !account_complete {
            return Err(Refused::new(
                Rejection::InvalidAccount,
                "BillRefNumber",
                format!("must be at most {MAX_ACCOUNT_CHARS} characters"),
            ));
        }
        let account = typed
            .chars()
            .take(MAX_ACCOUNT_CHARS)
            .collect::<String>()
            .trim_end()
            .to_string();
        // Any text: the provider masks or hashes numbers in forms of its own choosing.
        let msisdn = match callback.msisdn.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(number)
                if number.chars().count() <= MAX_MSISDN_CHARS
                    && !number.chars().any(char::is_control) =>
            {
                Some(number.to_string())
            }
            Some(_) if strict => {
                return Err(Refused::new(
                    Rejection::InvalidMsisdn,
                    "MSISDN",
                    format!("must be at most {MAX_MSISDN_CHARS} printable characters"),
                ));
            }
            Some(_) => None,
        };
        Ok(C2bPayment {
            trans_id: trans_id.to_string(),
            received_at,
            amount_minor,
            account,
            account_complete,
            msisdn,
        })
    }

    /// The payer's keyed hash under `key` (see `Secrets::payer_key`), if a number was sent.
    pub fn payer_hash(&self, key: &[u8; 32]) -> Option<Vec<u8>> {
        let number = self.msisdn.as_deref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(number.trim_start_matches('+').as_bytes());
        Some(mac.finalize().into_bytes().to_vec())
    }
}

/// `TransTime`: `YYYYMMDDHHMMSS`, the provider's local time.
pub(crate) fn parse_trans_time(text: &str) -> Result<Timestamp, Refused> {
    let text = text.trim();
    let refused = || {
        Refused::new(
            Rejection::Other,
            "TransTime",
            format!("{text:?} is not a time in the form YYYYMMDDHHMMSS"),
        )
    };
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    let civil = DateTime::strptime("%Y%m%d%H%M%S", text).map_err(|_| refused())?;
    let zone = TimeZone::get(TIME_ZONE).map_err(|_| refused())?;
    civil
        .to_zoned(zone)
        .map(|z| z.timestamp())
        .map_err(|_| refused())
}

/// `TransAmount`: shillings as a decimal string, positive, at most two decimals.
fn parse_amount(text: &str) -> Result<i64, Refused> {
    let digits = lien_money::minor_digits(CURRENCY).unwrap_or(2);
    let minor = lien_money::parse_decimal("TransAmount", text, digits).map_err(|e| Refused {
        rejection: Rejection::InvalidAmount,
        message: e.to_string(),
    })?;
    if minor <= 0 {
        return Err(Refused::new(
            Rejection::InvalidAmount,
            "TransAmount",
            "must be positive",
        ));
    }
    if minor > MAX_PAYMENT_MINOR {
        return Err(Refused::new(
            Rejection::InvalidAmount,
            "TransAmount",
            "is larger than any payment Lien accepts",
        ));
    }
    Ok(minor)
}

/// A new endpoint token: `mpt_` and 43 characters of base64url randomness.
fn new_token() -> Result<String, ApiError> {
    let bytes = crate::secrets::random_bytes().map_err(ApiError::Internal)?;
    Ok(format!("mpt_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The financier's request to create or rotate its M-Pesa endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// The networks callbacks may come from, as addresses or CIDR networks (e.g.
    /// `196.201.214.0/24`); empty or absent for any source.
    #[serde(default)]
    pub allowed_sources: Vec<String>,
}

/// A created or rotated endpoint: the token, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EndpointCreated {
    /// The financier.
    pub financier_id: String,
    /// The secret in the callback URLs; stored only as its hash.
    pub token: String,
    /// The path to register with Daraja as the ValidationURL (after this server's address).
    pub validation_path: String,
    /// The path to register as the ConfirmationURL.
    pub confirmation_path: String,
    /// The networks callbacks may come from; empty for any.
    pub allowed_sources: Vec<String>,
    /// When this token was made.
    pub created_at: String,
}

/// An endpoint as listed: everything but its token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    /// The financier.
    pub financier_id: String,
    /// The networks callbacks may come from; empty for any.
    pub allowed_sources: Vec<String>,
    /// When the current token was made.
    pub created_at: String,
}

/// The allow-list as typed, checked and normalised.
fn parse_sources(sources: &[String]) -> Result<Vec<IpNet>, ApiError> {
    if sources.len() > MAX_ALLOWED_SOURCES {
        return Err(ApiError::invalid(
            "allowed_sources",
            format!("must name at most {MAX_ALLOWED_SOURCES} networks"),
        ));
    }
    sources
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let text = text.trim();
            text.parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ApiError::invalid(
                        &format!("allowed_sources[{i}]"),
                        format!(
                            "{:?} is neither an IP address nor a CIDR network",
                            text.chars().take(60).collect::<String>()
                        ),
                    )
                })
        })
        .collect()
}

/// The stored allow-list.
fn stored_sources(endpoint: &MpesaEndpointRecord) -> Result<Vec<IpNet>, ApiError> {
    let texts: Vec<String> = serde_json::from_str(&endpoint.allowed_sources)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored allowed_sources: {e}")))?;
    parse_sources(&texts)
}

fn paths(token: &str) -> (String, String) {
    (
        format!("/v1/providers/mpesa/{token}/validation"),
        format!("/v1/providers/mpesa/{token}/confirmation"),
    )
}

/// Creates the financier's endpoint, or rotates its token (the old one stops at once), with
/// the allow-list given; audited in the financier's chain. The token is in the answer only.
pub async fn put_endpoint(
    state: &AppState,
    actor: &Actor,
    financier_id: &str,
    req: EndpointRequest,
) -> Result<EndpointCreated, ApiError> {
    actor.require(Action::ManageKeys)?;
    crate::commands::visible_financier(state, actor, financier_id).await?;
    let sources: Vec<String> = parse_sources(&req.allowed_sources)?
        .iter()
        .map(IpNet::to_string)
        .collect();
    let rotated = match state.store.mpesa_endpoint(financier_id).await {
        Ok(_) => true,
        Err(StoreError::NotFound) => false,
        Err(e) => return Err(e.into()),
    };
    let token = new_token()?;
    let now = state.clock.now();
    let record = MpesaEndpointRecord {
        financier_id: financier_id.to_string(),
        token_hash: hash_key(&token),
        allowed_sources: serde_json::to_string(&sources)
            .map_err(|e| ApiError::Internal(e.into()))?,
        created_us: micros(now),
    };
    let audit = AuditEntry {
        at_us: micros(now),
        actor: actor.key_id.clone(),
        action: if rotated {
            "mpesa_endpoint_rotated"
        } else {
            "mpesa_endpoint_created"
        }
        .into(),
        reason: "M-Pesa C2B callback endpoint".into(),
        before_json: serde_json::json!({ "endpoint": rotated }).to_string(),
        after_json: serde_json::json!({ "endpoint": true, "allowed_sources": sources }).to_string(),
    };
    state
        .store
        .put_mpesa_endpoint(&record, &crate::api_keys::chain(Some(financier_id)), &audit)
        .await?;
    let (validation_path, confirmation_path) = paths(&token);
    Ok(EndpointCreated {
        financier_id: financier_id.to_string(),
        token,
        validation_path,
        confirmation_path,
        allowed_sources: sources,
        created_at: rfc3339(now),
    })
}

/// The financier's endpoint, without its token.
pub async fn endpoint_view(
    state: &AppState,
    actor: &Actor,
    financier_id: &str,
) -> Result<EndpointView, ApiError> {
    actor.require(Action::ManageKeys)?;
    if !actor.sees_financier(financier_id) {
        return Err(ApiError::NotFound("M-Pesa endpoint"));
    }
    let endpoint = match state.store.mpesa_endpoint(financier_id).await {
        Ok(endpoint) => endpoint,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("M-Pesa endpoint")),
        Err(e) => return Err(e.into()),
    };
    Ok(EndpointView {
        financier_id: endpoint.financier_id.clone(),
        allowed_sources: stored_sources(&endpoint)?
            .iter()
            .map(IpNet::to_string)
            .collect(),
        created_at: rfc3339(from_micros(endpoint.created_us)),
    })
}

/// Who a callback is from: the endpoint its token names (`None` for an unknown token), checked
/// against its allow-list.
pub async fn caller(
    state: &AppState,
    token: &str,
    client: IpAddr,
) -> Result<Option<MpesaEndpointRecord>, ApiError> {
    // A token Lien never made is not looked up: its hash could match nothing.
    if !token.starts_with("mpt_") || token.len() > 64 {
        return Ok(None);
    }
    let endpoint = match state.store.mpesa_endpoint_by_token(&hash_key(token)).await {
        Ok(endpoint) => endpoint,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // `client` comes from `client_addr::client_ip`, with IPv4-mapped addresses made IPv4.
    let sources = stored_sources(&endpoint)?;
    if !sources.is_empty() && !sources.iter().any(|net| net.contains(&client)) {
        return Err(ApiError::Forbidden(
            "this endpoint does not take callbacks from this address".into(),
        ));
    }
    Ok(Some(endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(amount: &str, time: &str) -> C2bCallback {
        serde_json::from_value(serde_json::json!({
            "TransactionType": "Pay Bill",
            "TransID": "RKTQDM7W6S",
            "TransTime": time,
            "TransAmount": amount,
            "BusinessShortCode": "600638",
            "BillRefNumber": " C-1001 ",
            "InvoiceNumber": "",
            "OrgAccountBalance": "49197.00",
            "ThirdPartyTransID": "",
            "MSISDN": "254708374149",
            "FirstName": "John",
            "MiddleName": "",
            "LastName": "Doe"
        }))
        .unwrap()
    }

    #[test]
    fn a_documented_callback_is_read_in_nairobi_time_and_shillings() {
        let payment = C2bPayment::parse(&callback("1500.50", "20260205103000")).unwrap();
        assert_eq!(payment.trans_id, "RKTQDM7W6S");
        assert_eq!(payment.account, "C-1001");
        assert_eq!(payment.amount_minor, 150_050);
        assert_eq!(
            payment.received_at,
            "2026-02-05T07:30:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            C2bPayment::parse(&callback("10", "20260205103000"))
                .unwrap()
                .amount_minor,
            1000
        );
        // The payer's number is hashed, never shown.
        assert!(!format!("{payment:?}").contains("254708374149"));
        let hash = payment.payer_hash(&[1; 32]).unwrap();
        assert_eq!(hash.len(), 32);
        assert_ne!(Some(hash), payment.payer_hash(&[2; 32]));
    }

    #[test]
    fn bad_amounts_and_times_are_refused_with_daraja_codes() {
        for amount in ["0", "0.00", "-5", "10.005", "ten", "", "1e3"] {
            let refused = C2bPayment::parse(&callback(amount, "20260205103000")).unwrap_err();
            assert_eq!(refused.rejection, Rejection::InvalidAmount, "{amount}");
            assert_eq!(refused.answer().result_code, "C2B00013");
            assert!(refused.message.starts_with("TransAmount"), "{refused:?}");
        }
        for time in ["2026-02-05", "20261305103000", "2026020510300", "x"] {
            let refused = C2bPayment::parse(&callback("10", time)).unwrap_err();
            assert_eq!(refused.rejection, Rejection::Other, "{time}");
            assert!(refused.message.starts_with("TransTime"), "{refused:?}");
        }
        let mut long = callback("10", "20260205103000");
        long.bill_ref_number = Some("A".repeat(65));
        assert_eq!(
            C2bPayment::parse(&long).unwrap_err().rejection,
            Rejection::InvalidAccount
        );
        let mut bad_id = callback("10", "20260205103000");
        bad_id.trans_id = "RK'; DROP".into();
        assert_eq!(
            C2bPayment::parse(&bad_id).unwrap_err().rejection,
            Rejection::Other
        );
        let mut bad_number = callback("10", "20260205103000");
        bad_number.msisdn = Some("1".repeat(129));
        assert_eq!(
            C2bPayment::parse(&bad_number)
                .unwrap_err()
                .answer()
                .result_code,
            "C2B00011"
        );
    }

    #[test]
    fn a_confirmation_is_refused_only_for_what_a_payment_needs() {
        let mut odd = callback("10", "20260205103000");
        odd.msisdn = Some("1".repeat(129));
        odd.first_name = Some("x".repeat(500));
        odd.bill_ref_number = Some("A".repeat(70));
        let payment = C2bPayment::parse_confirmed(&odd).unwrap();
        assert_eq!(payment.payer_hash(&[1; 32]), None);
        assert!(!payment.account_complete);
        assert_eq!(payment.account, "A".repeat(MAX_ACCOUNT_CHARS));
        // A number the provider masked or hashed is hashed as it came.
        odd.msisdn = Some("2547 ***** 126".into());
        assert!(
            C2bPayment::parse_confirmed(&odd)
                .unwrap()
                .payer_hash(&[1; 32])
                .is_some()
        );
        let mut no_amount = callback("0", "20260205103000");
        no_amount.msisdn = None;
        assert_eq!(
            C2bPayment::parse_confirmed(&no_amount)
                .unwrap_err()
                .rejection,
            Rejection::InvalidAmount
        );
    }

    #[test]
    fn allowed_sources_are_addresses_or_networks() {
        let nets = parse_sources(&["196.201.214.0/24".into(), "2001:db8::1".into()]).unwrap();
        assert!(nets[0].contains(&"196.201.214.200".parse::<IpAddr>().unwrap()));
        assert!(!nets[0].contains(&"196.201.215.1".parse::<IpAddr>().unwrap()));
        let err = parse_sources(&["safaricom".into()])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("allowed_sources[0]"), "{err}");
    }
}
