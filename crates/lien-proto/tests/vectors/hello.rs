//! Hello receipt test vectors: `vectors/hello-receipts.json` is generated from the cases below
//! (run with `LIEN_WRITE_VECTORS=1` to rewrite it; Ed25519 is deterministic, so the bytes are
//! reproducible), a test fails if the file and the code drift apart, and another checks every
//! case reading nothing but the file, as a phone-side implementation in another language would.

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use lien_proto::hello::{Receipt, Verdict, binding_digest};
use lien_proto::{PinnedKeys, TokenSigner};
use serde_json::{Value, json};

/// Test keys, published on purpose: never use them for anything but tests.
fn server_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8 + 1))
}

fn other_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8 + 0x21))
}

const CHALLENGE: &str = "q83vASNFZ4mrze8BI0VniQAGNiW6vR5qq83vASNFZ4kAAAAA";
const IMEI: &str = "356938035643809";
const ISSUED: i64 = 1_772_409_600; // 2026-03-02T00:00:00Z

fn receipt(challenge: &str, imei: &str, verdict: Verdict) -> Receipt {
    Receipt {
        challenge: challenge.into(),
        imei1: imei.into(),
        issued_at: ISSUED,
        verdict,
    }
}

fn financed() -> Verdict {
    Verdict::Financed {
        device_id: "dev_01JD4Z3K8Q".into(),
        binding: binding_digest("dev_01JD4Z3K8Q", "Y3JlZGVudGlhbA==", "b2ZmbGluZSBrZXk="),
    }
}

/// The file's contents, built from the cases.
fn generate() -> Value {
    let server = TokenSigner::new(server_key());
    let other = TokenSigner::new(other_key());
    let case = |name: &str, signer: &TokenSigner, r: Receipt, expect: &str| {
        json!({
            "name": name,
            "receipt_hex": hex::encode(signer.sign_receipt(&r)),
            "challenge": CHALLENGE,
            "imei1": IMEI,
            "expect": expect,
            "receipt": if expect == "valid" { serde_json::to_value(&r).unwrap() } else { Value::Null },
        })
    };
    json!({
        "description": [
            "Lien hello receipt test vectors. The keys are test keys, published on purpose: never use them for anything else.",
            "A receipt is the server's signed answer to a hello, bound to the phone's challenge. Envelope: as a status token (see status-tokens.json): a tagged COSE_Sign1 signed with Ed25519, alg and kid in the protected header, plus content type (label 3) = the text 'application/lien-hello-receipt+cbor'. A status token has no content type, so neither can be taken for the other.",
            "Payload: a CBOR map with text keys: challenge (text: the challenge exactly as the server issued it, base64), imei1 (text: the attested IMEI), issued_at (Unix seconds), verdict (text: 'financed' or 'not_financed'), and for 'financed' also device_id (text) and binding (text: lower-case hex SHA-256 over device_id, credential and offline_key exactly as the hello answer carries them, each preceded by its byte length as 8 bytes big-endian).",
            "Checks, in this order, the first failure giving the code: malformed (not a tagged COSE_Sign1, a missing or different content type, or a payload that does not decode), wrong-algorithm, unknown-key (kid not among 'pinned'), bad-signature (strict Ed25519), wrong-challenge (challenge differs from the hello's), wrong-imei (imei1 differs from the phone's). For a financed receipt the phone then compares binding with the digest of the answer it received.",
            "Each case: verify receipt_hex with the keys under 'pinned' for 'challenge' and 'imei1'; 'expect' is 'valid' (then the decoded payload must equal 'receipt') or the error code."
        ],
        "pinned": [hex::encode(server.verifying_key().to_bytes())],
        "cases": [
            case("not financed", &server, receipt(CHALLENGE, IMEI, Verdict::NotFinanced), "valid"),
            case("financed", &server, receipt(CHALLENGE, IMEI, financed()), "valid"),
            case("another hello's challenge", &server, receipt("b3RoZXIgY2hhbGxlbmdl", IMEI, Verdict::NotFinanced), "wrong-challenge"),
            case("another phone", &server, receipt(CHALLENGE, "490154203237518", Verdict::NotFinanced), "wrong-imei"),
            case("a fake server's key", &other, receipt(CHALLENGE, IMEI, Verdict::NotFinanced), "unknown-key"),
        ],
    })
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/hello-receipts.json")
}

#[test]
fn the_file_matches_the_code() {
    let generated = format!("{}\n", serde_json::to_string_pretty(&generate()).unwrap());
    if std::env::var_os("LIEN_WRITE_VECTORS").is_some() {
        std::fs::write(path(), &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path()).unwrap();
    assert!(
        committed == generated,
        "vectors/hello-receipts.json is out of date: rewrite it with LIEN_WRITE_VECTORS=1"
    );
}

#[test]
fn every_case_verifies_as_recorded_reading_only_the_file() {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    let pinned = PinnedKeys::new(file["pinned"].as_array().unwrap().iter().map(|k| {
        let bytes: [u8; 32] = hex::decode(k.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).unwrap()
    }));
    let cases = file["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let bytes = hex::decode(case["receipt_hex"].as_str().unwrap()).unwrap();
        let result = pinned.verify_receipt(
            &bytes,
            case["challenge"].as_str().unwrap(),
            case["imei1"].as_str().unwrap(),
        );
        match case["expect"].as_str().unwrap() {
            "valid" => {
                let receipt = result.unwrap();
                assert_eq!(serde_json::to_value(&receipt).unwrap(), case["receipt"]);
            }
            code => assert_eq!(result.unwrap_err().code(), code, "{}", case["name"]),
        }
    }
}
