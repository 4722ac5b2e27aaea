//! The simulator's HTTP clients, all built here.
//!
//! The workspace's reqwest names no rustls provider of its own (`rustls-no-provider`, so that
//! aws-lc-rs is not built beside the ring the attestation code uses), and building a client
//! before a provider is installed panics. Every simulated phone, push channel and fleet builds
//! its client through [`client_builder`], which installs ring first.

/// A reqwest client builder, with ring installed as the process's rustls provider.
pub fn client_builder() -> reqwest::ClientBuilder {
    // `Err` means a provider is installed already (by the server in the same process, say),
    // which is all this asks for. Deprecated in rustls 0.23.48 only for lacking post-quantum
    // key exchange; the server's `tls` module says why ring is kept.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
