//! Where the documents uploaded with appeals are kept, behind [`AttachmentStore`], chosen by
//! the `attachment_store` setting:
//!
//! - [`LocalDir`] (`local`, the default): files under `<data dir>/appeals/`, private like the
//!   rest of the data directory. Right for one server on its embedded SQLite database, and
//!   wrong for several servers on one PostgreSQL: a document stays on the server that received
//!   it, and another server answers 503 for it.
//! - [`Database`] (`database`): rows of the store's `attachments` table, which every server on
//!   the database reads.
//!
//! An appeal row names its document by key (`appeals/<reference>.<ext>`, the row's
//! `file_path`). The document is written first and the row after it, in the device change that
//! opens the appeal; if that change is refused, the opener deletes the document again. A server
//! stopping between the two, or a database failure whose commit may have happened, leaves a
//! document no row may name: unreachable (the key holds a random reference nobody was given),
//! and never a row without its document.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use lien_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;

/// Which [`AttachmentStore`] a server uses (`attachment_store` in the settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentStoreKind {
    /// Files under the data directory: one server only.
    #[default]
    Local,
    /// The database: every server on it.
    Database,
}

/// Why a document could not be stored, read or deleted. For logs: the client hears only that
/// something failed on the server's side.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    /// The data directory failed.
    #[error("the attachment file could not be written or read")]
    Io(#[from] std::io::Error),
    /// The data directory could not be made private.
    #[error("the attachment directory could not be created")]
    Dir(#[source] anyhow::Error),
    /// The database failed.
    #[error("the attachment could not be written or read in the database")]
    Store(#[from] StoreError),
}

/// Keeps appeal documents by key. Documents are whole in memory: at most
/// `appeal_upload_max_bytes` (5 MiB by default) each.
#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Stores `bytes` under `key`, durably before it returns.
    async fn put(&self, key: &str, bytes: &[u8], media_type: &str) -> Result<(), AttachmentError>;
    /// The document under `key` and its media type, or `None` if this store has none.
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, AttachmentError>;
    /// Removes the document under `key`, if there is one.
    async fn delete(&self, key: &str) -> Result<(), AttachmentError>;
}

/// The store the settings choose: `data_dir` for [`LocalDir`], `store` (and `clock`, which
/// dates the rows) for [`Database`].
pub fn from_settings(
    kind: AttachmentStoreKind,
    data_dir: PathBuf,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Arc<dyn AttachmentStore> {
    match kind {
        AttachmentStoreKind::Local => Arc::new(LocalDir { data_dir }),
        AttachmentStoreKind::Database => Arc::new(Database { store, clock }),
    }
}

/// Documents as files under the data directory (the key is the path relative to it), mode
/// 0600 in 0700 directories (see [`crate::private_files`]).
pub struct LocalDir {
    /// The server's data directory.
    pub data_dir: PathBuf,
}

/// The media type of a file Lien stored, from the extension it gave it.
fn media_type_of(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("pdf") => "application/pdf",
        Some("jpg") => "image/jpeg",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

#[async_trait]
impl AttachmentStore for LocalDir {
    // The media type is not written: the key's extension, which Lien chose from the content,
    // gives it back.
    #[tracing::instrument(skip(self, bytes, _media_type), fields(size = bytes.len()))]
    async fn put(&self, key: &str, bytes: &[u8], _media_type: &str) -> Result<(), AttachmentError> {
        use tokio::io::AsyncWriteExt;
        let path = self.data_dir.join(key);
        if let Some(dir) = path.parent() {
            crate::private_files::create_private_dir(dir).map_err(AttachmentError::Dir)?;
        }
        let partial = path.with_extension("part");
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(crate::private_files::FILE_MODE);
        let mut file = options.open(&partial).await?;
        file.write_all(bytes).await?;
        // On disk before the appeal that points at it is acknowledged.
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&partial, &path).await?;
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, AttachmentError> {
        match tokio::fs::read(self.data_dir.join(key)).await {
            Ok(bytes) => Ok(Some((bytes, media_type_of(key).to_string()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(skip(self))]
    async fn delete(&self, key: &str) -> Result<(), AttachmentError> {
        match tokio::fs::remove_file(self.data_dir.join(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Documents as rows of the store's `attachments` table, shared by every server on the
/// database.
pub struct Database {
    /// The server's store.
    pub store: Arc<dyn Store>,
    /// The server's clock, which dates the rows.
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl AttachmentStore for Database {
    #[tracing::instrument(skip(self, bytes), fields(size = bytes.len()))]
    async fn put(&self, key: &str, bytes: &[u8], media_type: &str) -> Result<(), AttachmentError> {
        let created_us = crate::clock::micros(self.clock.now());
        Ok(self
            .store
            .put_attachment(key, bytes, media_type, created_us)
            .await?)
    }

    #[tracing::instrument(skip(self))]
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, AttachmentError> {
        match self.store.attachment(key).await {
            Ok(found) => Ok(Some(found)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(skip(self))]
    async fn delete(&self, key: &str) -> Result<(), AttachmentError> {
        Ok(self.store.delete_attachment(key).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_document_is_private_and_comes_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir {
            data_dir: dir.path().to_path_buf(),
        };
        store
            .put("appeals/AP-1.png", b"\x89PNG bytes", "image/png")
            .await
            .unwrap();
        assert_eq!(
            store.get("appeals/AP-1.png").await.unwrap(),
            Some((b"\x89PNG bytes".to_vec(), "image/png".to_string()))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("appeals/AP-1.png"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, crate::private_files::FILE_MODE);
        }
        store.delete("appeals/AP-1.png").await.unwrap();
        assert_eq!(store.get("appeals/AP-1.png").await.unwrap(), None);
        store.delete("appeals/AP-1.png").await.unwrap();
    }
}
