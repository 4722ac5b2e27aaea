//! The agent on injected time against a fake server that signs real tokens, on a platform with
//! simulated secure hardware. Each test checks what the borrower sees.
//!
//! One test binary, with a module per concern: the rig in `common` is compiled once, and a
//! helper any module uses is not dead code.

mod common;

mod enforcement;
mod protected_storage;
