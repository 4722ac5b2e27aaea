//! Signing as Standard Webhooks specifies it: the signed content is `{webhook-id}.{webhook-timestamp}.{body}`,
//! signed with HMAC-SHA256 under the secret's bytes (the base64 after `whsec_`), and sent as
//! `v1,` and the base64 of the MAC; several signatures (during a rotation) are separated by spaces.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::ApiError;

/// The prefix of a secret as shown to the financier.
const PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and the base64 of 32 random bytes (within the 24 to 64 bytes the
/// specification asks for).
pub fn new_secret() -> Result<String, ApiError> {
    let bytes = crate::secrets::random_bytes().map_err(ApiError::Internal)?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `v1,` signature of one message under `secret` (`whsec_` and base64). `None` for a
/// secret that is not one of ours (never stored: secrets are made by [`new_secret`]).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and its reference libraries' tests).
    #[test]
    fn the_specifications_example_signs_as_published() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }
}
