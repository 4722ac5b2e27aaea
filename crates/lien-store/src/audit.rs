//! The audit chain's hash, and its check.
//!
//! Each record's hash covers the previous record's hash and every field of the record, so a
//! borrower or regulator holding the chain can tell whether any record was changed, removed
//! or inserted. Fields are length-prefixed so that no two different records hash the same input.

use sha2::{Digest, Sha256};

use crate::{AuditEntry, AuditRecord};

/// The `prev_hash` of a chain's first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash of the record at `seq` of `chain` after `prev_hash`.
pub fn chain_hash(prev_hash: &[u8], chain: &str, seq: i64, entry: &AuditEntry) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"lien-audit-v1");
    h.update(prev_hash);
    for field in [
        chain.as_bytes(),
        &seq.to_be_bytes(),
        &entry.at_us.to_be_bytes(),
        entry.actor.as_bytes(),
        entry.action.as_bytes(),
        entry.reason.as_bytes(),
        entry.before_json.as_bytes(),
        entry.after_json.as_bytes(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    h.finalize().to_vec()
}

/// Checks a whole chain; returns the sequence number of the first record that does not fit.
pub fn verify_chain(records: &[AuditRecord]) -> Result<(), i64> {
    let mut prev = GENESIS.to_vec();
    for (i, r) in records.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if r.seq != expected_seq
            || r.prev_hash != prev
            || r.hash != chain_hash(&prev, &r.chain, r.seq, &r.entry)
        {
            return Err(expected_seq);
        }
        prev = r.hash.clone();
    }
    Ok(())
}
