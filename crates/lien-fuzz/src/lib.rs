//! The bodies of Lien's fuzz targets: one function per parser that takes outside input.
//!
//! `fuzz/fuzz_targets/*.rs` are one-line cargo-fuzz targets that call these functions, and
//! `tests/parsers/corpus_replay.rs` runs every file of every corpus in `fuzz/corpus/` through
//! them in the normal `cargo test`, so the replay exercises exactly what was fuzzed and a
//! regression on any input the fuzzer ever kept fails CI.
//!
//! Each function takes arbitrary bytes, calls the same parser (and, where it is reachable
//! without a database, the same checks) the server or the phone runs on such input, and
//! asserts invariants that could really break: a parsed value prints back and parses to
//! itself, a refusal names the field it refuses, a verified token was signed by the pinned key
//! and names this device. A failed assertion or a panic is a finding. Inputs that are not
//! UTF-8 are dropped where the real caller would refuse them before parsing.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use lien_core::{Imei, ImeiError, SerialError, SerialNumber};
use lien_proto::attestation::{self, TrustedRoots};
use lien_proto::device_api::{
    CheckinRequest, EventKind, HelloRequest, MAX_CHECKIN_EVENTS, MAX_EVENT_DETAIL_BYTES,
    PushRequest,
};
use lien_proto::ocra::{OcraInput, OcraSuite};
use lien_proto::{PinnedKeys, TokenError, TokenState, status_code};
use lien_server::error::ApiError;
use lien_server::wire::{EnrollRequest, PlanJson, PolicyJson};
use lien_store::CheckinView;

/// The device the status-token vectors (`crates/lien-proto/vectors/status-tokens.json`) name.
pub const TOKEN_DEVICE: &str = "dev_01JD4Z3K8Q";
/// The challenge and IMEI of the hello-receipt vectors.
pub const RECEIPT_CHALLENGE: &str = "q83vASNFZ4mrze8BI0VniQAGNiW6vR5qq83vASNFZ4kAAAAA";
/// The first IMEI of the hello-receipt vectors.
pub const RECEIPT_IMEI: &str = "356938035643809";
/// The time at which the attestation vectors verify.
pub const ATTESTATION_NOW: i64 = 1_772_409_600;
/// The largest upload the appeal target accepts (the server's default is larger; a small
/// limit lets the fuzzer reach the "too large" path).
pub const APPEAL_MAX_FILE: u64 = 4096;

/// The test key of the token and receipt vectors (bytes 1 to 32), published on purpose.
fn server_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8 + 1))
}

/// Another key, which no token in the corpus is signed with.
fn other_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8 + 0x21))
}

/// The message of a field-level refusal, asserting that it is one (`field: problem`) and that
/// the field is one the caller expects.
fn refused_field(err: &ApiError, fields: &[&str]) -> String {
    let ApiError::Invalid(message) = err else {
        panic!("expected a field-level refusal, got {err:?}");
    };
    let (field, _) = message
        .split_once(": ")
        .unwrap_or_else(|| panic!("refusal {message:?} does not name a field"));
    assert!(
        fields.iter().any(|f| field == *f
            || field.starts_with(&format!("{f}["))
            || field.starts_with(&format!("{f}."))),
        "refusal {message:?} names {field:?}, not one of {fields:?}"
    );
    field.to_string()
}

/// IMEI and serial number as typed or reported: `Imei::parse`, `Imei::from_imeisv`, the
/// server's `parse_imei` (which picks between them) and `SerialNumber::parse`.
///
/// Invariants: an accepted IMEI is 15 digits, prints as itself and parses back to itself, with
/// a correct check digit (so changing its last digit is refused); an IMEISV converts to an IMEI
/// with the same first 14 digits; a refused character is reported at its real 1-based
/// position; an accepted serial is 1 to 64 printable ASCII characters and parses to itself.
pub fn identity(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let chars: Vec<char> = text.chars().collect();
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    match Imei::parse(text) {
        Ok(imei) => {
            assert_eq!(imei.as_str(), digits);
            assert_eq!(imei.to_string(), imei.as_str());
            assert_eq!(imei.as_str().len(), 15);
            assert_eq!(Imei::parse(imei.as_str()).as_ref(), Ok(&imei));
            assert_eq!(imei.tac(), &digits[..8]);
            let last = imei.as_str().as_bytes()[14];
            let wrong = format!(
                "{}{}",
                &digits[..14],
                char::from(b'0' + (last - b'0' + 1) % 10)
            );
            assert!(matches!(
                Imei::parse(&wrong),
                Err(ImeiError::CheckDigit { .. })
            ));
        }
        Err(ImeiError::InvalidCharacter { found, position }) => {
            assert_eq!(chars.get(position - 1), Some(&found));
            assert!(
                chars[..position - 1]
                    .iter()
                    .all(|c| c.is_ascii_digit() || *c == ' ' || *c == '-')
            );
        }
        Err(ImeiError::Empty) => assert!(digits.is_empty()),
        Err(ImeiError::WrongLength { found }) => assert_eq!(found, digits.len()),
        Err(ImeiError::CheckDigit { expected, found }) => {
            assert_ne!(expected, found);
            assert_eq!(digits.len(), 15);
        }
        Err(e @ ImeiError::WrongImeisvLength { .. }) => panic!("Imei::parse returned {e:?}"),
    }
    match Imei::from_imeisv(text) {
        Ok(imei) => {
            assert_eq!(digits.len(), 16);
            assert_eq!(&imei.as_str()[..14], &digits[..14]);
            assert_eq!(Imei::parse(imei.as_str()).as_ref(), Ok(&imei));
        }
        Err(ImeiError::WrongImeisvLength { found }) => assert_eq!(found, digits.len()),
        Err(ImeiError::WrongLength { .. } | ImeiError::CheckDigit { .. }) => {
            panic!("from_imeisv checks no check digit and wants 16 digits")
        }
        Err(_) => {}
    }
    match lien_server::fuzzing::parse_imei("imei", text) {
        Ok(imei) => assert_eq!(Imei::parse(imei.as_str()).as_ref(), Ok(&imei)),
        Err(e) => {
            refused_field(&e, &["imei"]);
        }
    }
    match SerialNumber::parse(text) {
        Ok(serial) => {
            assert_eq!(serial.as_str(), text.trim());
            assert_eq!(serial.to_string(), serial.as_str());
            assert!((1..=SerialNumber::MAX_LEN).contains(&serial.as_str().len()));
            assert!(serial.as_str().bytes().all(|b| b.is_ascii_graphic()));
            assert_eq!(SerialNumber::parse(serial.as_str()).as_ref(), Ok(&serial));
        }
        Err(SerialError::Empty) => assert!(text.trim().is_empty()),
        Err(SerialError::TooLong { found, max }) => {
            assert!(found > max);
            assert_eq!(found, text.trim().chars().count());
        }
        Err(SerialError::InvalidCharacter { found, position }) => {
            assert_eq!(text.trim().chars().nth(position - 1), Some(found));
            assert!(!found.is_ascii_graphic());
        }
    }
}

/// The signed status token and the hello receipt (COSE_Sign1 under the pinned key), as a
/// phone verifies them: `PinnedKeys::verify`, `PinnedKeys::verify_receipt` and `status_code`.
///
/// Invariants: a token that verifies names this device, has consistent claims, and is refused
/// when only a different key is pinned (it was signed by the pinned key) and when a higher
/// sequence was already seen; the lock-screen code is always 8 digits.
pub fn status_token(data: &[u8]) {
    let code = status_code(data);
    assert!(code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()));

    let pinned = PinnedKeys::new([server_key().verifying_key()]);
    let stranger = PinnedKeys::new([other_key().verifying_key()]);
    match pinned.verify(data, TOKEN_DEVICE, 0) {
        Ok(claims) => {
            assert_eq!(claims.device_id, TOKEN_DEVICE);
            match (claims.state, claims.lease) {
                (TokenState::Released, lease) => {
                    assert!(lease.is_none() && claims.restrictions.is_empty())
                }
                (_, None) => panic!("a token that is not released verified without a lease"),
                (_, Some(lease)) => assert!(
                    claims.issued_at < lease.ends_at
                        && claims.issued_at <= lease.warn_from
                        && lease.warn_from <= lease.ends_at
                ),
            }
            assert!(matches!(
                stranger.verify(data, TOKEN_DEVICE, 0),
                Err(TokenError::UnknownKey(_))
            ));
            if let Some(next) = claims.sequence.checked_add(1) {
                assert!(matches!(
                    pinned.verify(data, TOKEN_DEVICE, next),
                    Err(TokenError::SequenceRegressed { .. })
                ));
            }
            assert_eq!(
                pinned.verify(data, TOKEN_DEVICE, claims.sequence),
                Ok(claims)
            );
        }
        Err(TokenError::WrongDevice { expected, found }) => {
            assert_eq!(expected, TOKEN_DEVICE);
            assert_ne!(found, TOKEN_DEVICE);
        }
        Err(_) => {}
    }
    if let Ok(receipt) = pinned.verify_receipt(data, RECEIPT_CHALLENGE, RECEIPT_IMEI) {
        assert_eq!(receipt.challenge, RECEIPT_CHALLENGE);
        assert_eq!(receipt.imei1, RECEIPT_IMEI);
        assert!(
            stranger
                .verify_receipt(data, RECEIPT_CHALLENGE, RECEIPT_IMEI)
                .is_err()
        );
        // A receipt is never taken for a token, nor the other way round.
        assert!(pinned.verify(data, TOKEN_DEVICE, 0).is_err());
    }
}

/// OCRA (RFC 6287): a suite string, a challenge and a typed response, one per line, then the
/// key (the rest of the input). Calls `OcraSuite::parse`, `respond` and `verify`, as the phone
/// does with the suite it was given at hello and a code the borrower types.
///
/// Invariants: an accepted suite prints back exactly as written and parses to the same suite;
/// a response is `digits()` decimal digits and verifies, and a typed response verifies exactly
/// when it equals the computed one; `verify` fails only where `respond` does.
pub fn ocra(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (Some(suite), Some(challenge), Some(typed)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let key = parts.next().unwrap_or_default();
    let (Ok(suite_text), Ok(challenge), Ok(typed)) = (
        std::str::from_utf8(suite),
        std::str::from_utf8(challenge),
        std::str::from_utf8(typed),
    ) else {
        return;
    };
    let Ok(suite) = OcraSuite::parse(suite_text) else {
        return;
    };
    assert_eq!(suite.to_string(), suite_text);
    assert_eq!(OcraSuite::parse(&suite.to_string()), Ok(suite.clone()));
    assert!((4..=10).contains(&suite.digits()));
    assert!((4..=64).contains(&suite.challenge_max_len()));
    // The key's first bytes, when they fit, stand in for the inputs the suite may use.
    let number = |at: usize| {
        key.get(at..at + 8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
            .unwrap_or(at as u64)
    };
    let password_hash = suite.password_hash().map(|h| {
        key.iter()
            .copied()
            .cycle()
            .take(h.output_len())
            .collect::<Vec<u8>>()
    });
    let session = suite
        .session_len()
        .map(|len| key.get(..len.min(key.len())).unwrap_or_default());
    let (first, second) = match challenge.split_once(' ') {
        Some((a, b)) => (a, Some(b)),
        None => (challenge, None),
    };
    let input = OcraInput {
        counter: suite.uses_counter().then(|| number(0)),
        challenge: first,
        second_challenge: second,
        password_hash: password_hash.as_deref(),
        session,
        timestamp: suite.time_step().map(|step| step.steps_at(number(8))),
    };
    match suite.respond(key, input) {
        Ok(response) => {
            assert_eq!(response.len(), usize::from(suite.digits()));
            assert!(response.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(suite.verify(key, input, &response), Ok(true));
            assert_eq!(suite.verify(key, input, typed), Ok(typed == response));
            assert_eq!(suite.respond(key, input).as_ref(), Ok(&response));
        }
        Err(e) => assert_eq!(suite.verify(key, input, typed), Err(e)),
    }
}

/// The device's view the check-in target validates against: a device bound once whose
/// current token has sequence 5.
fn checkin_view() -> CheckinView {
    CheckinView {
        financier_id: "fin_fuzz".into(),
        binding_generation: 1,
        token: Some(vec![0xd2]),
        token_sequence: 5,
        applied_sequence: Some(4),
        checkin_counter: 3,
    }
}

/// The trusted roots of the attestation vectors.
fn attestation_roots() -> &'static TrustedRoots {
    static ROOTS: OnceLock<TrustedRoots> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../lien-proto/vectors/attestation.json"))
                .expect("the attestation vectors are JSON");
        let roots = vectors["trusted_roots_hex"]
            .as_array()
            .expect("the vectors list their roots")
            .iter()
            .map(|r| hex::decode(r.as_str().expect("hex")).expect("hex"))
            .collect::<Vec<_>>();
        TrustedRoots::from_der(roots).expect("the vector roots parse")
    })
}

/// The JSON bodies a phone sends: a check-in, a push request and a hello. Every input is tried
/// as each (they refuse unknown fields, so at most one accepts it), then put through the
/// server's checks that need no database: for a check-in `validate_checkin`, for a hello the
/// IMEIs (`parse_imei`), the base64 of the challenge and the chain, and the Android key
/// attestation chain itself (`attestation::verify`, under the vectors' development root).
///
/// Invariants: an accepted body serialises and parses back to the same value; a refused
/// check-in names the field; an accepted check-in keeps to the documented limits; an
/// attestation that verifies for one challenge does not for another.
pub fn device_bodies(data: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<CheckinRequest>(data) {
        let again = serde_json::to_vec(&req).expect("a check-in serialises");
        assert_eq!(
            serde_json::from_slice::<CheckinRequest>(&again).ok(),
            Some(req.clone())
        );
        let view = checkin_view();
        match lien_server::fuzzing::validate_checkin(&req, &view) {
            Ok(()) => {
                assert!((0..=view.token_sequence).contains(&req.applied_sequence));
                assert!(req.events.len() <= MAX_CHECKIN_EVENTS);
                for e in &req.events {
                    assert!(e.kind.parse::<EventKind>().is_ok());
                    assert!(e.detail.len() <= MAX_EVENT_DETAIL_BYTES);
                }
            }
            Err(e) => {
                refused_field(
                    &e,
                    &["applied_sequence", "events", "events.kind", "events.detail"],
                );
            }
        }
    }
    if let Ok(req) = serde_json::from_slice::<PushRequest>(data) {
        let again = serde_json::to_vec(&req).expect("a push request serialises");
        assert_eq!(
            serde_json::from_slice::<PushRequest>(&again).ok(),
            Some(req)
        );
    }
    if let Ok(req) = serde_json::from_slice::<HelloRequest>(data) {
        let again = serde_json::to_vec(&req).expect("a hello serialises");
        assert_eq!(
            serde_json::from_slice::<HelloRequest>(&again).ok(),
            Some(req.clone())
        );
        hello_checks(&req);
    }
}

/// The checks `routes::phone::hello` makes before it needs the server's keys or database.
fn hello_checks(req: &HelloRequest) {
    use lien_server::fuzzing::parse_imei;
    for (field, imei) in [("imei1", Some(&req.imei1)), ("imei2", req.imei2.as_ref())] {
        if let Some(Err(e)) = imei.map(|i| parse_imei(field, i)) {
            refused_field(&e, &[field]);
        }
    }
    let Ok(chain) = req
        .attestation
        .iter()
        .map(|cert| STANDARD.decode(cert.trim()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    let Ok(challenge) = STANDARD.decode(req.challenge.trim()) else {
        return;
    };
    if let Ok(attested) =
        attestation::verify(&chain, attestation_roots(), &challenge, ATTESTATION_NOW)
    {
        assert!(!chain.is_empty() && chain.len() <= attestation::MAX_CHAIN_LEN);
        let mut other = challenge.clone();
        other.push(0);
        assert!(
            attestation::verify(&chain, attestation_roots(), &other, ATTESTATION_NOW).is_err(),
            "an attestation verified for two challenges"
        );
        // What the server does next with the attested identifiers must not panic.
        let _ = Imei::parse(&attested.imei1);
        let _ = attested.imei2.as_deref().map(Imei::parse);
    }
}

/// The bulk enrollment CSV, as `routes::devices::bulk_enroll` reads it: `bulk_csv_reader`,
/// then `bulk_csv_row` for each row, then the enrollment checks that need no database
/// (`check_enrollment`: IMEIs, serial, plan and policy).
///
/// Invariants: a refused row names its field (a row that is not CSV, or does not fit the
/// columns, is a 400 instead); an accepted row's IMEIs and serial parse back to themselves.
pub fn bulk_csv(data: &[u8]) {
    use lien_server::fuzzing::{bulk_csv_reader, bulk_csv_row, check_enrollment};
    let Ok((mut reader, headers)) = bulk_csv_reader(data) else {
        return;
    };
    // The server stops at 20 000 rows; the fuzzer's inputs are far smaller.
    for record in reader.records() {
        let Ok((_contract_ref, request)) = bulk_csv_row(&headers, record) else {
            continue;
        };
        let request = match request {
            Ok(request) => request,
            Err(ApiError::BadRequest(_)) => continue,
            Err(e) => {
                refused_field(&e, &["installments"]);
                continue;
            }
        };
        enrollment_checks(&request, check_enrollment(&request));
    }
}

/// The invariants of `check_enrollment`'s answer for `request`.
fn enrollment_checks(
    request: &EnrollRequest,
    checked: Result<(Imei, Option<Imei>, SerialNumber), ApiError>,
) {
    match checked {
        Ok((imei1, imei2, serial)) => {
            assert_eq!(Imei::parse(imei1.as_str()).as_ref(), Ok(&imei1));
            assert_ne!(imei2.as_ref(), Some(&imei1));
            assert_eq!(imei2.is_some(), request.imei2.is_some());
            assert_eq!(serial.as_str(), request.serial.trim());
        }
        Err(e) => {
            refused_field(&e, &["imei1", "imei2", "serial", "plan", "policy"]);
        }
    }
}

/// The appeal form a borrower posts (multipart/form-data, no account needed): the first line
/// is the boundary, the rest the body. Runs axum's `Multipart` extractor, the server's
/// `read_form`, then `check_form` (the claim and its fields) and `check_upload` (the file's
/// type by content), on a current-thread runtime.
///
/// Invariants: a form that is read keeps to its bounds (at most 24 fields, text under 4 KiB,
/// the file under the limit); every field-level refusal names a field of the form.
pub fn appeal_form(data: &[u8]) {
    use axum::extract::{FromRequest, Multipart};
    use lien_server::fuzzing::{check_form, check_upload, read_form_within};
    let (boundary, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b"lienfuzz"[..], data),
    };
    let Ok(boundary) = std::str::from_utf8(boundary) else {
        return;
    };
    let Ok(request) = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/public/appeals")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(axum::body::Body::from(body.to_vec()))
    else {
        return;
    };
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime starts");
    }
    let read = RUNTIME.with(|runtime| {
        runtime.block_on(async {
            let multipart = Multipart::from_request(request, &()).await.ok()?;
            // A budget of its own, larger than any one form: the fuzzed form is alone.
            let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(1024));
            Some(read_form_within(multipart, APPEAL_MAX_FILE, &budget).await)
        })
    });
    let form = match read {
        None | Some(Err(ApiError::BadRequest(_))) => return,
        Some(Err(e)) => {
            // A refusal here names the part it refuses, whatever its name.
            let ApiError::Invalid(message) = &e else {
                panic!("read_form refused with {e:?}");
            };
            assert!(message.contains(": "), "{message:?} names no field");
            return;
        }
        Some(Ok(form)) => form,
    };
    assert!(form.fields.len() + usize::from(form.file.is_some()) <= 24);
    assert!(form.fields.values().all(|v| v.len() <= 4096));
    let today = jiff::civil::date(2026, 3, 2);
    if let Err(e) = check_form(&form, today) {
        refused_field(
            &e,
            &[
                "claim",
                "contact",
                "statement",
                "payment_reference",
                "paid_on",
                "currency",
                "amount",
                "receipt",
                "proof_of_purchase",
            ],
        );
    }
    if let Some(upload) = &form.file {
        assert!(upload.bytes.len() as u64 <= APPEAL_MAX_FILE);
        match check_upload(upload, APPEAL_MAX_FILE) {
            Ok((kind, _)) => assert!(matches!(
                kind,
                "application/pdf" | "image/jpeg" | "image/png"
            )),
            Err(e) => {
                refused_field(&e, &[upload.field.as_str()]);
            }
        }
    }
}

/// The plan and policy JSON a financier sends (at enrollment and on a policy change): every
/// input is tried as a `PlanJson` (checked with `domain::parse_plan`), a `PolicyJson`
/// (`domain::parse_policy`) and a whole `EnrollRequest` (`check_enrollment`).
///
/// If `data` is a `$json`, it serialises and parses back to itself, and `$parse` either
/// accepts it the same way twice or refuses it naming a field under `$field`. A macro rather
/// than a generic function because this crate names no serde trait, only serde_json.
macro_rules! round_trips_and_checks_the_same_again {
    ($data:expr, $json:ty, $parse:expr, $field:expr) => {
        if let Ok(value) = serde_json::from_slice::<$json>($data) {
            let again = serde_json::to_vec(&value).expect("a value serialises");
            assert_eq!(
                serde_json::from_slice::<$json>(&again).ok().as_ref(),
                Some(&value)
            );
            match $parse(&value) {
                Ok(parsed) => assert_eq!($parse(&value).ok(), Some(parsed)),
                Err(e) => {
                    refused_field(&e, &[$field]);
                }
            }
        }
    };
}

/// Invariants: an accepted value serialises and parses back to the same value, and checks the
/// same way again; a refusal names a field under `plan` or `policy`.
pub fn policy_plan(data: &[u8]) {
    use lien_server::domain::{parse_plan, parse_policy};
    use lien_server::fuzzing::check_enrollment;
    round_trips_and_checks_the_same_again!(data, PlanJson, parse_plan, "plan");
    round_trips_and_checks_the_same_again!(data, PolicyJson, parse_policy, "policy");
    if let Ok(request) = serde_json::from_slice::<EnrollRequest>(data) {
        let value = serde_json::to_value(&request).expect("an enrollment serialises");
        let again: EnrollRequest =
            serde_json::from_value(value.clone()).expect("an enrollment parses back");
        assert_eq!(serde_json::to_value(&again).ok(), Some(value));
        enrollment_checks(&request, check_enrollment(&request));
    }
}

/// M-Pesa's C2B callback (Daraja's validation and confirmation JSON): serde into
/// `C2bCallback`, then `C2bPayment::parse`.
///
/// Invariants: an accepted payment has a transaction id of 1 to 32 letters and digits, a
/// positive amount no larger than the largest payment, and a trimmed account of at most 64
/// characters, and parses the same way again; its debug form never shows the payer's number; a
/// refusal names one of Daraja's fields and answers with one of Daraja's rejection codes. A
/// confirmation (`parse_confirmed`) is taken whenever a validation is, the same way, and is
/// refused only for the transaction id, the time or the amount.
pub fn mpesa_callback(data: &[u8]) {
    use lien_server::commands::payments::MAX_PAYMENT_MINOR;
    use lien_server::providers::mpesa::{C2bCallback, C2bPayment};
    let Ok(callback) = serde_json::from_slice::<C2bCallback>(data) else {
        return;
    };
    let confirmed = C2bPayment::parse_confirmed(&callback);
    if let Err(refused) = &confirmed {
        assert!(
            ["TransID", "TransTime", "TransAmount"]
                .iter()
                .any(|f| refused.message.starts_with(&format!("{f}: "))),
            "a confirmation refused for {:?}",
            refused.message
        );
    }
    match C2bPayment::parse(&callback) {
        Ok(payment) => {
            assert!(
                (1..=32).contains(&payment.trans_id.len())
                    && payment.trans_id.chars().all(|c| c.is_ascii_alphanumeric())
            );
            assert!(payment.amount_minor > 0 && payment.amount_minor <= MAX_PAYMENT_MINOR);
            assert!(payment.account.chars().count() <= 64);
            assert_eq!(payment.account.trim(), payment.account);
            assert_eq!(C2bPayment::parse(&callback).ok(), Some(payment.clone()));
            assert_eq!(confirmed.ok(), Some(payment.clone()));
            // The payer's number is kept only as a keyed hash, so nothing printed depends on it:
            // the same callback from another number prints the same. (Looking for the number's
            // digits in the printout fails on coincidences: "5000" inside an amount of 25000.)
            let mut other_payer = callback.clone();
            other_payer.msisdn = Some("254700000000".to_string());
            if let Ok(other) = C2bPayment::parse(&other_payer) {
                assert_eq!(format!("{other:?}"), format!("{payment:?}"));
            }
        }
        Err(refused) => {
            let (field, _) = refused
                .message
                .split_once(": ")
                .unwrap_or_else(|| panic!("refusal {:?} names no field", refused.message));
            assert!(
                [
                    "TransactionType",
                    "TransID",
                    "TransTime",
                    "TransAmount",
                    "BusinessShortCode",
                    "BillRefNumber",
                    "InvoiceNumber",
                    "OrgAccountBalance",
                    "ThirdPartyTransID",
                    "MSISDN",
                    "FirstName",
                    "MiddleName",
                    "LastName",
                ]
                .contains(&field),
                "refusal {:?} names {field:?}",
                refused.message
            );
            let code = refused.answer().result_code;
            assert!(
                ["C2B00011", "C2B00012", "C2B00013", "C2B00016"].contains(&code.as_str()),
                "{code}"
            );
        }
    }
}

/// A fuzz target: any bytes in, a panic on a finding.
pub type Target = fn(&[u8]);

/// A provider's statement (CSV), as a reconciliation reads it for the period from 5 February
/// to 7 March 2026; the first byte chooses whether M-Pesa's default currency applies.
///
/// Invariants: an accepted line has a transaction id of 1 to 64 printable ASCII characters
/// without spaces, a trimmed account of 1 to 64 characters, a positive amount no larger than the
/// largest payment, an upper-case ISO 4217 currency and a time within the period; transaction
/// ids are distinct and lines at most the limit; a refusal is a 400 or names the header, the
/// statement or a line and its column.
pub fn provider_statement(data: &[u8]) {
    use lien_server::commands::payments::MAX_PAYMENT_MINOR;
    use lien_server::error::ApiError;
    use lien_server::providers::statement::{MAX_STATEMENT_LINES, parse_period, read_statement};
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let (from, to) = parse_period("2026-02-05T00:00:00Z", "2026-03-07T00:00:00Z").unwrap();
    let default = (first % 2 == 0).then_some("KES");
    match read_statement(body, from, to, default) {
        Ok(lines) => {
            assert!(lines.len() <= MAX_STATEMENT_LINES);
            let mut seen = std::collections::HashSet::new();
            for line in &lines {
                assert!(seen.insert(line.reference.clone()), "{line:?} twice");
                assert!((1..=64).contains(&line.reference.chars().count()));
                assert!(line.reference.chars().all(|c| c.is_ascii_graphic()));
                assert!((1..=64).contains(&line.account.chars().count()));
                assert_eq!(line.account.trim(), line.account);
                assert!(line.amount_minor > 0 && line.amount_minor <= MAX_PAYMENT_MINOR);
                assert!(
                    line.currency.len() == 3
                        && line.currency.chars().all(|c| c.is_ascii_uppercase())
                );
                assert!(line.paid_at >= from && line.paid_at < to);
            }
        }
        Err(ApiError::BadRequest(_)) => {}
        Err(ApiError::Invalid(message)) => assert!(
            message.starts_with("header: ")
                || message.starts_with("statement: ")
                || message.starts_with("line "),
            "refusal {message:?} names nothing"
        ),
        Err(other) => panic!("a statement refused with {other:?}"),
    }
}

/// A signed provider payment: the JSON body (`PaymentCallback::parse`), and the Standard
/// Webhooks check of the same bytes under headers taken from the body's first line.
///
/// Invariants: an accepted payment has a reference of 1 to 64 printable ASCII characters, a
/// trimmed account of 1 to 64 characters, a positive amount no larger than the largest payment
/// and an upper-case currency, and parses the same again; a refusal names a field. A signature
/// check never passes for a signature Lien did not make, and always for one it did.
pub fn signed_payment(data: &[u8]) {
    use lien_server::commands::payments::MAX_PAYMENT_MINOR;
    use lien_server::providers::generic::{PaymentCallback, sign, verify};
    let secret = [5u8; 32];
    let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    // Headers from the first line (`id timestamp signature...`), the body after it.
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once('\n').unwrap_or(("", &text));
    let mut parts = head.splitn(3, ' ');
    let (id, timestamp, signature) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ] {
        if let Ok(value) = axum::http::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    if let Ok(verified) = verify(&secret, &headers, body.as_bytes(), now) {
        // Only a signature made with the secret passes.
        let seconds: i64 = timestamp.parse().unwrap();
        if seconds.to_string() == timestamp {
            assert!(signature.contains(&sign(&secret, id, seconds, body.as_bytes())[3..]));
        }
        assert_eq!(verified.id, id);
    }
    if let Ok(seconds) = timestamp.parse::<i64>()
        && (seconds - now.as_second()).abs() <= 300
        && !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_graphic())
        && let Ok(value) = axum::http::HeaderValue::from_str(id)
    {
        let mut signed = axum::http::HeaderMap::new();
        signed.insert("webhook-id", value);
        signed.insert(
            "webhook-timestamp",
            axum::http::HeaderValue::from_str(&seconds.to_string()).unwrap(),
        );
        signed.insert(
            "webhook-signature",
            axum::http::HeaderValue::from_str(&sign(&secret, id, seconds, body.as_bytes()))
                .unwrap(),
        );
        assert!(verify(&secret, &signed, body.as_bytes(), now).is_ok());
    }
    let Ok(callback) = serde_json::from_str::<PaymentCallback>(body) else {
        return;
    };
    match callback.parse() {
        Ok(payment) => {
            assert!((1..=64).contains(&payment.reference.chars().count()));
            assert!(payment.reference.chars().all(|c| c.is_ascii_graphic()));
            assert!((1..=64).contains(&payment.account.chars().count()));
            assert_eq!(payment.account.trim(), payment.account);
            assert!(payment.amount_minor > 0 && payment.amount_minor <= MAX_PAYMENT_MINOR);
            assert!(payment.currency.chars().all(|c| c.is_ascii_uppercase()));
            assert_eq!(callback.parse().ok(), Some(payment));
        }
        Err(refused) => {
            let message = refused.to_string();
            assert!(
                ["reference", "account", "amount", "currency", "paid_at"]
                    .iter()
                    .any(|f| message.starts_with(&format!("{f}: "))),
                "refusal {message:?} names no field"
            );
        }
    }
}

/// Every target by name, as the corpus directories are named.
pub const TARGETS: [(&str, Target); 10] = [
    ("identity", identity),
    ("status_token", status_token),
    ("ocra", ocra),
    ("device_bodies", device_bodies),
    ("bulk_csv", bulk_csv),
    ("appeal_form", appeal_form),
    ("policy_plan", policy_plan),
    ("mpesa_callback", mpesa_callback),
    ("provider_statement", provider_statement),
    ("signed_payment", signed_payment),
];
