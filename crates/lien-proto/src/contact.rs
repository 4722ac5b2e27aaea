//! Contact proofs: the server's signed word that it answered one particular check-in now.
//!
//! A phone's lease counts the time since it last heard from the server. The check-in answer
//! itself is not signed (only the token in it is), so its `server_time` can only ever make the
//! held token older: a recorded answer replayed later must not buy a fresh lease. That leaves a
//! phone whose lease ran out locked after a successful check-in until the server happens to
//! sign a new token. A phone in that position (lease warning or expired) asks for a contact
//! proof in its check-in; the server signs one naming the device, the request's counter (which
//! the server accepts once and the phone never sends twice), the token sequence it answers with
//! and its time. Verified under a pinned key, with the counter of the request just sent and the
//! sequence of the token held, it proves the server was reached now, and the lease counts from
//! it. A replayed proof names an old counter and is refused. It has its own content type, so it
//! can never be taken for a status token or a hello receipt.

use serde::{Deserialize, Serialize};

use crate::token::{PinnedKeys, TokenError, TokenSigner};

/// The content type in a contact proof's protected header.
pub const CONTACT_CONTENT_TYPE: &str = "application/lien-contact+cbor";

/// The payload of a contact proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The device that checked in.
    pub device_id: String,
    /// The counter of the check-in answered.
    pub counter: u64,
    /// The check-in's MAC (the `X-Lien-Signature` it was sent with), base64.
    pub request_mac: String,
    /// The sequence of the token in the same answer.
    pub token_sequence: u64,
    /// The server's time, Unix seconds.
    pub server_time: i64,
}

/// Why a contact proof is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    /// The envelope, key or signature is wrong (see [`TokenError`]).
    #[error("the contact proof does not verify: {0}")]
    Signature(#[from] TokenError),
    /// The proof answers another device, request or token: a replay, or a mix-up.
    #[error("the contact proof is for another device, request or token")]
    NotThisRequest,
}

impl TokenSigner {
    /// Signs a contact proof.
    pub fn sign_contact(&self, contact: &Contact) -> Vec<u8> {
        self.sign_cbor(contact, Some(CONTACT_CONTENT_TYPE))
    }
}

impl PinnedKeys {
    /// Verifies a contact proof for the check-in `device_id` sent with `counter` and
    /// `request_mac`, answered with the token of `token_sequence`: the signature under a pinned
    /// key first, then that it answers this very request.
    pub fn verify_contact(
        &self,
        proof: &[u8],
        device_id: &str,
        (counter, request_mac): (u64, &str),
        token_sequence: u64,
    ) -> Result<Contact, ContactError> {
        let contact: Contact = self.open(proof, Some(CONTACT_CONTENT_TYPE))?;
        if contact.device_id != device_id
            || contact.counter != counter
            || contact.request_mac != request_mac
            || contact.token_sequence != token_sequence
        {
            return Err(ContactError::NotThisRequest);
        }
        Ok(contact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn a_proof_verifies_only_for_its_own_request_and_never_as_a_token() {
        let signer = TokenSigner::new(SigningKey::from_bytes(&[7; 32]));
        let pinned = PinnedKeys::new([signer.verifying_key()]);
        let contact = Contact {
            device_id: "dev_1".into(),
            counter: 42,
            request_mac: "mac-42".into(),
            token_sequence: 3,
            server_time: 1_800_000_000,
        };
        let proof = signer.sign_contact(&contact);
        assert_eq!(
            pinned.verify_contact(&proof, "dev_1", (42, "mac-42"), 3),
            Ok(contact)
        );
        // Another device, counter, token, or the same counter of another binding (its MAC).
        for (device, counter, mac, sequence) in [
            ("dev_2", 42, "mac-42", 3),
            ("dev_1", 41, "mac-42", 3),
            ("dev_1", 42, "mac-42", 4),
            ("dev_1", 42, "mac-of-another-binding", 3),
        ] {
            assert_eq!(
                pinned.verify_contact(&proof, device, (counter, mac), sequence),
                Err(ContactError::NotThisRequest)
            );
        }
        assert!(matches!(
            pinned.verify(&proof, "dev_1", 0),
            Err(TokenError::Malformed(_))
        ));
        let stranger = PinnedKeys::new([SigningKey::from_bytes(&[8; 32]).verifying_key()]);
        assert!(matches!(
            stranger.verify_contact(&proof, "dev_1", (42, "mac-42"), 3),
            Err(ContactError::Signature(TokenError::UnknownKey(_)))
        ));
    }
}
