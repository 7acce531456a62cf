//! Where uploaded files live: the [`BlobStore`] trait and [`LocalDirBlobs`], a directory
//! on the server's disk.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

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

/// A stored file's place in the order [`BlobStore::older_than`] lists files in: by
/// creation time, then by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobAge {
    /// When it was uploaded.
    pub created_at: Timestamp,
    /// The file's id.
    pub id: String,
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
    /// The file would take its owner past their quota ([`BlobStore::put_within`]).
    #[error("upload quota reached: {used} of {limit} bytes in use")]
    QuotaExceeded {
        /// Bytes the owner's files take now.
        used: u64,
        /// The quota.
        limit: u64,
    },
    /// The store cannot do this (an adapter that predates the method).
    #[error("the blob store cannot {0}")]
    Unsupported(&'static str),
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
/// - `delete` removes a file (`true`), after which it is absent; `false` if there was
///   none (or the id is malformed).
/// - `usage` is the bytes an owner's stored files take; `put_within` stores a file only
///   if its owner's usage stays within the limit, checked and counted in one step, so
///   that two uploads at once cannot pass it together (`QuotaExceeded` otherwise).
/// - `older_than` lists the files created before a time, in [`BlobAge`] order (oldest
///   first, then by id), starting after a given file: page after page, each file once.
///
/// The suite `blob_conformance!` (feature `testkit`) checks each clause.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores a file.
    async fn put(&self, meta: &BlobMeta, bytes: Bytes) -> Result<(), BlobError>;
    /// A file's metadata.
    async fn meta(&self, id: &str) -> Result<Option<BlobMeta>, BlobError>;
    /// A file's bytes, streamed (a download never holds a whole file in memory).
    async fn read(&self, id: &str) -> Result<Option<BlobBody>, BlobError>;
    /// Removes a file. The default cannot.
    async fn delete(&self, id: &str) -> Result<bool, BlobError> {
        let _ = id;
        Err(BlobError::Unsupported("delete files"))
    }
    /// The bytes an owner's files take. The default cannot tell.
    async fn usage(&self, owner: UserId) -> Result<u64, BlobError> {
        let _ = owner;
        Err(BlobError::Unsupported("count usage"))
    }
    /// Stores a file if its owner's files, with it, take at most `limit` bytes. The
    /// default checks [`usage`](Self::usage) then calls [`put`](Self::put), which two
    /// uploads at once can both pass: a store should do both in one step. A store that
    /// cannot count usage stores the file.
    async fn put_within(&self, meta: &BlobMeta, bytes: Bytes, limit: u64) -> Result<(), BlobError> {
        match self.usage(meta.owner).await {
            Ok(used) if used.saturating_add(meta.size) > limit => {
                return Err(BlobError::QuotaExceeded { used, limit });
            }
            Ok(_) | Err(BlobError::Unsupported(_)) => {}
            Err(e) => return Err(e),
        }
        self.put(meta, bytes).await
    }
    /// Files created before `before`, in [`BlobAge`] order, after `after` (the last of
    /// the previous page), at most `limit`. The default cannot list.
    async fn older_than(
        &self,
        before: Timestamp,
        after: Option<&BlobAge>,
        limit: usize,
    ) -> Result<Vec<BlobAge>, BlobError> {
        let _ = (before, after, limit);
        Err(BlobError::Unsupported("list files"))
    }
}

/// A [`BlobStore`] in a local directory: `<id>` holds the bytes, `<id>.json` the
/// metadata. Each is written to a temporary name, synced, then renamed, so a crash never
/// leaves a half file under a real id.
///
/// Usage per owner and the files' ages are kept in memory, read from the metadata files
/// when the store opens: the directory must belong to this process (several processes
/// sharing one directory would each count only their own uploads).
#[derive(Debug, Clone)]
pub struct LocalDirBlobs {
    dir: PathBuf,
    index: Arc<Mutex<Index>>,
}

/// What the store keeps in memory of its files.
#[derive(Debug, Default)]
struct Index {
    /// Bytes per owner, including uploads being written under [`BlobStore::put_within`].
    usage: HashMap<UserId, u64>,
    /// Each stored file's owner, size and creation time.
    files: HashMap<String, (UserId, u64, Timestamp)>,
    /// The stored files in [`BlobAge`] order.
    by_age: BTreeSet<BlobAge>,
}

impl Index {
    fn add(&mut self, meta: &BlobMeta) {
        self.files
            .insert(meta.id.clone(), (meta.owner, meta.size, meta.created_at));
        self.by_age.insert(BlobAge {
            created_at: meta.created_at,
            id: meta.id.clone(),
        });
    }

    fn release(&mut self, owner: UserId, size: u64) {
        if let Some(used) = self.usage.get_mut(&owner) {
            *used = used.saturating_sub(size);
            if *used == 0 {
                self.usage.remove(&owner);
            }
        }
    }
}

impl LocalDirBlobs {
    /// Uses `dir`, creating it if needed, and reads what its files take.
    pub async fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir).await?;
        let mut index = Index::default();
        let mut entries = tokio::fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            let json = tokio::fs::read(entry.path()).await?;
            match serde_json::from_slice::<BlobMeta>(&json) {
                Ok(meta) => {
                    *index.usage.entry(meta.owner).or_default() += meta.size;
                    index.add(&meta);
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), error = %e, "unreadable upload metadata skipped")
                }
            }
        }
        Ok(LocalDirBlobs {
            dir,
            index: Arc::new(Mutex::new(index)),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the bytes, then the metadata that makes them visible.
    async fn write(&self, meta: &BlobMeta, bytes: &[u8]) -> Result<(), BlobError> {
        if !valid_id(&meta.id) {
            return Err(BlobError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "malformed blob id",
            )));
        }
        let json = serde_json::to_vec(meta).map_err(|e| BlobError::Corrupt(e.to_string()))?;
        write_atomically(&self.dir, &meta.id, bytes).await?;
        write_atomically(&self.dir, &format!("{}.json", meta.id), &json).await?;
        Ok(())
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
        self.write(meta, &bytes).await?;
        let mut index = self.index();
        *index.usage.entry(meta.owner).or_default() += meta.size;
        index.add(meta);
        Ok(())
    }

    async fn put_within(&self, meta: &BlobMeta, bytes: Bytes, limit: u64) -> Result<(), BlobError> {
        // Checked and counted under one lock, before the (slow) write: a second upload
        // at once sees this one's bytes already.
        {
            let mut index = self.index();
            let used = index.usage.get(&meta.owner).copied().unwrap_or(0);
            if used.saturating_add(meta.size) > limit {
                return Err(BlobError::QuotaExceeded { used, limit });
            }
            *index.usage.entry(meta.owner).or_default() += meta.size;
        }
        match self.write(meta, &bytes).await {
            Ok(()) => {
                self.index().add(meta);
                Ok(())
            }
            Err(e) => {
                self.index().release(meta.owner, meta.size);
                Err(e)
            }
        }
    }

    async fn delete(&self, id: &str) -> Result<bool, BlobError> {
        if !valid_id(id) {
            return Ok(false);
        }
        // The metadata first: without it the file is absent, whatever remains.
        match tokio::fs::remove_file(self.dir.join(format!("{id}.json"))).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        match tokio::fs::remove_file(self.dir.join(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut index = self.index();
        if let Some((owner, size, created_at)) = index.files.remove(id) {
            index.release(owner, size);
            index.by_age.remove(&BlobAge {
                created_at,
                id: id.to_owned(),
            });
        }
        Ok(true)
    }

    async fn usage(&self, owner: UserId) -> Result<u64, BlobError> {
        Ok(self.index().usage.get(&owner).copied().unwrap_or(0))
    }

    async fn older_than(
        &self,
        before: Timestamp,
        after: Option<&BlobAge>,
        limit: usize,
    ) -> Result<Vec<BlobAge>, BlobError> {
        use std::ops::Bound;
        let index = self.index();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(index
            .by_age
            .range((from, Bound::Unbounded))
            .take_while(|age| age.created_at < before)
            .take(limit)
            .cloned()
            .collect())
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
