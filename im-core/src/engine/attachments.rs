//! Who may fetch an uploaded file. The engine does not store files (a transport's blob
//! store does), but it knows who may read which message: a file is served to its
//! uploader, and to whoever may read a live message that shows it.
//!
//! ```
//! # tokio_test_block_on(async {
//! use im_core::engine::Upload;
//! use im_core::model::{ConversationId, UserId};
//! use im_core::protocol::ErrorCode;
//! let engine = im_core::Engine::builder().start().await.unwrap();
//! let (alice, bob) = (UserId(1), UserId(2));
//! let upload = Upload {
//!     url: "/v1/attachments/0123456789abcdef0123456789abcdef",
//!     owner: alice,
//!     conversation: ConversationId::direct(alice, bob),
//! };
//! // Uploaded, not sent yet: its uploader may fetch it, the other user may not.
//! assert!(engine.check_download(alice, &upload, None).await.is_ok());
//! let refused = engine.check_download(bob, &upload, None).await.unwrap_err();
//! assert_eq!(refused.code, ErrorCode::NotFound);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use super::Engine;
use super::error::{ApiError, ApiResult};
use crate::model::{ConversationId, UserId};
use crate::protocol::ErrorBody;
use crate::storage::StorageError;

/// An uploaded file, as [`Engine::check_download`] judges a request for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload<'a> {
    /// The url messages name it by.
    pub url: &'a str,
    /// Who uploaded it.
    pub owner: UserId,
    /// The conversation it was uploaded for.
    pub conversation: ConversationId,
}

impl Engine {
    /// May `user` fetch `upload`, shown to them in `seen_in` (the upload's own
    /// conversation when `None`; a forwarded file is seen in another)? Yes for its
    /// uploader; for anyone else, when that conversation is theirs and holds a live
    /// message naming the url that they may read (sent after they joined, not recalled).
    ///
    /// Errors: `forbidden` / `not_found` for a conversation that is not theirs,
    /// `not_found` when no such message is there. A storage that cannot find the
    /// messages naming a file (`MessageStore::attachment_use` unsupported) falls back to
    /// the members of the upload's own conversation.
    pub async fn check_download(
        &self,
        user: UserId,
        upload: &Upload<'_>,
        seen_in: Option<ConversationId>,
    ) -> Result<(), ErrorBody> {
        self.download_allowed(user, upload, seen_in)
            .await
            .map_err(ApiError::into_body)
    }

    async fn download_allowed(
        &self,
        user: UserId,
        upload: &Upload<'_>,
        seen_in: Option<ConversationId>,
    ) -> ApiResult<()> {
        if user == upload.owner {
            return Ok(());
        }
        let conversation = seen_in.unwrap_or(upload.conversation);
        let access = self.shared.access(user, conversation).await?;
        let gone = || ApiError::not_found("no such attachment");
        match self
            .shared
            .storage
            .attachment_use(upload.url, Some(conversation))
            .await
        {
            Ok(Some((_, seq))) if seq > access.floor() => Ok(()),
            Ok(_) => Err(gone()),
            Err(StorageError::Unsupported(_)) if conversation == upload.conversation => Ok(()),
            Err(StorageError::Unsupported(_)) => Err(gone()),
            Err(e) => Err(e.into()),
        }
    }
}
