//! Where uploaded files live: the [`BlobStore`] trait and [`LocalDirBlobs`], a directory
//! on the server's disk.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use im_core::model::{ConversationId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// What is known of a stored file besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// The file's id: 32 lowercase hex characters, unguessable.
    pub id: String,
    /// Its MIME type, judged from its content.
    pub mime: String,
    /// Its size in bytes.
    pub size: u64,
    /// Who uploaded it.
    pub owner: UserId,
    /// The conversation it was shared in; only that conversation's members may fetch it.
    pub conversation: ConversationId,
    /// When it was uploaded.
    pub created_at: Timestamp,
    /// Width in pixels, for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels, for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// A file's bytes as they are read, chunk by chunk.
pub type BlobBody = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Sync>>;

/// A blob store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The store could not be read or written.
    #[error("blob store i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Stored metadata could not be read back.
    #[error("blob metadata is corrupt: {0}")]
    Corrupt(String),
}

/// Stores uploaded files.
///
/// # Contract
/// - `put` stores the bytes and the metadata under `meta.id` durably before it returns;
///   `meta` and `read` of that id afterwards return them. Ids are made by the caller and
///   are unique.
/// - `meta` and `read` of an id never stored, or of a malformed id, return `Ok(None)`;
///   they must not reach outside the store (ids come from URLs).
/// - A `put` that fails leaves nothing `meta` returns.
/// - `meta` is cheap: the gateway checks access with it before the bytes are read.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores a file.
    async fn put(&self, meta: &BlobMeta, bytes: Bytes) -> Result<(), BlobError>;
    /// A file's metadata.
    async fn meta(&self, id: &str) -> Result<Option<BlobMeta>, BlobError>;
    /// A file's bytes, streamed (a download never holds a whole file in memory).
    async fn read(&self, id: &str) -> Result<Option<BlobBody>, BlobError>;
}

/// A [`BlobStore`] in a local directory: `<id>` holds the bytes, `<id>.json` the
/// metadata. Each is written to a temporary name, synced, then renamed, so a crash never
/// leaves a half file under a real id.
#[derive(Debug, Clone)]
pub struct LocalDirBlobs {
    dir: PathBuf,
}

impl LocalDirBlobs {
    /// Uses `dir`, creating it if needed.
    pub async fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir).await?;
        Ok(LocalDirBlobs { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Whether `id` has the form of ids this crate makes, so that it is safe in a path.
pub(crate) fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fresh random id.
pub(crate) fn new_id() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

async fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = tokio::fs::File::create(&tmp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&tmp, dir.join(name)).await
}

#[async_trait]
impl BlobStore for LocalDirBlobs {
    async fn put(&self, meta: &BlobMeta, bytes: Bytes) -> Result<(), BlobError> {
        if !valid_id(&meta.id) {
            return Err(BlobError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "malformed blob id",
            )));
        }
        let json = serde_json::to_vec(meta).map_err(|e| BlobError::Corrupt(e.to_string()))?;
        // The bytes first: the metadata is what makes the file visible to `get`.
        write_atomically(&self.dir, &meta.id, &bytes).await?;
        write_atomically(&self.dir, &format!("{}.json", meta.id), &json).await?;
        Ok(())
    }

    async fn meta(&self, id: &str) -> Result<Option<BlobMeta>, BlobError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let json = match tokio::fs::read(self.dir.join(format!("{id}.json"))).await {
            Ok(json) => json,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| BlobError::Corrupt(e.to_string()))
    }

    async fn read(&self, id: &str) -> Result<Option<BlobBody>, BlobError> {
        if !valid_id(id) {
            return Ok(None);
        }
        match tokio::fs::File::open(self.dir.join(id)).await {
            Ok(file) => Ok(Some(Box::pin(tokio_util::io::ReaderStream::new(file)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
