//! Appending to the hash-chained audit log, one chain or many in one go.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use super::backend;
use super::rows::{Value, fetch_in, insert_rows};
use crate::audit::{GENESIS, chain_hash};
use crate::{AuditEntry, StoreError};

/// Appends records to the end of `chain`, inside the caller's transaction.
pub(super) async fn append_audit(
    tx: &mut Transaction<'_, Any>,
    chain: &str,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    append_audits(tx, &[(chain, entries)]).await
}

/// Appends each chain's records to its end, inside the caller's transaction: one read of the
/// chains' last links and one insert, however many chains. A chain may appear only once.
pub(super) async fn append_audits(
    tx: &mut Transaction<'_, Any>,
    appends: &[(&str, &[AuditEntry])],
) -> Result<(), StoreError> {
    let chains: Vec<&str> = appends
        .iter()
        .filter(|(_, entries)| !entries.is_empty())
        .map(|(chain, _)| *chain)
        .collect();
    if chains.is_empty() {
        return Ok(());
    }
    let mut last: HashMap<String, (i64, Vec<u8>)> = HashMap::new();
    let heads = fetch_in(
        tx,
        |list| {
            format!(
                "SELECT a.chain, a.seq, a.hash FROM audit a WHERE a.chain IN ({list}) \
                 AND a.seq = (SELECT MAX(b.seq) FROM audit b WHERE b.chain = a.chain)"
            )
        },
        &chains,
    )
    .await?;
    for row in heads {
        (|| {
            last.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
            Ok::<_, sqlx::Error>(())
        })()
        .map_err(backend)?;
    }
    let mut rows = Vec::new();
    for (chain, entries) in appends {
        let (mut seq, mut prev) = last.remove(*chain).unwrap_or_else(|| (0, GENESIS.to_vec()));
        for entry in entries.iter() {
            seq += 1;
            let hash = chain_hash(&prev, chain, seq, entry);
            rows.push(vec![
                Value::from(*chain),
                Value::from(seq),
                Value::from(entry.at_us),
                Value::from(&entry.actor),
                Value::from(&entry.action),
                Value::from(&entry.reason),
                Value::from(&entry.before_json),
                Value::from(&entry.after_json),
                Value::from(&prev),
                Value::from(&hash),
            ]);
            prev = hash;
        }
    }
    insert_rows(
        tx,
        "audit (chain, seq, at_us, actor, action, reason, before_json, after_json, prev_hash, hash)",
        rows,
        "the audit chain moved under this write; retry",
    )
    .await
}
