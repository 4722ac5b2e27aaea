//! The wire formats against their test vectors in `vectors/`, the files a phone-side
//! implementation in another language checks itself against too.
//!
//! One test binary, with a module per format.

// Attestation chains are minted for the tests, which needs the `attestation-mint` feature;
// `cargo test --workspace` has it, as the server turns it on.
#[cfg(feature = "attestation-mint")]
mod attestation;
mod hello;
mod ocra;
mod token;
