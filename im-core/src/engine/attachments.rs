//! Who may fetch an uploaded file, and who may show one in a message. The engine does
//! not store files (a transport's blob store does, and tells the engine who uploaded
//! which through [`Uploads`]), but it knows who may read which message: a file is
//! served to its uploader, and to whoever may read a live message that shows it. A
//! message (a send, an edit) may show a file its sender uploaded, or one already shown
//! to them in that same conversation; anyone else's file goes on only by a forward of
//! the message that shows it. So nobody keeps a file alive, or within reach, by posting
//! its url somewhere else: once every message showing it is recalled, it is served to
//! its uploader only, and removed after the grace period.
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

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::error::{ApiError, ApiResult};
use super::{Engine, Shared};
use crate::model::{Body, ConversationId, UserId};
use crate::protocol::{ErrorBody, ErrorCode};
use crate::storage::StorageError;

/// Who uploaded which file: what a transport that stores uploads tells the engine
/// ([`Engine::set_uploads`]; `im_transport_ws::Gateway` does it for its blob store).
#[async_trait]
pub trait Uploads: Send + Sync + fmt::Debug {
    /// The upload `url` names, if it names one of this server's: who uploaded it, and
    /// for which conversation. `Err` when that cannot be told now (the store failed);
    /// the message is then refused with that error.
    async fn upload(&self, url: &str) -> Result<Option<(UserId, ConversationId)>, ErrorBody>;
}

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
        self.shared
            .download_allowed(user, upload, seen_in)
            .await
            .map_err(ApiError::into_body)
    }

    /// Tells the engine who uploaded which file, so that a message (a send, an edit) may
    /// show only a file its sender may share: their own upload, or one a live message
    /// already shows them in that conversation (anyone else's goes on by a forward of
    /// the message showing it). The first call wins (`false` for a later one). Without
    /// it, the engine cannot tell uploads apart and lets a message name any url.
    pub fn set_uploads(&self, uploads: Arc<dyn Uploads>) -> bool {
        self.shared.uploads.set(uploads).is_ok()
    }
}

impl Shared {
    /// An avatar may not be an upload: an upload is served with the messages that show
    /// it, and removed when none does.
    pub(super) async fn not_an_upload(&self, avatar: &str) -> ApiResult<()> {
        let Some(uploads) = self.uploads.get() else {
            return Ok(());
        };
        match uploads.upload(avatar).await.map_err(ApiError::from_gate)? {
            Some(_) => Err(ApiError::invalid(
                "avatar: an upload is served only with the messages that show it; use an http(s) URL",
            )),
            None => Ok(()),
        }
    }

    /// May `me` show the file `body` names (if any) in a message to `conversation`?
    /// Their own upload, a url that is no upload of this server, or someone else's that
    /// a live message in that conversation already shows them: yes.
    pub(super) async fn may_show(
        &self,
        me: UserId,
        conversation: ConversationId,
        body: &Body,
    ) -> ApiResult<()> {
        let (Some(url), Some(uploads)) = (body.attachment(), self.uploads.get()) else {
            return Ok(());
        };
        let Some((owner, uploaded_for)) = uploads.upload(url).await.map_err(ApiError::from_gate)?
        else {
            return Ok(());
        };
        if owner == me {
            return Ok(());
        }
        let upload = Upload {
            url,
            owner,
            conversation: uploaded_for,
        };
        self.download_allowed(me, &upload, Some(conversation))
            .await
            .map_err(|e| match e.code {
                ErrorCode::NotFound | ErrorCode::Forbidden => ApiError::forbidden(
                    "that file was shared by someone else: forward the message that shows it",
                ),
                _ => e,
            })
    }

    pub(super) async fn download_allowed(
        &self,
        user: UserId,
        upload: &Upload<'_>,
        seen_in: Option<ConversationId>,
    ) -> ApiResult<()> {
        if user == upload.owner {
            return Ok(());
        }
        let conversation = seen_in.unwrap_or(upload.conversation);
        let access = self.access(user, conversation).await?;
        let gone = || ApiError::not_found("no such attachment");
        match self
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
