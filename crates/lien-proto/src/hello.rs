//! Hello receipts: the server's signed word on what a hello decided, bound to the phone's
//! challenge.
//!
//! At setup a phone asks the server for a fresh challenge, has its secure hardware attest a new
//! device key for that challenge (see the `attestation` module), and says hello. Whatever the
//! server answers that changes what the phone enforces ("not financed", or "financed: here is
//! your binding") carries a receipt: a COSE_Sign1 message signed with the server's token key,
//! with its own content type ([`RECEIPT_CONTENT_TYPE`]) so it can never be taken for a status
//! token, whose payload names the challenge, the IMEI and the verdict. A fake server on the
//! phone's network cannot sign one, and a receipt recorded for another phone or another hello
//! names another challenge, so the agent refuses it: it never unbinds, and never lifts a
//! restriction, on an answer it cannot verify.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::token::{PinnedKeys, TokenError, TokenSigner};

/// The content type in a receipt's protected header.
pub const RECEIPT_CONTENT_TYPE: &str = "application/lien-hello-receipt+cbor";

/// What a hello decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The phone is financed and now bound.
    Financed {
        /// The device it is bound as.
        device_id: String,
        /// SHA-256 of the binding's secrets as sent ([`binding_digest`]), so a receipt vouches
        /// for the credential and offline key in the same answer and no other.
        binding: String,
    },
    /// No financier holds a claim on the attested phone.
    NotFinanced,
}

/// The payload of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The challenge the hello answered, base64 as the server issued it.
    pub challenge: String,
    /// The phone's first IMEI, as its hardware attested it.
    pub imei1: String,
    /// The server's time, Unix seconds.
    pub issued_at: i64,
    /// What was decided.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Why a receipt is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The envelope, key or signature is wrong (see [`TokenError`]).
    #[error("the receipt does not verify: {0}")]
    Signature(#[from] TokenError),
    /// The receipt answers another hello.
    #[error("the receipt is for another challenge")]
    WrongChallenge,
    /// The receipt is for another phone.
    #[error("the receipt is for IMEI {found}, not this phone's")]
    WrongImei {
        /// The IMEI the receipt names.
        found: String,
    },
    /// A "financed" receipt that vouches for other secrets than the answer carried.
    #[error("the receipt vouches for another binding than the one received")]
    WrongBinding,
}

impl ReceiptError {
    /// A stable short code for the error, as the test vectors name it.
    pub fn code(&self) -> &'static str {
        match self {
            ReceiptError::Signature(e) => e.code(),
            ReceiptError::WrongChallenge => "wrong-challenge",
            ReceiptError::WrongImei { .. } => "wrong-imei",
            ReceiptError::WrongBinding => "wrong-binding",
        }
    }
}

/// The digest a financed receipt carries: SHA-256, hex, over the device id, the credential and
/// the offline key exactly as the answer carries them (base64 text), each preceded by its length
/// as 8 bytes big-endian.
pub fn binding_digest(device_id: &str, credential: &str, offline_key: &str) -> String {
    let mut hash = Sha256::new();
    for part in [device_id, credential, offline_key] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

impl TokenSigner {
    /// Signs a hello receipt.
    pub fn sign_receipt(&self, receipt: &Receipt) -> Vec<u8> {
        self.sign_cbor(receipt, Some(RECEIPT_CONTENT_TYPE))
    }
}

impl PinnedKeys {
    /// Verifies a receipt for the hello this phone sent with `challenge` (base64, as received)
    /// and `imei1`: the signature under a pinned key first, then that it answers this very
    /// hello. A financed receipt's binding is checked by the caller with [`binding_digest`].
    pub fn verify_receipt(
        &self,
        receipt: &[u8],
        challenge: &str,
        imei1: &str,
    ) -> Result<Receipt, ReceiptError> {
        let receipt: Receipt = self.open(receipt, Some(RECEIPT_CONTENT_TYPE))?;
        if receipt.challenge != challenge {
            return Err(ReceiptError::WrongChallenge);
        }
        if receipt.imei1 != imei1 {
            return Err(ReceiptError::WrongImei {
                found: receipt.imei1,
            });
        }
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::token::{ScreenText, StatusClaims, TokenState};

    fn signer(seed: u8) -> TokenSigner {
        TokenSigner::new(SigningKey::from_bytes(&[seed; 32]))
    }

    fn not_financed(challenge: &str) -> Receipt {
        Receipt {
            challenge: challenge.into(),
            imei1: "356938035643809".into(),
            issued_at: 1_767_000_000,
            verdict: Verdict::NotFinanced,
        }
    }

    #[test]
    fn a_receipt_verifies_only_for_its_own_hello_and_key() {
        let server = signer(1);
        let pinned = PinnedKeys::new([server.verifying_key()]);
        let receipt = server.sign_receipt(&not_financed("Y2hhbGxlbmdl"));
        let opened = pinned
            .verify_receipt(&receipt, "Y2hhbGxlbmdl", "356938035643809")
            .unwrap();
        assert_eq!(opened.verdict, Verdict::NotFinanced);
        assert_eq!(
            pinned.verify_receipt(&receipt, "b3RoZXI=", "356938035643809"),
            Err(ReceiptError::WrongChallenge)
        );
        assert!(matches!(
            pinned.verify_receipt(&receipt, "Y2hhbGxlbmdl", "490154203237518"),
            Err(ReceiptError::WrongImei { .. })
        ));
        // Signed by a fake server's key: refused before anything in it is read.
        let forged = signer(2).sign_receipt(&not_financed("Y2hhbGxlbmdl"));
        assert!(matches!(
            pinned.verify_receipt(&forged, "Y2hhbGxlbmdl", "356938035643809"),
            Err(ReceiptError::Signature(TokenError::UnknownKey(_)))
        ));
    }

    #[test]
    fn a_receipt_and_a_token_cannot_stand_for_each_other() {
        let server = signer(1);
        let pinned = PinnedKeys::new([server.verifying_key()]);
        let receipt = server.sign_receipt(&not_financed("Y2hhbGxlbmdl"));
        assert!(matches!(
            pinned.verify(&receipt, "dev_1", 0),
            Err(TokenError::Malformed(_))
        ));
        let claims = StatusClaims {
            device_id: "dev_1".into(),
            sequence: 1,
            state: TokenState::Released,
            restrictions: vec![],
            screen: ScreenText {
                reason: "Paid in full".into(),
                amount_due: None,
                financier_name: "Duka Phones".into(),
                financier_contact: "+254 700 000 000".into(),
                payment_link: None,
            },
            issued_at: 1_767_000_000,
            lease: None,
            emergency: None,
        };
        let token = server.sign(&claims);
        assert!(matches!(
            pinned.verify_receipt(&token, "Y2hhbGxlbmdl", "356938035643809"),
            Err(ReceiptError::Signature(TokenError::Malformed(_)))
        ));
    }

    #[test]
    fn the_binding_digest_separates_its_parts() {
        assert_ne!(
            binding_digest("dev_1", "ab", "c"),
            binding_digest("dev_1", "a", "bc")
        );
        assert_eq!(binding_digest("d", "c", "o").len(), 64);
    }
}
