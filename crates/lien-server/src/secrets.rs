//! The server's secrets: its token signing key, the key its device credentials, offline-unlock
//! keys and hello challenges are derived from, and the attestation roots it trusts. Generated on
//! first start into the data directory with mode 0600, read on every later start, and never
//! logged.
//!
//! Until a deployment names its phone makers' attestation roots (`attestation_roots` in the
//! settings), the server trusts a development root it creates in the data directory
//! (`dev-attestation-root.pem`, its name saying it is not for production), from which `lien
//! phone` and the tests mint simulated phones' factory identities. Once real roots are named,
//! only they are trusted, and a file holding the development root is refused.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use hmac::{Hmac, KeyInit, Mac};
use lien_proto::attestation::{DevelopmentRoot, TrustedRoots};
use sha2::Sha256;

use crate::clock::Clock;

/// The development attestation root's file in the data directory.
pub const DEV_ATTESTATION_ROOT_FILE: &str = "dev-attestation-root.pem";

/// The server's secrets.
pub struct Secrets {
    /// Signs status tokens.
    pub signing_key: SigningKey,
    /// Derives per-device secrets, so that none has to be stored.
    device_root: [u8; 32],
    /// The roots a hello's attestation chain must lead to.
    pub attestation_roots: TrustedRoots,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// Loads the secrets from `dir`, creating any that are missing.
    pub fn load_or_create(dir: &Path) -> Result<Secrets> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let signing = key_file(&dir.join("token-signing.key"))?;
        let device_root = key_file(&dir.join("device-root.key"))?;
        let development = development_root(&dir.join(DEV_ATTESTATION_ROOT_FILE))?;
        Ok(Secrets {
            signing_key: SigningKey::from_bytes(&signing),
            device_root,
            attestation_roots: development.trusted_roots(),
        })
    }

    /// Trusts only the attestation roots in `files` (PEM certificates): what a deployment
    /// does. A file holding the development root is refused, so that a development set-up
    /// cannot be carried into production by mistake.
    pub fn trust_only(&mut self, files: &[std::path::PathBuf]) -> Result<()> {
        let mut pem = String::new();
        for file in files {
            let text = fs::read_to_string(file)
                .with_context(|| format!("reading attestation root {}", file.display()))?;
            if text.contains("PRIVATE KEY") || TrustedRoots::pem_holds_development_root(&text) {
                bail!(
                    "{} holds a development attestation root (or a private key): name your phone \
                     makers' root certificates instead",
                    file.display()
                );
            }
            pem.push_str(&text);
            pem.push('\n');
        }
        self.attestation_roots = TrustedRoots::from_pem(&pem)
            .with_context(|| format!("reading the attestation roots {files:?}"))?;
        Ok(())
    }

    /// The key hello challenges are authenticated with.
    pub fn hello_challenge_key(&self) -> [u8; 32] {
        self.derive(b"lien-hello-challenge-v1", "", 0)
    }

    /// The device credential of `device_id` at binding `generation`. A new hello raises the
    /// generation, which revokes the credential the phone had before its reset.
    pub fn device_credential(&self, device_id: &str, generation: i64) -> [u8; 32] {
        self.derive(b"lien-device-credential-v1", device_id, generation)
    }

    /// The OCRA key for offline unlock codes of `device_id` at binding `generation`.
    pub fn ocra_key(&self, device_id: &str, generation: i64) -> [u8; 32] {
        self.derive(b"lien-ocra-key-v1", device_id, generation)
    }

    /// The key a financier's payers' phone numbers are hashed under (HMAC-SHA256), so that
    /// none is stored in clear and the hashes of one financier say nothing to another.
    pub fn payer_key(&self, financier_id: &str) -> [u8; 32] {
        self.derive(b"lien-payer-v1", financier_id, 0)
    }

    /// The signing secret of a payment provider's callbacks (Standard Webhooks), derived so that
    /// none is stored: the provider's id and its random salt (a new salt is a new secret).
    pub fn webhook_secret(&self, provider_id: &str, salt: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.device_root).expect("any key length");
        mac.update(b"lien-webhook-secret-v1");
        mac.update(&(provider_id.len() as u64).to_be_bytes());
        mac.update(provider_id.as_bytes());
        mac.update(salt);
        mac.finalize().into_bytes().into()
    }

    fn derive(&self, label: &[u8], device_id: &str, generation: i64) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.device_root).expect("any key length");
        mac.update(label);
        mac.update(&(device_id.len() as u64).to_be_bytes());
        mac.update(device_id.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Reads the development attestation root, or creates it (mode 0600: it holds the key that
/// simulated phones' identities are minted with).
fn development_root(path: &Path) -> Result<DevelopmentRoot> {
    match fs::read_to_string(path) {
        Ok(text) => {
            DevelopmentRoot::from_pem(&text).with_context(|| format!("reading {}", path.display()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let now = crate::clock::SystemClock.now().as_second();
            // Dated ten years back, so that servers and tests whose clocks are set in the past
            // still take it; it is good for twenty years from then.
            let root = DevelopmentRoot::generate(now - 10 * 365 * 86_400)
                .context("creating an attestation root")?;
            write_private(path, root.to_pem().as_bytes())?;
            tracing::info!(
                path = %path.display(),
                "created a development attestation root: simulated phones only; name real roots with attestation_roots"
            );
            Ok(root)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// Creates `path` with `bytes` and mode 0600; fails if it exists.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Reads a 32-byte key file, or creates it with fresh random bytes and mode 0600.
fn key_file(path: &Path) -> Result<[u8; 32]> {
    match fs::read(path) {
        Ok(bytes) => {
            let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                bail!("{} is not a 32-byte key file", path.display());
            };
            Ok(key)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = random_bytes()?;
            write_private(path, &key)?;
            tracing::info!(path = %path.display(), "generated a new key");
            Ok(key)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// 32 bytes from the operating system's random source.
pub fn random_bytes() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_development_root_is_never_trusted_as_a_real_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut secrets = Secrets::load_or_create(dir.path()).unwrap();
        let root = DevelopmentRoot::generate(1_767_000_000).unwrap();
        let certificate_only = dir.path().join("roots.pem");
        fs::write(&certificate_only, root.certificate_pem()).unwrap();
        let with_key = dir.path().join("dev.pem");
        fs::write(&with_key, root.to_pem()).unwrap();
        for file in [certificate_only, with_key] {
            let err = secrets.trust_only(&[file]).unwrap_err();
            assert!(
                err.to_string().contains("development attestation root"),
                "{err}"
            );
        }
    }

    #[test]
    fn keys_are_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Secrets::load_or_create(dir.path()).unwrap();
        let second = Secrets::load_or_create(dir.path()).unwrap();
        assert_eq!(first.signing_key.to_bytes(), second.signing_key.to_bytes());
        assert_eq!(
            first.device_credential("d", 1),
            second.device_credential("d", 1)
        );
        assert_ne!(
            first.device_credential("d", 1),
            first.device_credential("d", 2)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("token-signing.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
