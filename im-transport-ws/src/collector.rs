//! Removing the uploads nobody needs: a file that no live message names (never sent, or
//! every message showing it recalled or edited to something else) is deleted once it is
//! older than [`WsConfig::upload_grace`](crate::WsConfig::upload_grace). The gateway
//! runs a pass every hour (or every grace period, if shorter) on the runtime it was made
//! in; [`Gateway::collect_uploads`] runs one now.
//!
//! A message sent with a file uploaded longer than the grace period ago may find it
//! gone: the grace period is the longest a client may hold an upload before sending it.

use std::sync::Weak;
use std::time::Duration;

use im_core::model::Timestamp;
use im_core::storage::StorageError;

use crate::attachments::url_of;
use crate::blob::{BlobAge, BlobError};
use crate::{Gateway, Inner};

/// Files looked at per page of [`BlobStore::older_than`](crate::BlobStore::older_than).
const PAGE: usize = 256;

/// The longest wait between two passes.
const MOST_EVERY: Duration = Duration::from_secs(60 * 60);

/// What one pass of [`Gateway::collect_uploads`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Files old enough to be looked at.
    pub checked: u64,
    /// Of those, the files removed: no live message named them.
    pub removed: u64,
}

/// Why a pass of [`Gateway::collect_uploads`] stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// The gateway has no blob store.
    #[error("uploads are not enabled")]
    NoBlobs,
    /// The blob store failed, or cannot list or delete files (`Unsupported`).
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// The storage failed, or cannot find the messages naming a file (`Unsupported`).
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl CollectError {
    /// Whether a store cannot take part at all (another pass would fail the same way).
    fn unsupported(&self) -> bool {
        matches!(
            self,
            CollectError::NoBlobs
                | CollectError::Blobs(BlobError::Unsupported(_))
                | CollectError::Storage(StorageError::Unsupported(_))
        )
    }
}

impl Gateway {
    /// Removes every upload created before `before` that no live message names
    /// ([`MessageStore::attachment_use`](im_core::storage::MessageStore::attachment_use)),
    /// page by page. The gateway calls it on its own with `now - upload_grace`; an app
    /// or an operator's tool may call it too. Files removed before an error stay removed.
    pub async fn collect_uploads(&self, before: Timestamp) -> Result<Collected, CollectError> {
        collect(&self.inner, before).await
    }
}

async fn collect(inner: &Inner, before: Timestamp) -> Result<Collected, CollectError> {
    let blobs = inner.blobs.as_ref().ok_or(CollectError::NoBlobs)?;
    let storage = inner.engine.storage();
    let mut done = Collected::default();
    let mut after: Option<BlobAge> = None;
    loop {
        let page = blobs.older_than(before, after.as_ref(), PAGE).await?;
        for file in &page {
            done.checked += 1;
            let named = storage.attachment_use(&url_of(&file.id), None).await?;
            if named.is_none() && blobs.delete(&file.id).await? {
                done.removed += 1;
                metrics::counter!("im_uploads_removed_total").increment(1);
            }
        }
        if page.len() < PAGE {
            return Ok(done);
        }
        after = page.into_iter().last();
    }
}

/// Starts the passes of a gateway whose config keeps files for `grace`, on the current
/// Tokio runtime. The task holds the gateway only weakly: it ends when the gateway is
/// dropped, or when a store cannot take part.
pub(crate) fn spawn(inner: Weak<Inner>, grace: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("the gateway was made outside a Tokio runtime: unused uploads are kept");
        return;
    };
    let every = grace.clamp(Duration::from_secs(1), MOST_EVERY);
    // The first pass soon after start, so a server restarted often still gets one.
    let first = every.min(Duration::from_secs(60));
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let before = Timestamp::now().0.saturating_sub(millis(grace));
            match collect(&inner, Timestamp(before)).await {
                Ok(done) if done.removed > 0 => {
                    tracing::info!(checked = done.checked, removed = done.removed, "unused uploads removed");
                }
                Ok(_) => {}
                Err(e) if e.unsupported() => {
                    tracing::info!(reason = %e, "unused uploads are kept: a store cannot tell or remove them");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "removing unused uploads failed; retried at the next pass"),
            }
        }
    });
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
