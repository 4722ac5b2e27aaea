//! The hello: how a phone becomes bound to its record, by its hardware's proof alone.
//!
//! A hello names a challenge this server (or one sharing its keys) issued, and carries an
//! Android key attestation chain over that challenge. The phone is bound only when the chain
//! verifies to a pinned root, the IMEIs and serial the hardware attests are the ones the body
//! names and the device was enrolled with, and the challenge was issued after the device's
//! current binding (so a replayed hello binds nothing). What the box prints is never enough:
//! a stranger with the IMEI and serial has no attestation for them. Every refusal looks the
//! same to the caller; the reason goes to the log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use lien_core::Imei;
use lien_proto::attestation;
use lien_proto::device_api::{HelloChallenge, HelloRequest, HelloResponse};
use lien_proto::hello::{Receipt, Verdict, binding_digest};
use lien_store::StoreError;
use sha2::Sha256;

use super::OFFLINE_SUITE;
use super::phone::BindError;
use crate::app::AppState;
use crate::clock::micros;
use crate::error::ApiError;
use crate::input::parse_imeis;
use crate::rate_limit::Limited;

/// How long a hello challenge stays valid.
const CHALLENGE_LIFETIME_SECS: i64 = 300;
/// How far ahead of this server's clock another server's may be when it issues a challenge.
const SERVER_CLOCK_SKEW_SECS: i64 = 30;

/// What every refused hello answers, whatever the reason (no or a bad attestation, an unknown
/// or reused challenge, a serial that differs): the reason goes to the log, never to the
/// caller, so a refusal tells nothing about which IMEIs are financed or what their serials are.
fn hello_refused(why: impl std::fmt::Display) -> ApiError {
    tracing::info!(reason = %why, "hello refused");
    ApiError::Unauthorized("hello refused: the phone's attestation was not accepted".into())
}

/// A fresh, single-use challenge for a hello, valid for [`CHALLENGE_LIFETIME_SECS`].
pub fn challenge(state: &AppState) -> Result<HelloChallenge, ApiError> {
    let now = state.clock.now();
    let challenge = hello_challenge_bytes(state, micros(now))?;
    Ok(HelloChallenge {
        challenge: STANDARD.encode(challenge),
        expires_at: now.as_second() + CHALLENGE_LIFETIME_SECS,
    })
}

/// A challenge: 16 random bytes, the time it was issued (microseconds, big-endian) and the first
/// 16 bytes of an HMAC over both under the server's challenge key. It is checked without any
/// stored state, so any server sharing the keys can take the hello; it is used at most once
/// because a binding records when it was made, and a hello must come with a challenge issued
/// after the device's current binding (see [`hello`]).
fn hello_challenge_bytes(state: &AppState, issued_us: i64) -> Result<Vec<u8>, ApiError> {
    let nonce = crate::secrets::random_bytes().map_err(ApiError::Internal)?;
    let mut challenge = nonce[..16].to_vec();
    challenge.extend_from_slice(&issued_us.to_be_bytes());
    let tag = challenge_mac(state, &challenge).finalize().into_bytes();
    challenge.extend_from_slice(&tag[..16]);
    Ok(challenge)
}

fn challenge_mac(state: &AppState, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&state.secrets.hello_challenge_key())
        .expect("HMAC takes any key length");
    mac.update(b"lien-hello-challenge");
    mac.update(body);
    mac
}

/// When `challenge` was issued, if this server's key made it and it has not expired.
fn challenge_issued_us(state: &AppState, challenge: &[u8], now_us: i64) -> Option<i64> {
    if challenge.len() != 40 {
        return None;
    }
    let (body, tag) = challenge.split_at(24);
    challenge_mac(state, body).verify_truncated_left(tag).ok()?;
    let issued_us = i64::from_be_bytes(body[16..24].try_into().ok()?);
    let age_us = now_us.checked_sub(issued_us)?;
    // Another server sharing the keys may have issued it, by a clock a little ahead of ours.
    (-SERVER_CLOCK_SKEW_SECS * 1_000_000..=CHALLENGE_LIFETIME_SECS * 1_000_000)
        .contains(&age_us)
        .then_some(issued_us)
}
/// What a hello comes to: an answer, or the per-IMEI limit (charged only once the hardware
/// vouched for the IMEI).
pub enum Hello {
    /// Financed (now bound) or not financed, with a receipt signed for the challenge.
    Answered(HelloResponse),
    /// Too many hellos for this IMEI.
    Limited(Limited),
}

/// Takes a hello (see the module's comment): binds the phone and answers with its credentials,
/// or answers "not financed"; either answer carries a receipt signed for the challenge.
pub async fn hello(state: &AppState, req: HelloRequest) -> Result<Hello, ApiError> {
    let now = state.clock.now();
    let (imei1, imei2) = parse_imeis(&req.imei1, req.imei2.as_deref())?;
    let chain = req
        .attestation
        .iter()
        .map(|cert| STANDARD.decode(cert.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::invalid("attestation", "each certificate must be base64 DER"))?;
    let challenge = STANDARD
        .decode(req.challenge.trim())
        .map_err(|_| ApiError::invalid("challenge", "must be base64, as received"))?;
    let Some(issued_us) = challenge_issued_us(state, &challenge, micros(now)) else {
        return Err(hello_refused("unknown or expired challenge"));
    };
    let attested = attestation::verify(
        &chain,
        &state.secrets.attestation_roots,
        &challenge,
        now.as_second(),
    )
    .map_err(|e| hello_refused(e.code()))?;
    // A leaked factory key attests whatever it is told to: Google's list names them.
    if let Some(serial) = state
        .attestation_status
        .revoked(&attested.certificate_serials)
    {
        return Err(hello_refused(format_args!(
            "attestation certificate {serial} is revoked"
        )));
    }
    // The hardware's word goes: the IMEIs the body names must be the attested ones.
    let attested_imei1 =
        Imei::parse(&attested.imei1).map_err(|_| hello_refused("attested IMEI malformed"))?;
    // Charged only once the hardware vouched for the IMEI: a stranger sending junk hellos that
    // name a phone's IMEI must not use up that phone's allowance and keep it from binding.
    if let Err(limited) = state
        .hello_imei_limit
        .check(attested_imei1.as_str().to_string())
    {
        return Ok(Hello::Limited(limited));
    }
    let attested_imei2 = attested
        .imei2
        .as_deref()
        .map(Imei::parse)
        .transpose()
        .map_err(|_| hello_refused("attested second IMEI malformed"))?;
    let attested_serial = attested.serial.clone().unwrap_or_default();
    if attested_imei1 != imei1
        || imei2.is_some_and(|imei2| Some(imei2) != attested_imei2)
        || !req
            .serial
            .trim()
            .eq_ignore_ascii_case(attested_serial.trim())
    {
        return Err(hello_refused(
            "the body's identifiers are not the attested ones",
        ));
    }

    let mut found = None;
    for imei in std::iter::once(&attested_imei1).chain(attested_imei2.as_ref()) {
        match state.store.device_by_imei(imei.as_str()).await {
            Ok(device) => {
                found = Some(device);
                break;
            }
            Err(StoreError::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let receipt = |verdict: Verdict| {
        STANDARD.encode(state.signer.sign_receipt(&Receipt {
            challenge: req.challenge.trim().to_string(),
            imei1: attested_imei1.as_str().to_string(),
            issued_at: now.as_second(),
            verdict,
        }))
    };
    let Some(device) = found else {
        let answer = HelloResponse::NotFinanced {
            receipt: receipt(Verdict::NotFinanced),
        };
        return Ok(Hello::Answered(answer));
    };
    if !device
        .enrolled
        .serial
        .eq_ignore_ascii_case(attested_serial.trim())
    {
        return Err(hello_refused("the attested serial is not the enrolled one"));
    }
    // A challenge is good for one binding: a hello replayed (or sent twice) with a challenge
    // issued before the device's current binding is refused, in the transaction too.
    let stored = super::phone::bind(
        state,
        &device.enrolled.id,
        attested.public_key_spki.clone(),
        issued_us,
        now,
    )
    .await
    .map_err(|e| match e {
        BindError::StaleChallenge => hello_refused("challenge issued before the current binding"),
        BindError::Api(e) => e,
    })?;
    let generation = stored.binding.as_ref().map_or(0, |b| b.generation);
    let token = stored
        .token
        .as_ref()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a bound device has no token")))?;
    let device_id = stored.enrolled.id.clone();
    let credential = STANDARD.encode(state.secrets.device_credential(&device_id, generation));
    let offline_key = STANDARD.encode(state.secrets.ocra_key(&device_id, generation));
    let binding = binding_digest(&device_id, &credential, &offline_key);
    let answer = HelloResponse::Financed {
        receipt: receipt(Verdict::Financed {
            device_id: device_id.clone(),
            binding,
        }),
        device_id,
        credential,
        offline_key,
        offline_suite: OFFLINE_SUITE.to_string(),
        server_keys: vec![STANDARD.encode(state.signer.verifying_key().to_bytes())],
        token: STANDARD.encode(&token.bytes),
        checkin_interval_secs: state.settings.checkin_interval_secs,
    };
    Ok(Hello::Answered(answer))
}
