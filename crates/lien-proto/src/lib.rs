//! Lien wire formats.
pub mod ocra;
