//! Checks lien-proto's OCRA against `vectors/ocra.json`, the file a
//! phone-side implementation checks itself against too.

use std::collections::BTreeMap;

use lien_proto::ocra::{OcraInput, OcraSuite};
use serde::Deserialize;
use sha1::{Digest, Sha1};

const RFC: &str = "RFC 6287 Appendix C";
const LIEN: &str = "lien";

#[derive(Deserialize)]
struct VectorFile {
    description: String,
    message_layout: String,
    keys: BTreeMap<String, String>,
    pin: Pin,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Pin {
    value: String,
    sha1: String,
}

#[derive(Deserialize)]
struct Case {
    source: String,
    suite: String,
    key: String,
    counter: Option<u64>,
    question: String,
    question_parts: Option<Vec<String>>,
    pin: Option<String>,
    password_hash: Option<String>,
    timestamp: Option<u64>,
    response: String,
    data_input: Option<String>,
}

fn load() -> VectorFile {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/ocra.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// The response with its last digit changed, which must not verify.
fn one_digit_off(response: &str) -> String {
    let (head, last) = response.split_at(response.len() - 1);
    let digit = last.parse::<u8>().expect("responses are decimal");
    format!("{head}{}", (digit + 1) % 10)
}

#[test]
fn file_describes_itself_and_holds_every_rfc_vector() {
    let file = load();
    assert!(!file.description.is_empty());
    assert!(file.message_layout.contains("0x00"));
    // Appendix C has 40 one-way, 20 mutual and 10 signature vectors.
    let rfc = file.cases.iter().filter(|c| c.source == RFC).count();
    let lien = file.cases.iter().filter(|c| c.source == LIEN).count();
    assert_eq!(rfc, 70, "every RFC 6287 Appendix C vector must be present");
    assert!(lien >= 3, "expected at least 3 Lien vectors, found {lien}");
    assert_eq!(rfc + lien, file.cases.len(), "unknown source in a case");
    assert!(
        file.cases
            .iter()
            .filter(|c| c.source == LIEN)
            .all(|c| c.suite == "OCRA-1:HOTP-SHA256-8:C-QN08" && c.data_input.is_some())
    );
}

#[test]
fn pin_hash_is_the_sha1_of_the_pin() {
    let file = load();
    assert_eq!(
        hex::encode(Sha1::digest(file.pin.value.as_bytes())),
        file.pin.sha1
    );
    for case in &file.cases {
        if let Some(pin) = &case.pin {
            assert_eq!(pin, &file.pin.value);
            assert_eq!(case.password_hash.as_ref(), Some(&file.pin.sha1));
        }
    }
}

#[test]
fn every_vector_responds_and_verifies() {
    let file = load();
    assert!(
        file.cases.len() >= 73,
        "too few cases: {}",
        file.cases.len()
    );
    let mut checked = 0;
    for case in &file.cases {
        let name = format!("{} {:?} C={:?}", case.suite, case.question, case.counter);
        let suite = OcraSuite::parse(&case.suite).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(suite.to_string(), case.suite);
        let key = hex::decode(&file.keys[&case.key]).expect("key is hex");
        let password_hash = case
            .password_hash
            .as_ref()
            .map(|h| hex::decode(h).expect("password hash is hex"));
        // Mutual cases give Q as two challenges, each within the suite's limit.
        let (challenge, second_challenge) = match case.question_parts.as_deref() {
            Some([first, second]) => {
                assert_eq!(format!("{first}{second}"), case.question, "{name}");
                (first.as_str(), Some(second.as_str()))
            }
            Some(parts) => panic!("{name}: {} question parts, expected 2", parts.len()),
            None => (case.question.as_str(), None),
        };
        let input = OcraInput {
            counter: case.counter,
            challenge,
            second_challenge,
            password_hash: password_hash.as_deref(),
            session: None,
            timestamp: case.timestamp,
        };

        if let Some(expected) = &case.data_input {
            let data_input = suite.data_input(input).unwrap();
            assert_eq!(&hex::encode(data_input), expected, "{name}: data input");
        }
        let response = suite
            .respond(&key, input)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(response, case.response, "{name}");
        assert_eq!(
            suite.verify(&key, input, &case.response),
            Ok(true),
            "{name}"
        );
        let wrong = one_digit_off(&case.response);
        assert_eq!(suite.verify(&key, input, &wrong), Ok(false), "{name}");
        checked += 1;
    }
    assert_eq!(checked, file.cases.len());
}

#[test]
fn mutual_vectors_are_all_split() {
    let file = load();
    let mutual = file
        .cases
        .iter()
        .filter(|c| c.question.len() == 16 && c.suite.contains("QA08"));
    assert_eq!(mutual.clone().count(), 20);
    assert!(mutual.clone().all(|c| c.question_parts.is_some()));
}
