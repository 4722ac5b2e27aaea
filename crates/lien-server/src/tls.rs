//! The process's TLS cryptography: rustls on ring.
//!
//! reqwest's rustls support names no provider of its own with the feature Lien uses
//! (`rustls-no-provider`, chosen so as not to build aws-lc-rs beside the ring the attestation
//! code already uses), and a reqwest client built before a provider is installed panics. So
//! the provider is installed once per process, before the first client: by
//! [`crate::app::AppState::new`] (the webhook client), and by anything else that builds a
//! client first (the `lien` command, tests that start one before a server).

/// Makes ring the process's rustls provider. Safe to call any number of times, from any
/// thread; a provider installed before (by this or another caller) is kept.
pub fn install_crypto_provider() {
    // rustls 0.23.48 marks ring's provider deprecated because ring has no post-quantum key
    // exchange (X25519MLKEM768); aws-lc-rs has. Webhooks are short-lived notices whose
    // receivers commonly lack it too, so ring's classical X25519 is kept for now; moving to
    // aws-lc-rs is a change of this function and of reqwest's feature.
    // `Err` means a provider is installed already, which is all this asks for.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}
