//! Any other payment provider or bank: a JSON payment callback signed per Standard Webhooks
//! (<https://www.standardwebhooks.com/>), and the financier's named providers it arrives for.
//!
//! **The provider.** A financier names each provider (`POST /v1/financiers/{id}/payment-providers`,
//! e.g. `equity-bank`); Lien answers with the provider's id, its callback path
//! (`/v1/providers/generic/{provider_id}/payments`) and its signing secret, `whsec_` and the
//! base64 of 32 bytes, shown this once. The secret is never stored: it is derived from the
//! server's root key, the provider's id and a random salt kept with it
//! (`Secrets::webhook_secret`). The name is the provider's in unmatched payments, in idempotency
//! keys (`provider:<name>:<reference>`) and in reconciliations; `mpesa` is M-Pesa's and cannot be taken.
//!
//! **The signature**, checked in this order, each failure a 401 naming the header and writing
//! nothing: `webhook-id`, `webhook-timestamp` and `webhook-signature` are present;
//! `webhook-timestamp` (Unix seconds) is within [`TOLERANCE_SECS`] of the server's clock, either
//! way; one of the space-separated `v1,<base64>` entries of `webhook-signature` is the
//! HMAC-SHA256, under the decoded secret, of `<webhook-id>.<webhook-timestamp>.<body>`, compared
//! in constant time (`subtle`).
//!
//! **Replays.** The `webhook-id` of every accepted message is remembered (the store's
//! `webhook_messages`) for twice the tolerance, after which its timestamp alone refuses it, so
//! the same message sent again is refused (409) and writes nothing. It is remembered only once
//! the payment is recorded or kept, so that a provider retrying a message Lien failed to take
//! (the same `webhook-id`, as the standard requires) is not refused. The payment itself is
//! idempotent on its reference besides: the same payment in a new message changes nothing.
//!
//! **The payment.** `reference` is the provider's transaction id (the payment's reference and
//! idempotency key), `account` the device's contract reference as for M-Pesa, `amount` a decimal
//! string in `currency` (never a JSON number: money is never a float), `paid_at` RFC 3339. A bad
//! field is a 422 naming it.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use lien_store::{AuditEntry, PaymentProviderRecord, StoreError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::micros;
use crate::commands::payments::MAX_PAYMENT_MINOR;
use crate::domain::{parse_instant, rfc3339};
use crate::error::ApiError;
use crate::input::new_id;

/// What a callback body may weigh: a payment is a few hundred bytes.
pub const MAX_CALLBACK_BODY_BYTES: usize = 4 * 1024;

/// How far `webhook-timestamp` may be from the server's clock, either way: the standard's five
/// minutes.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The longest `webhook-id` taken.
pub const MAX_WEBHOOK_ID_CHARS: usize = 128;

/// The longest provider reference (transaction id).
pub const MAX_REFERENCE_CHARS: usize = 64;

/// The longest account number.
pub const MAX_ACCOUNT_CHARS: usize = 64;

/// The longest provider name.
pub const MAX_NAME_CHARS: usize = 32;

/// The most signatures one `webhook-signature` may carry.
const MAX_SIGNATURES: usize = 8;

/// The prefix of a signing secret, as the standard writes it.
const SECRET_PREFIX: &str = "whsec_";

/// A payment, as the provider sends it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCallback {
    /// The provider's transaction id: 1 to 64 printable ASCII characters without spaces.
    pub reference: String,
    /// The account the payer named: the device's contract reference (at most 64 characters).
    pub account: String,
    /// The amount as a decimal string in `currency`, e.g. `1000.00`.
    pub amount: String,
    /// ISO 4217 code; must be the device plan's.
    pub currency: String,
    /// When the provider took the payment (RFC 3339).
    pub paid_at: String,
}

/// A callback's payment, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The provider's transaction id.
    pub reference: String,
    /// The account named, trimmed.
    pub account: String,
    /// Amount in minor units of `currency`, positive.
    pub amount_minor: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// When the provider took it.
    pub paid_at: Timestamp,
}

/// A provider's transaction id: printable ASCII without spaces, bounded.
pub fn parse_reference(field: &str, text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty()
        || text.chars().count() > MAX_REFERENCE_CHARS
        || !text.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::invalid(
            field,
            format!("must be 1 to {MAX_REFERENCE_CHARS} printable characters without spaces"),
        ));
    }
    Ok(text.to_string())
}

/// An account number: the device's contract reference, bounded.
pub fn parse_account(field: &str, text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if text.chars().count() > MAX_ACCOUNT_CHARS || text.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_ACCOUNT_CHARS} characters, none a control character"),
        ));
    }
    Ok(text.to_string())
}

/// A positive decimal amount in `currency`, at most the largest payment Lien takes; and the
/// currency, upper case.
pub fn parse_money(
    amount_field: &str,
    amount: &str,
    currency_field: &str,
    currency: &str,
) -> Result<(i64, String), ApiError> {
    let currency = currency.trim().to_ascii_uppercase();
    let digits = lien_money::minor_digits(&currency).ok_or_else(|| {
        ApiError::invalid(
            currency_field,
            format!(
                "{:?} is not an ISO 4217 currency code",
                currency.chars().take(8).collect::<String>()
            ),
        )
    })?;
    let minor = lien_money::parse_decimal(amount_field, amount.trim(), digits)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    if minor <= 0 {
        return Err(ApiError::invalid(amount_field, "must be positive"));
    }
    if minor > MAX_PAYMENT_MINOR {
        return Err(ApiError::invalid(
            amount_field,
            "is larger than any payment Lien accepts",
        ));
    }
    Ok((minor, currency))
}

impl PaymentCallback {
    /// The payment, or a 422 naming the first field refused.
    pub fn parse(&self) -> Result<Payment, ApiError> {
        let reference = parse_reference("reference", &self.reference)?;
        let account = parse_account("account", &self.account)?;
        let (amount_minor, currency) =
            parse_money("amount", &self.amount, "currency", &self.currency)?;
        let paid_at = parse_instant("paid_at", self.paid_at.trim())?;
        Ok(Payment {
            reference,
            account,
            amount_minor,
            currency,
            paid_at,
        })
    }
}

/// A message whose signature and timestamp check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its `webhook-id`.
    pub id: String,
    /// Its `webhook-timestamp`.
    pub timestamp: Timestamp,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .ok_or_else(|| ApiError::Unauthorized(format!("{name}: the header is missing")))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized(format!("{name}: not visible ASCII")))
}

/// The `v1` signature of a message under `secret`, as `webhook-signature` carries it.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(mac(secret, id, &timestamp.to_string(), body))
    )
}

/// The MAC over the headers as sent (the timestamp's text, not its value reformatted).
fn mac(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Checks a message's headers against `secret` and `now`, in the documented order; every
/// failure is a 401 naming the header.
pub fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> Result<Verified, ApiError> {
    let id = header(headers, "webhook-id")?;
    let timestamp = header(headers, "webhook-timestamp")?;
    let signatures = header(headers, "webhook-signature")?;
    if id.is_empty() || id.chars().count() > MAX_WEBHOOK_ID_CHARS {
        return Err(ApiError::Unauthorized(format!(
            "webhook-id: must be 1 to {MAX_WEBHOOK_ID_CHARS} characters"
        )));
    }
    let seconds: i64 = timestamp.parse().map_err(|_| {
        ApiError::Unauthorized("webhook-timestamp: not a number of Unix seconds".into())
    })?;
    // `abs_diff`: a timestamp near i64's ends must be refused, not overflow.
    if seconds.abs_diff(now.as_second()) > TOLERANCE_SECS.unsigned_abs() {
        return Err(ApiError::Unauthorized(format!(
            "webhook-timestamp: more than {TOLERANCE_SECS} seconds from the server's clock"
        )));
    }
    let sent = Timestamp::from_second(seconds).map_err(|_| {
        ApiError::Unauthorized("webhook-timestamp: not a number of Unix seconds".into())
    })?;
    let expected = mac(secret, id, timestamp, body);
    // Every entry is compared, so the time taken says nothing about which one matched.
    let mut matched = subtle::Choice::from(0);
    for entry in signatures
        .split(' ')
        .filter(|e| !e.is_empty())
        .take(MAX_SIGNATURES)
    {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        if let Ok(given) = STANDARD.decode(encoded) {
            matched |= given.ct_eq(&expected);
        }
    }
    if !bool::from(matched) {
        return Err(ApiError::Unauthorized(
            "webhook-signature: no v1 signature of this message under the provider's secret".into(),
        ));
    }
    Ok(Verified {
        id: id.to_string(),
        timestamp: sent,
    })
}

/// The secret as the provider configures it: `whsec_` and base64.
pub fn secret_text(secret: &[u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(secret))
}

/// The provider's signing secret.
pub fn secret(state: &AppState, provider: &PaymentProviderRecord) -> [u8; 32] {
    state
        .secrets
        .webhook_secret(&provider.id, &provider.secret_salt)
}

/// A new provider for the financier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderRequest {
    /// The financier's name for it: 1 to 32 lower-case letters, digits and `-`, starting with a
    /// letter; not `mpesa`.
    pub name: String,
}

/// A new provider, with its secret shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderCreated {
    /// `ppr_` and hex.
    pub id: String,
    /// The financier.
    pub financier_id: String,
    /// The name.
    pub name: String,
    /// The Standard Webhooks signing secret, `whsec_` and base64; never shown again.
    pub secret: String,
    /// Where the provider posts payments (after this server's address).
    pub callback_path: String,
    /// When it was made.
    pub created_at: String,
}

/// A provider name: lower-case letters, digits and `-`, starting with a letter; not a name
/// Lien gives a provider of its own.
pub fn parse_name(text: &str) -> Result<String, ApiError> {
    let name = text.trim();
    let shaped = name.chars().count() <= MAX_NAME_CHARS
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !shaped {
        return Err(ApiError::invalid(
            "name",
            format!(
                "must be 1 to {MAX_NAME_CHARS} lower-case letters, digits and -, starting with a letter"
            ),
        ));
    }
    if name == super::mpesa::PROVIDER {
        return Err(ApiError::invalid("name", "mpesa is M-Pesa's own provider"));
    }
    Ok(name.to_string())
}

/// The path a provider posts payments to.
pub fn callback_path(provider_id: &str) -> String {
    format!("/v1/providers/generic/{provider_id}/payments")
}

/// The answer to a new provider or a new secret: the provider with its secret, shown this once.
fn created(state: &AppState, record: PaymentProviderRecord, now: Timestamp) -> ProviderCreated {
    ProviderCreated {
        secret: secret_text(&secret(state, &record)),
        callback_path: callback_path(&record.id),
        id: record.id,
        financier_id: record.financier_id,
        name: record.name,
        created_at: rfc3339(now),
    }
}

/// Adds a payment provider for the financier, audited in its chain; the secret is in the
/// answer only.
pub async fn create_provider(
    state: &AppState,
    actor: &Actor,
    financier_id: &str,
    req: ProviderRequest,
) -> Result<ProviderCreated, ApiError> {
    actor.require(Action::ManageKeys)?;
    crate::commands::visible_financier(state, actor, financier_id).await?;
    let name = parse_name(&req.name)?;
    let now = state.clock.now();
    let record = PaymentProviderRecord {
        id: new_id("ppr")?,
        financier_id: financier_id.to_string(),
        name: name.clone(),
        secret_salt: crate::secrets::random_bytes()
            .map_err(ApiError::Internal)?
            .to_vec(),
        created_us: micros(now),
    };
    let audit = AuditEntry {
        at_us: micros(now),
        actor: actor.key_id.clone(),
        action: "payment_provider_created".into(),
        reason: format!("payment provider {name}"),
        before_json: "null".into(),
        after_json: serde_json::json!({ "id": record.id, "name": name }).to_string(),
    };
    state
        .store
        .create_payment_provider(&record, &crate::api_keys::chain(Some(financier_id)), &audit)
        .await?;
    Ok(created(state, record, now))
}

/// A provider as listed: everything but its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderView {
    /// `ppr_` and hex.
    pub id: String,
    /// The financier.
    pub financier_id: String,
    /// The name.
    pub name: String,
    /// Where the provider posts payments.
    pub callback_path: String,
    /// When its current secret was made.
    pub created_at: String,
}

/// The financier's providers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderList {
    /// By name.
    pub providers: Vec<ProviderView>,
}

/// The financier's providers, without their secrets.
pub async fn list_providers(
    state: &AppState,
    actor: &Actor,
    financier_id: &str,
) -> Result<ProviderList, ApiError> {
    actor.require(Action::ManageKeys)?;
    if !actor.sees_financier(financier_id) {
        return Err(ApiError::NotFound("financier"));
    }
    let providers = state.store.payment_providers(financier_id).await?;
    Ok(ProviderList {
        providers: providers
            .into_iter()
            .map(|p| ProviderView {
                callback_path: callback_path(&p.id),
                created_at: rfc3339(crate::clock::from_micros(p.created_us)),
                id: p.id,
                financier_id: p.financier_id,
                name: p.name,
            })
            .collect(),
    })
}

/// Gives the financier's provider a new secret, shown this once; the old one stops at once.
pub async fn rotate_secret(
    state: &AppState,
    actor: &Actor,
    financier_id: &str,
    provider_id: &str,
) -> Result<ProviderCreated, ApiError> {
    actor.require(Action::ManageKeys)?;
    let mut record = match state.store.payment_provider(provider_id).await {
        Ok(found) if found.financier_id == financier_id && actor.sees_financier(financier_id) => {
            found
        }
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::NotFound("payment provider")),
        Err(e) => return Err(e.into()),
    };
    let now = state.clock.now();
    record.secret_salt = crate::secrets::random_bytes()
        .map_err(ApiError::Internal)?
        .to_vec();
    record.created_us = micros(now);
    let audit = AuditEntry {
        at_us: micros(now),
        actor: actor.key_id.clone(),
        action: "payment_provider_rotated".into(),
        reason: format!("payment provider {}: new secret", record.name),
        before_json: serde_json::json!({ "id": record.id }).to_string(),
        after_json: serde_json::json!({ "id": record.id, "name": record.name }).to_string(),
    };
    state
        .store
        .rotate_payment_provider(
            &record.id,
            &record.secret_salt,
            record.created_us,
            &crate::api_keys::chain(Some(financier_id)),
            &audit,
        )
        .await?;
    Ok(created(state, record, now))
}

/// The provider a callback's path names, if it is one (`None` for an unknown id).
pub async fn provider(
    state: &AppState,
    provider_id: &str,
) -> Result<Option<PaymentProviderRecord>, ApiError> {
    // An id Lien never made is not looked up.
    if !provider_id.starts_with("ppr_") || provider_id.len() > 40 {
        return Ok(None);
    }
    match state.store.payment_provider(provider_id).await {
        Ok(provider) => Ok(Some(provider)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", HeaderValue::from_str(id).unwrap());
        headers.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        headers.insert(
            "webhook-signature",
            HeaderValue::from_str(signature).unwrap(),
        );
        headers
    }

    /// The standard's own example: secret, message and signature from its specification's
    /// test vector.
    #[test]
    fn the_standards_vector_verifies() {
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1614265330;
        assert_eq!(
            sign(&secret, id, timestamp, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let now = Timestamp::from_second(timestamp + 60).unwrap();
        let signed = headers(
            id,
            timestamp,
            &format!("v1,bm9wZQ== {}", sign(&secret, id, timestamp, body)),
        );
        assert_eq!(verify(&secret, &signed, body, now).unwrap().id, id);
    }

    #[test]
    fn a_wrong_body_secret_or_time_is_refused_naming_the_header() {
        let secret = [7u8; 32];
        let body = b"{}";
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let at = now.as_second();
        let good = sign(&secret, "m1", at, body);
        let refused = |headers: HeaderMap, body: &[u8]| {
            verify(&secret, &headers, body, now)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(headers("m1", at, &good), b"{ }").starts_with("webhook-signature"));
        assert!(refused(headers("m2", at, &good), body).starts_with("webhook-signature"));
        let stale = sign(&secret, "m1", at - TOLERANCE_SECS - 1, body);
        assert!(
            refused(headers("m1", at - TOLERANCE_SECS - 1, &stale), body)
                .starts_with("webhook-timestamp")
        );
        let ahead = sign(&secret, "m1", at + TOLERANCE_SECS + 1, body);
        assert!(
            refused(headers("m1", at + TOLERANCE_SECS + 1, &ahead), body)
                .starts_with("webhook-timestamp")
        );
        assert!(
            refused(headers("m1", at, &sign(&[8u8; 32], "m1", at, body)), body)
                .starts_with("webhook-signature")
        );
        assert!(refused(HeaderMap::new(), body).starts_with("webhook-id"));
        assert!(verify(&secret, &headers("m1", at, &good), body, now).is_ok());
    }

    #[test]
    fn fields_are_refused_by_name() {
        let good = PaymentCallback {
            reference: "TX-1".into(),
            account: " C-1001 ".into(),
            amount: "1000.50".into(),
            currency: "kes".into(),
            paid_at: "2026-02-05T07:30:00Z".into(),
        };
        let payment = good.parse().unwrap();
        assert_eq!(payment.amount_minor, 100_050);
        assert_eq!(payment.currency, "KES");
        assert_eq!(payment.account, "C-1001");
        let refused = |change: fn(&mut PaymentCallback)| {
            let mut callback = good.clone();
            change(&mut callback);
            callback.parse().unwrap_err().to_string()
        };
        assert!(refused(|c| c.reference = "a b".into()).starts_with("reference"));
        assert!(refused(|c| c.account = "A".repeat(65)).starts_with("account"));
        assert!(refused(|c| c.amount = "0".into()).starts_with("amount"));
        assert!(refused(|c| c.amount = "1.005".into()).starts_with("amount"));
        assert!(refused(|c| c.currency = "XYZW".into()).starts_with("currency"));
        assert!(refused(|c| c.paid_at = "yesterday".into()).starts_with("paid_at"));
        assert!(parse_name("mpesa").is_err());
        assert!(parse_name("Equity").is_err());
        assert_eq!(parse_name("equity-bank").unwrap(), "equity-bank");
    }
}
