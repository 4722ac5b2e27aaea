//! Status token test vectors: `vectors/status-tokens.json` is generated from the cases below
//! (run with `LIEN_WRITE_VECTORS=1` to rewrite it), a test fails if the file and the code drift
//! apart, and another verifies every case reading nothing but the file, as a phone-side
//! implementation in another language would.

use std::path::PathBuf;
use std::time::Duration;

use coset::{CborSerializable, CoseSign1, HeaderBuilder, TaggedCborSerializable, iana};
use ed25519_dalek::Signer;
use ed25519_dalek::{SigningKey, VerifyingKey};
use lien_proto::*;
use serde_json::{Value, json};

/// Test keys, published on purpose: never use them for anything but tests.
fn server_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8 + 1))
}

fn other_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8 + 0x21))
}

const DEVICE: &str = "dev_01JD4Z3K8Q";
const ISSUED: i64 = 1_772_409_600; // 2026-03-02T00:00:00Z

fn claims(state: TokenState, sequence: u64) -> StatusClaims {
    let locked = state == TokenState::Locked;
    StatusClaims {
        device_id: DEVICE.into(),
        sequence,
        state,
        restrictions: if locked {
            vec![
                DeviceRestriction::LockScreen,
                DeviceRestriction::FactoryReset,
                DeviceRestriction::Debugging,
            ]
        } else {
            vec![]
        },
        screen: ScreenText {
            reason: if locked {
                "This device is locked due to an overdue installment payment".into()
            } else {
                "In good standing".into()
            },
            amount_due: locked.then(|| WireMoney {
                minor: 50_000,
                currency: "KES".into(),
            }),
            financier_name: "Duka Finance".into(),
            financier_contact: "+254 700 000 000".into(),
            payment_link: Some("https://pay.example/duka/ACC-1042".into()),
        },
        issued_at: ISSUED,
        lease: Some(Lease {
            ends_at: ISSUED + 10 * 86_400,
            warn_from: ISSUED + 7 * 86_400,
        }),
        emergency: None,
    }
}

fn released(sequence: u64) -> StatusClaims {
    StatusClaims {
        state: TokenState::Released,
        lease: None,
        screen: ScreenText {
            reason: "Paid in full: this phone is yours".into(),
            ..claims(TokenState::Active, sequence).screen
        },
        ..claims(TokenState::Active, sequence)
    }
}

fn sign(key: &SigningKey, claims: &StatusClaims) -> Vec<u8> {
    TokenSigner::new(key.clone()).sign(claims)
}

/// A protected header naming `algorithm` and, if there is one, the key id `kid`.
fn header(algorithm: iana::Algorithm, kid: Option<Vec<u8>>) -> coset::Header {
    let builder = HeaderBuilder::new().algorithm(algorithm);
    match kid {
        Some(kid) => builder.key_id(kid),
        None => builder,
    }
    .build()
}

/// Signs `payload` with the server key under an arbitrary protected header, to build tokens
/// whose only fault is in the header or the payload.
fn signed_with(protected: coset::Header, payload: Vec<u8>) -> Vec<u8> {
    let key = server_key();
    coset::CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(&[], |data| key.sign(data).to_bytes().to_vec())
        .build()
        .to_tagged_vec()
        .unwrap()
}

fn claims_cbor(claims: &StatusClaims) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(claims, &mut out).unwrap();
    out
}

struct Case {
    name: &'static str,
    description: &'static str,
    token: Vec<u8>,
    device_id: &'static str,
    highest_seen: u64,
    expect: Result<StatusClaims, &'static str>,
}

fn cases() -> Vec<Case> {
    let key = server_key();
    let locked = claims(TokenState::Locked, 7);
    let locked_token = sign(&key, &locked);
    let server_kid = KeyId::of(&key.verifying_key()).as_str().as_bytes().to_vec();

    let mut bad_signature = CoseSign1::from_tagged_slice(&locked_token).unwrap();
    bad_signature.signature[0] ^= 0x01;

    // A signed "active" payload spliced under the signature of the "locked" one.
    let mut spliced = CoseSign1::from_tagged_slice(&locked_token).unwrap();
    let active_token = sign(&key, &claims(TokenState::Active, 7));
    spliced.payload = CoseSign1::from_tagged_slice(&active_token).unwrap().payload;

    // The same signature with S + L, the group order: valid under lax verifiers, and refused
    // by strict ones because it lets anyone make a second signature for the same message.
    let mut malleable = CoseSign1::from_tagged_slice(&locked_token).unwrap();
    let order: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (s, l) in malleable.signature[32..].iter_mut().zip(order) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }

    let mut bad_lease = claims(TokenState::Active, 8);
    bad_lease.lease = Some(Lease {
        ends_at: ISSUED,
        warn_from: ISSUED,
    });

    // Emergency use, added to the claims later as an optional field: 24 hours every 30 days,
    // the last window reported 40 days before issue.
    let mut emergency = claims(TokenState::Locked, 10);
    emergency.emergency = Some(EmergencyAllowance {
        hours: 24,
        every_days: 30,
        last_used_at: Some(ISSUED - 40 * 86_400),
    });
    let mut endless_emergency = claims(TokenState::Locked, 11);
    endless_emergency.emergency = Some(EmergencyAllowance {
        hours: 48,
        every_days: 2,
        last_used_at: None,
    });

    vec![
        Case {
            name: "locked-with-emergency-use",
            description: "A locked phone whose policy offers 24 hours of emergency use every 30 days, the last window having started 40 days before issue. Tokens without `emergency` offer none.",
            token: sign(&key, &emergency),
            device_id: DEVICE,
            highest_seen: 7,
            expect: Ok(emergency.clone()),
        },
        Case {
            name: "emergency-window-fills-its-period",
            description: "A validly signed token whose emergency window (48 hours) is not shorter than its period (2 days): windows could be taken back to back.",
            token: sign(&key, &endless_emergency),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("invalid-claims"),
        },
        Case {
            name: "active",
            description: "A phone in good standing; its lease ends 10 days after issue, with a warning from day 7.",
            token: sign(&key, &claims(TokenState::Active, 1)),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Ok(claims(TokenState::Active, 1)),
        },
        Case {
            name: "locked",
            description: "A locked phone: the lock screen shows the reason, the amount due, the financier and where to pay.",
            token: locked_token.clone(),
            device_id: DEVICE,
            highest_seen: 7,
            expect: Ok(locked.clone()),
        },
        Case {
            name: "released",
            description: "A released phone: no lease, no restrictions, never expires.",
            token: sign(&key, &released(9)),
            device_id: DEVICE,
            highest_seen: 8,
            expect: Ok(released(9)),
        },
        Case {
            name: "bad-signature",
            description: "The locked token with one bit of the signature flipped.",
            token: bad_signature.to_tagged_vec().unwrap(),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("bad-signature"),
        },
        Case {
            name: "spliced-payload",
            description: "An 'active' payload under the locked token's signature.",
            token: spliced.to_tagged_vec().unwrap(),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("bad-signature"),
        },
        Case {
            name: "malleable-signature",
            description: "The locked token's signature with the group order added to S: must be refused by a strict verifier.",
            token: malleable.to_tagged_vec().unwrap(),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("bad-signature"),
        },
        Case {
            name: "unknown-key",
            description: "A well-formed token signed by a key the phone has not pinned.",
            token: sign(&other_key(), &claims(TokenState::Active, 50)),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("unknown-key"),
        },
        Case {
            name: "wrong-algorithm",
            description: "A correct Ed25519 signature, but the protected header says ES256: the algorithm is checked before the key and the signature.",
            token: signed_with(
                header(iana::Algorithm::ES256, Some(server_kid.clone())),
                claims_cbor(&claims(TokenState::Active, 1)),
            ),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("wrong-algorithm"),
        },
        Case {
            name: "older-sequence",
            description: "A valid token older than one the phone already accepted: a replayed unlock.",
            token: sign(&key, &claims(TokenState::Active, 1)),
            device_id: DEVICE,
            highest_seen: 7,
            expect: Err("sequence-regressed"),
        },
        Case {
            name: "other-device",
            description: "A valid token for another phone.",
            token: sign(&key, &claims(TokenState::Active, 1)),
            device_id: "dev_OTHERPHONE",
            highest_seen: 0,
            expect: Err("wrong-device"),
        },
        Case {
            name: "lease-ends-at-issue",
            description: "A validly signed token whose lease ends when it is issued.",
            token: sign(&key, &bad_lease),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("invalid-claims"),
        },
        Case {
            name: "untagged",
            description: "The locked token without its CBOR tag 18: tokens are always tagged.",
            token: CoseSign1::from_tagged_slice(&locked_token)
                .unwrap()
                .to_vec()
                .unwrap(),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("malformed"),
        },
        Case {
            name: "missing-kid",
            description: "Correctly signed by the server key, but with no kid in the protected header.",
            token: signed_with(
                header(iana::Algorithm::EdDSA, None),
                claims_cbor(&claims(TokenState::Active, 1)),
            ),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("unknown-key"),
        },
        Case {
            name: "claims-not-a-map",
            description: "Correctly signed, but the payload is the CBOR integer 42 instead of the claims map.",
            token: signed_with(
                header(iana::Algorithm::EdDSA, Some(server_kid.clone())),
                vec![0x18, 0x2a],
            ),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("malformed"),
        },
        Case {
            name: "not-cose",
            description: "Bytes that are not a COSE_Sign1 message.",
            token: b"not a token".to_vec(),
            device_id: DEVICE,
            highest_seen: 0,
            expect: Err("malformed"),
        },
    ]
}

fn key_json(key: &SigningKey) -> Value {
    json!({
        "seed_hex": hex::encode(key.to_bytes()),
        "public_hex": hex::encode(key.verifying_key().as_bytes()),
        "key_id": KeyId::of(&key.verifying_key()).as_str(),
    })
}

fn generated() -> Value {
    let cases: Vec<Value> = cases()
        .into_iter()
        .map(|c| {
            let mut case = json!({
                "name": c.name,
                "description": c.description,
                "token_hex": hex::encode(&c.token),
                "device_id": c.device_id,
                "highest_seen_sequence": c.highest_seen,
            });
            match c.expect {
                Ok(claims) => {
                    case["expect"] = json!("valid");
                    case["claims"] = serde_json::to_value(claims).unwrap();
                }
                Err(code) => case["expect"] = json!(code),
            }
            case
        })
        .collect();
    json!({
        "description": [
            "Lien status token test vectors. The keys are test keys, published on purpose: never use them for anything else.",
            "Envelope: a COSE_Sign1 message (RFC 9052) with CBOR tag 18 (untagged messages are refused), signed with Ed25519 (alg EdDSA, -8) over the Sig_structure with empty external_aad. The protected header holds alg (label 1) and kid (label 4); kid is a byte string holding the ASCII of the lower-case hex of the first 8 bytes of SHA-256 of the 32-byte public key. The unprotected header is empty and ignored: a kid there does not count.",
            "Claims: the payload is a CBOR map with text keys: device_id (text), sequence (unsigned), state (one of active, reminder, restricted, locked, released), restrictions (array of lock-screen, app-installs, factory-reset, debugging, safe-mode), screen (map: reason text, amount_due null or {minor integer, currency ISO 4217 text}, financier_name text, financier_contact text, payment_link null or text), issued_at (Unix seconds), lease (null, or {ends_at, warn_from} in Unix seconds). All keys are required except that lease may be absent when null; unknown keys are ignored; a missing key, a wrong type or an unknown state is malformed. The map is not in deterministic CBOR order: verify over the exact payload bytes and never re-encode.",
            "Checks, in this order, the first failure giving the error code: malformed (not a tagged COSE_Sign1, or claims that do not decode), wrong-algorithm (alg is not EdDSA), unknown-key (kid missing or not among 'pinned'), bad-signature (Ed25519 checked strictly: S must be below the group order, and the public key and R must not be of small order), wrong-device (device_id differs from the case's device_id), sequence-regressed (sequence below highest_seen_sequence; an equal sequence is accepted, because a server re-delivers the stored token at every check-in), invalid-claims (a released token has no lease and no restrictions; any other token has a lease with issued_at < ends_at and issued_at <= warn_from <= ends_at).",
            "Expiry is not a verification check: a phone does not trust its wall clock, so it counts the lease from the moment it accepts a token, with a monotonic clock (lease length = ends_at - issued_at, warning after warn_from - issued_at). The vectors therefore stay valid whatever the date.",
            "Each case: verify token_hex with the keys under 'pinned' for device_id and highest_seen_sequence; 'expect' is 'valid' (then the decoded claims must equal 'claims') or the error code."
        ],
        "keys": { "server": key_json(&server_key()), "unpinned": key_json(&other_key()) },
        "pinned": [hex::encode(server_key().verifying_key().as_bytes())],
        "cases": cases,
    })
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/status-tokens.json")
}

fn read_vectors() -> Value {
    let text = std::fs::read_to_string(vectors_path()).expect("vectors/status-tokens.json exists");
    serde_json::from_str(&text).expect("the vector file is JSON")
}

#[test]
fn vector_file_matches_the_implementation() {
    let generated = generated();
    if std::env::var_os("LIEN_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(vectors_path(), text).unwrap();
    }
    assert_eq!(
        read_vectors(),
        generated,
        "vectors/status-tokens.json differs from what the code produces; if the change is \
         intended, run the tests with LIEN_WRITE_VECTORS=1 and review the diff"
    );
}

#[test]
fn every_vector_verifies_as_recorded() {
    let file = read_vectors();
    let pinned = PinnedKeys::new(file["pinned"].as_array().unwrap().iter().map(|k| {
        let bytes: [u8; 32] = hex::decode(k.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        VerifyingKey::from_bytes(&bytes).unwrap()
    }));
    let cases = file["cases"].as_array().unwrap();
    assert!(cases.len() >= 15, "the vector file lost cases");
    let mut valid = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let token = hex::decode(case["token_hex"].as_str().unwrap()).unwrap();
        let outcome = pinned.verify(
            &token,
            case["device_id"].as_str().unwrap(),
            case["highest_seen_sequence"].as_u64().unwrap(),
        );
        match (case["expect"].as_str().unwrap(), outcome) {
            ("valid", Ok(claims)) => {
                valid += 1;
                assert_eq!(
                    serde_json::to_value(claims).unwrap(),
                    case["claims"],
                    "{name}"
                );
            }
            (expected, Err(e)) => assert_eq!(e.code(), expected, "{name}: {e}"),
            (expected, Ok(claims)) => panic!("{name}: expected {expected}, accepted {claims:?}"),
        }
    }
    assert_eq!(valid, 4);
}

#[test]
fn a_rotated_key_is_accepted_while_both_are_pinned() {
    let pinned = PinnedKeys::new([server_key().verifying_key(), other_key().verifying_key()]);
    let token = sign(&other_key(), &claims(TokenState::Active, 3));
    assert_eq!(pinned.verify(&token, DEVICE, 3).unwrap().sequence, 3);
}

#[test]
fn signing_is_deterministic() {
    let c = claims(TokenState::Locked, 2);
    assert_eq!(sign(&server_key(), &c), sign(&server_key(), &c));
}

#[test]
fn lease_counts_elapsed_time_from_acceptance() {
    let c = claims(TokenState::Active, 1);
    let day = Duration::from_secs(86_400);
    assert_eq!(c.lease_status(day * 6), LeaseStatus::Valid);
    assert_eq!(
        c.lease_status(day * 8),
        LeaseStatus::Warning { remaining: day * 2 }
    );
    assert_eq!(c.lease_status(day * 10), LeaseStatus::Expired);
    assert_eq!(
        released(2).lease_status(day * 10_000),
        LeaseStatus::Unlimited
    );
}

#[test]
fn errors_say_what_is_wrong() {
    let pinned = PinnedKeys::new([server_key().verifying_key()]);
    let token = sign(&server_key(), &claims(TokenState::Active, 1));
    let err = pinned.verify(&token, DEVICE, 5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "token sequence 1 is lower than 5, the highest already accepted"
    );
    let token = sign(&other_key(), &claims(TokenState::Active, 1));
    let err = pinned.verify(&token, DEVICE, 0).unwrap_err();
    assert!(err.to_string().contains("not pinned"), "{err}");
}
