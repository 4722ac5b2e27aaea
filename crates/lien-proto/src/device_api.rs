//! The phone's side of the wire: the JSON a phone sends at setup (hello) and at each
//! check-in, and how a check-in is signed. The server and the agent both use these types, so
//! the two cannot drift apart.
//!
//! With the `openapi` feature the types also describe themselves for the server's OpenAPI
//! document; a phone build leaves it off.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Where a phone asks for a hello challenge: a POST with no body, answered with a
/// [`HelloChallenge`].
pub const HELLO_CHALLENGE_PATH: &str = "/v1/device/hello/challenge";
/// Where a phone says hello.
pub const HELLO_PATH: &str = "/v1/device/hello";
/// The largest hello body the server reads: an attestation chain of up to 8 certificates of
/// up to 8 KiB, in base64, with room for the rest.
pub const MAX_HELLO_BODY_BYTES: usize = 96 * 1024;
/// Where a phone checks in.
pub const CHECKIN_PATH: &str = "/v1/device/checkin";
/// Where a phone opens its push channel: a POST signed like a check-in (body [`PushRequest`])
/// whose answer is a stream of server-sent events (`text/event-stream`) that stays open.
/// Each event named [`PUSH_EVENT`] carries a [`CheckinResponse`] as its data: the current token
/// at once, then every newly signed token as soon as the change that signed it commits.
/// Check-ins stay the fallback; a pushed token is verified exactly like a checked-in one.
pub const PUSH_PATH: &str = "/v1/device/push";
/// The SSE event name of a pushed token.
pub const PUSH_EVENT: &str = "token";
/// The header that names the device in a check-in.
pub const DEVICE_HEADER: &str = "x-lien-device";
/// The header that carries the check-in's signature.
pub const SIGNATURE_HEADER: &str = "x-lien-signature";

/// The largest check-in or push request body the server reads, in bytes; a larger one is
/// refused (413) before anything is parsed or written. The largest check-in the other limits
/// allow (8 events, each detail 200 bytes even if JSON escapes every byte as `\u00XX`) is
/// under 10 KiB, so a phone that keeps to them is never refused for its size.
pub const MAX_CHECKIN_BODY_BYTES: usize = 16 * 1024;
/// The most events one check-in may carry; the agent keeps the rest for the next one.
pub const MAX_CHECKIN_EVENTS: usize = 8;
/// The longest event detail, in bytes of UTF-8.
pub const MAX_EVENT_DETAIL_BYTES: usize = 200;

/// What kind of event a phone reports at check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The SIM card was changed.
    SimChange,
    /// Someone tampered with the phone or with Lien's records on it.
    Tamper,
    /// Anything else, named in the detail.
    Other,
    /// The borrower took the policy's emergency use on the lock (or restricted) screen; the
    /// detail is the window's start, Unix seconds, as the phone's trusted clock reckons it
    /// ([`emergency_use_detail`]).
    EmergencyUse,
}

impl EventKind {
    /// Every kind a check-in may report.
    pub const ALL: [EventKind; 4] = [
        EventKind::SimChange,
        EventKind::Tamper,
        EventKind::Other,
        EventKind::EmergencyUse,
    ];

    /// The kind's name on the wire (and in the server's records).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::SimChange => "sim_change",
            EventKind::Tamper => "tamper",
            EventKind::Other => "other",
            EventKind::EmergencyUse => "emergency_use",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an [`EventKind`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not sim_change, tamper, other or emergency_use")]
pub struct UnknownEventKind(pub String);

impl std::str::FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(name: &str) -> Result<EventKind, UnknownEventKind> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| UnknownEventKind(name.to_string()))
    }
}

/// The detail of an [`EventKind::EmergencyUse`] event: the window's start, Unix seconds.
pub fn emergency_use_detail(started_at: i64) -> String {
    started_at.to_string()
}

/// The start an [`EventKind::EmergencyUse`] event's detail names, if it is one.
pub fn parse_emergency_use_detail(detail: &str) -> Option<i64> {
    let digits = detail.trim();
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `detail` cut to at most [`MAX_EVENT_DETAIL_BYTES`], at a character boundary.
pub fn truncate_detail(detail: &str) -> &str {
    let mut end = detail.len().min(MAX_EVENT_DETAIL_BYTES);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    &detail[..end]
}

/// The value of [`SIGNATURE_HEADER`]: base64 HMAC-SHA256 over the exact body bytes under the
/// device credential. Signing the bytes, not a re-serialisation, means neither side has to
/// agree on JSON formatting.
pub fn sign_checkin(credential: &[u8], body: &[u8]) -> String {
    STANDARD.encode(checkin_mac(credential, body).finalize().into_bytes())
}

/// Whether `signature` (raw bytes, already base64-decoded) signs `body` under `credential`;
/// the comparison is constant-time.
pub fn checkin_signature_valid(credential: &[u8], body: &[u8], signature: &[u8]) -> bool {
    checkin_mac(credential, body)
        .verify_slice(signature)
        .is_ok()
}

fn checkin_mac(credential: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(credential).expect("HMAC takes any key length");
    mac.update(body);
    mac
}

/// A fresh hello challenge: single use, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HelloChallenge {
    /// Base64; the phone's hardware attests its new device key for exactly these bytes.
    pub challenge: String,
    /// Unix seconds after which a hello with it is refused.
    pub expires_at: i64,
}

/// A phone's hello at setup: who it says it is, and its hardware's proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HelloRequest {
    /// First IMEI. The server goes by the attested one; a different one here is refused.
    pub imei1: String,
    /// Second IMEI.
    #[serde(default)]
    pub imei2: Option<String>,
    /// Serial, as the hardware attests it.
    pub serial: String,
    /// Model.
    pub model: String,
    /// The challenge from [`HELLO_CHALLENGE_PATH`], as received.
    pub challenge: String,
    /// The Android key attestation chain of the phone's new device key, made for the
    /// challenge: base64 DER certificates, leaf first.
    pub attestation: Vec<String>,
}

/// The answer to a hello. Each carries a receipt (see [`crate::hello`]): the server's
/// signature over the challenge, the attested IMEI and the verdict, which the phone verifies
/// before it acts on the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HelloResponse {
    /// The phone is financed: it is now bound.
    Financed {
        /// The device id to check in with.
        device_id: String,
        /// The credential (base64) that signs check-ins.
        credential: String,
        /// The OCRA key (base64) for offline unlock codes.
        offline_key: String,
        /// The OCRA suite.
        offline_suite: String,
        /// The server's token keys to pin (base64 Ed25519 public keys).
        server_keys: Vec<String>,
        /// The current status token (base64 COSE_Sign1).
        token: String,
        /// Seconds between check-ins.
        checkin_interval_secs: u64,
        /// The signed receipt (base64 COSE_Sign1); its binding digest covers `device_id`,
        /// `credential` and `offline_key`.
        receipt: String,
    },
    /// No financier holds a claim on this phone: it runs free.
    NotFinanced {
        /// The signed receipt (base64 COSE_Sign1).
        receipt: String,
    },
}

/// A check-in. Sent with headers `X-Lien-Device` (the device id) and `X-Lien-Signature`
/// (base64 HMAC-SHA256 of the exact body under the device credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// The phone's clock, Unix seconds; must be within the server's window.
    pub sent_at: i64,
    /// Counts the signed requests (check-ins and push requests) the phone has sent since its
    /// hello, from 1. The server refuses a counter not above the highest it has accepted from
    /// this binding, so a captured request cannot be sent again.
    pub counter: u64,
    /// The highest token sequence the phone has applied.
    pub applied_sequence: i64,
    /// What happened on the phone since the last check-in; at most [`MAX_CHECKIN_EVENTS`].
    #[serde(default)]
    pub events: Vec<DeviceEventJson>,
    /// Asks for a contact proof in the answer ([`crate::contact`]): a phone whose lease is
    /// running out or over sends it, so that reaching the server renews its lease at once.
    /// Left out when false, so older phones' bodies are unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub want_contact: bool,
}

/// The request that opens a push channel. Sent with the same headers and signature as a
/// check-in; `sent_at` must be within the server's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The phone's clock, Unix seconds; must be within the server's window.
    pub sent_at: i64,
    /// As in [`CheckinRequest::counter`]; check-ins and push requests share one count.
    pub counter: u64,
    /// The highest token sequence the phone has applied.
    pub applied_sequence: i64,
}

/// An event the phone reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceEventJson {
    // An `EventKind`'s name (`EventKind::as_str`). It stays text here so that the server, not
    // the JSON parser, refuses an unknown kind, with the field-level message (`events.kind`)
    // it gives every check-in field; the schema still lists the kinds.
    /// `sim_change`, `tamper`, `other` or `emergency_use`.
    #[cfg_attr(feature = "openapi", schema(value_type = EventKind))]
    pub kind: String,
    /// Free text, at most [`MAX_EVENT_DETAIL_BYTES`] bytes.
    #[serde(default)]
    pub detail: String,
}

/// The answer to a check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckinResponse {
    /// The current status token (base64 COSE_Sign1).
    pub token: String,
    /// The server's time, Unix seconds.
    pub server_time: i64,
    /// When to check in next, Unix seconds.
    pub next_checkin_at: i64,
    /// The contact proof (base64 COSE_Sign1, [`crate::contact`]) the check-in asked for with
    /// `want_contact`; absent otherwise, and in pushed answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_the_same_body_and_credential() {
        let sig = STANDARD.decode(sign_checkin(b"credential", b"{}")).unwrap();
        assert!(checkin_signature_valid(b"credential", b"{}", &sig));
        assert!(!checkin_signature_valid(b"credential", b"{ }", &sig));
        assert!(!checkin_signature_valid(b"other", b"{}", &sig));
    }

    #[test]
    fn an_event_kind_is_named_as_in_the_json_and_read_back_by_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        }
        assert_eq!(
            "sunburn".parse::<EventKind>(),
            Err(UnknownEventKind("sunburn".into()))
        );
    }

    #[test]
    fn details_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_detail("short"), "short");
        let emoji = "\u{1F4F1}".repeat(60); // 4 bytes each
        let cut = truncate_detail(&emoji);
        assert_eq!(cut.len(), 200);
        let odd = format!("a{emoji}");
        assert_eq!(truncate_detail(&odd).len(), 197);
    }

    #[test]
    fn hello_answers_are_tagged_by_status() {
        let json = serde_json::to_value(HelloResponse::NotFinanced {
            receipt: "cmVjZWlwdA==".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "not_financed", "receipt": "cmVjZWlwdA=="})
        );
    }
}
