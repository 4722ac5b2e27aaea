//! Google's attestation status list: the serial numbers of attestation certificates that were
//! revoked or suspended, leaked factory keys among them. With a leaked key anyone can attest any
//! IMEI and serial, so a hello whose chain holds a listed certificate is refused.
//!
//! The list is read from the `attestation_status` setting, an `https://` URL (Google publishes
//! it at <https://android.googleapis.com/attestation/status>) or a file, when the server starts
//! and then every [`REFRESH_EVERY`]. A read that fails keeps the last list in force and is
//! logged. The last list read is kept in the data directory (`attestation-status.json`) and put
//! in force at start before the source is read, so a restart while Google cannot be reached does
//! not lift the check. Only a server that never read a list refuses no chain for revocation
//! (every refusal of a hello for another reason still holds): phones being sold must still bind
//! when Google cannot be reached. The metric
//! `lien_attestation_status_read_timestamp_seconds` says when the list in force was read.
//!
//! The format is Google's: `{"entries": {"<serial, lower-case hex>": {"status": "REVOKED",
//! ...}, ...}}`; every listed serial is refused, whatever its status (`REVOKED` or
//! `SUSPENDED`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::app::{AppState, until_stopped};
use crate::clock::micros;

/// How often the list is read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);

/// The largest list read: Google's is a few hundred kilobytes.
pub const MAX_LIST_BYTES: usize = 32 * 1024 * 1024;

/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// The last list read, in the data directory.
pub const CACHE_FILE: &str = "attestation-status.json";

/// The list in force, and where it is read from.
pub struct AttestationStatus {
    source: Option<String>,
    /// Where the last list read is kept.
    cache: PathBuf,
    /// The revoked serials and when they were read (Unix microseconds); `None` until a first
    /// list has been read.
    list: RwLock<Option<(Arc<HashSet<String>>, i64)>>,
}

#[derive(Deserialize)]
struct StatusFile {
    entries: HashMap<String, serde_json::Value>,
}

/// The serials a status list names, lower-cased.
pub fn parse(bytes: &[u8]) -> anyhow::Result<HashSet<String>> {
    let file: StatusFile =
        serde_json::from_slice(bytes).context("not an attestation status list")?;
    Ok(file
        .entries
        .into_keys()
        .map(|serial| serial.to_ascii_lowercase())
        .collect())
}

impl AttestationStatus {
    /// The list read from `source` (the `attestation_status` setting; none when unset), the
    /// last one kept in `data_dir`.
    pub fn new(source: Option<String>, data_dir: &Path) -> AttestationStatus {
        AttestationStatus {
            source: source.filter(|s| !s.trim().is_empty()),
            cache: data_dir.join(CACHE_FILE),
            list: RwLock::new(None),
        }
    }

    /// When the kept list was written (Unix microseconds), if one was kept.
    async fn kept_at_us(&self) -> Option<i64> {
        let written = tokio::fs::metadata(&self.cache)
            .await
            .ok()?
            .modified()
            .ok()?;
        let since = written.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(since.as_micros()).ok()
    }

    /// Puts the list kept by an earlier run in force, read at `read_us`, unless a list is in
    /// force already; returns how many serials it names, `None` when none was kept.
    pub async fn load_kept(&self, read_us: i64) -> Option<usize> {
        let bytes = tokio::fs::read(&self.cache).await.ok()?;
        let revoked = match parse(&bytes) {
            Ok(revoked) => revoked,
            Err(err) => {
                let file = self.cache.display();
                tracing::warn!(error = format!("{err:#}"), %file, "the kept attestation status list is unreadable");
                return None;
            }
        };
        let count = revoked.len();
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        if list.is_none() {
            *list = Some((Arc::new(revoked), read_us));
        }
        Some(count)
    }

    /// Whether a list is configured at all.
    pub fn configured(&self) -> bool {
        self.source.is_some()
    }

    /// The first of `serials` the list in force names, if any.
    pub fn revoked<'a>(&self, serials: &'a [String]) -> Option<&'a str> {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        let (revoked, _) = list.as_ref()?;
        serials
            .iter()
            .find(|serial| revoked.contains(serial.as_str()))
            .map(String::as_str)
    }

    /// When the list in force was read (Unix microseconds), if one was.
    pub fn read_at_us(&self) -> Option<i64> {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        list.as_ref().map(|(_, at)| *at)
    }

    /// Reads the list again from its source at `now_us`; on success it is the one in force.
    /// Returns how many serials it names.
    pub async fn refresh(&self, now_us: i64) -> anyhow::Result<usize> {
        let Some(source) = &self.source else {
            bail!("no attestation_status is set");
        };
        let bytes = if source.starts_with("https://") || source.starts_with("http://") {
            fetch(source).await?
        } else {
            read_file(source).await?
        };
        let revoked = parse(&bytes).with_context(|| format!("reading {source}"))?;
        let count = revoked.len();
        // Written whole and synced, then renamed: a crash or a power cut leaves the old list
        // or the new one.
        let partial = self
            .cache
            .with_extension(format!("json.{}.partial", std::process::id()));
        let kept = async {
            let mut file = tokio::fs::File::create(&partial).await?;
            file.write_all(&bytes).await?;
            file.sync_all().await?;
            tokio::fs::rename(&partial, &self.cache).await
        };
        if let Err(err) = kept.await {
            tracing::warn!(error = %err, "the attestation status list could not be kept");
        }
        *self.list.write().unwrap_or_else(|e| e.into_inner()) = Some((Arc::new(revoked), now_us));
        Ok(count)
    }
}

/// Puts the list kept by the last run in force, before the server answers its first hello;
/// does nothing when no list is set.
pub async fn load_kept_list(state: &AppState) {
    let status = &state.attestation_status;
    if !status.configured() {
        return;
    }
    // The kept list is as old as its file, which the metric must not hide.
    let kept_at_us = status.kept_at_us().await;
    let kept_at_us = kept_at_us.unwrap_or_else(|| micros(state.clock.now()));
    if let Some(count) = status.load_kept(kept_at_us).await {
        tracing::info!(
            revoked = count,
            "attestation status list kept from the last run"
        );
    }
}

/// Reads the list now and then every [`REFRESH_EVERY`] until the server stops; does nothing
/// when no list is set.
pub async fn run(state: AppState, mut stopping: watch::Receiver<bool>) {
    let status = &state.attestation_status;
    if !status.configured() {
        return;
    }
    loop {
        match status.refresh(micros(state.clock.now())).await {
            Ok(count) => tracing::info!(revoked = count, "attestation status list read"),
            Err(err) if status.read_at_us().is_some() => tracing::warn!(
                error = format!("{err:#}"),
                "attestation status list not read; the last one read stays in force"
            ),
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "attestation status list not read, and none is in force: no hello is refused for revocation"
            ),
        }
        if let Some(read_us) = status.read_at_us() {
            state
                .metrics
                .attestation_status_read
                .set(read_us / 1_000_000);
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH_EVERY) => {}
            _ = until_stopped(&mut stopping) => break,
        }
    }
}

async fn read_file(path: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = tokio::fs::read(path)
        .await
        .with_context(|| format!("reading attestation_status file {path}"))?;
    if bytes.len() > MAX_LIST_BYTES {
        bail!("attestation_status file {path} is over {MAX_LIST_BYTES} bytes");
    }
    Ok(bytes)
}

async fn fetch(url: &str) -> anyhow::Result<Vec<u8>> {
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .tls_version_min(reqwest::tls::Version::TLS_1_2)
        .build()
        .context("building the attestation status client")?;
    let mut response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("fetching {url}"))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading {url}"))?
    {
        if bytes.len() + chunk.len() > MAX_LIST_BYTES {
            bail!("{url} sent more than {MAX_LIST_BYTES} bytes");
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_serial_is_read_in_lower_case() {
        let list = parse(
            br#"{"entries": {
                "2c8cdddfd5e03bfc": {"status": "REVOKED", "reason": "KEY_COMPROMISE"},
                "C35747A084470C3135AEEFE2B8D40CD6": {"status": "SUSPENDED"}
            }}"#,
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.contains("c35747a084470c3135aeefe2b8d40cd6"));
        assert!(
            parse(b"{}").is_err(),
            "a file without entries is not a list"
        );
        assert!(parse(b"<html>").is_err());
    }

    /// Serves `body` once, as Google's server would, and returns its URL.
    async fn serve_once(status: &'static str, body: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/attestation/status",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await.unwrap();
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        url
    }

    #[tokio::test]
    async fn a_fetched_list_is_put_in_force_kept_and_outlives_a_failed_fetch_and_a_restart() {
        let body = r#"{"entries": {"2c8cdddfd5e03bfc": {"status": "REVOKED"}}}"#.to_string();
        let dir = tempfile::tempdir().unwrap();
        let status = AttestationStatus::new(Some(serve_once("200 OK", body).await), dir.path());
        let chain = vec!["1".to_string(), "2c8cdddfd5e03bfc".to_string()];
        assert_eq!(
            status.revoked(&chain),
            None,
            "nothing is refused before a list is read"
        );
        assert_eq!(status.refresh(7).await.unwrap(), 1);
        assert_eq!(status.revoked(&chain), Some("2c8cdddfd5e03bfc"));
        assert_eq!(status.read_at_us(), Some(7));

        // After a restart, with the source failing, the list kept from the last run holds.
        let restarted = AttestationStatus::new(
            Some(serve_once("503 Service Unavailable", String::new()).await),
            dir.path(),
        );
        assert_eq!(restarted.load_kept(9).await, Some(1));
        let err = restarted.refresh(10).await.unwrap_err();
        assert!(format!("{err:#}").contains("503"), "{err:#}");
        assert_eq!(restarted.revoked(&chain), Some("2c8cdddfd5e03bfc"));
        assert_eq!(restarted.read_at_us(), Some(9));
    }
}
