//! Uploads and downloads: `POST /v1/attachments` (multipart: a `conversation` field and
//! a `file`) and `GET /v1/attachments/{id}[?conversation=…]`. A file is uploaded for a
//! conversation; its uploader may fetch it, and so may whoever may read a live message
//! showing it, in that conversation or (named by `conversation`) one it was forwarded
//! to ([`Engine::check_download`](im_core::Engine::check_download)): once recalled, it
//! is served to nobody else. The gateway tells the engine who uploaded which file
//! ([`Engine::set_uploads`](im_core::Engine::set_uploads)), so that a message shows
//! only a file its sender may share there. Its type is sniffed from its bytes, never taken from the
//! client, and it is served with `nosniff` and a sandboxing CSP so that no upload can
//! run as a page of this origin.

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use im_core::model::{ConversationId, Timestamp, UserId};
use im_core::protocol::{ErrorBody, ErrorCode};
use serde::Serialize;
use warp::Reply as _;
use warp::http::StatusCode;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::reply::Response;

use crate::Gateway;
use crate::blob::{self, BlobMeta};
use crate::http::{self, Body, error, error_of};
use im_core::engine::{Identity, Upload, Uploads};

/// The url messages name an upload by.
pub(crate) fn url_of(id: &str) -> String {
    format!("{PREFIX}{id}")
}

/// What an upload's url starts with.
const PREFIX: &str = "/v1/attachments/";

/// The engine's view of the uploads in a blob store: who uploaded the file a url names
/// ([`Engine::set_uploads`](im_core::Engine::set_uploads), made by [`Gateway::new`]).
#[derive(Debug)]
pub(crate) struct BlobUploads(pub(crate) std::sync::Arc<dyn crate::BlobStore>);

#[async_trait::async_trait]
impl Uploads for BlobUploads {
    async fn upload(&self, url: &str) -> Result<Option<(UserId, ConversationId)>, ErrorBody> {
        let Some(rest) = url.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        // The file is the same with a query or a fragment after its id.
        let id = rest.split(['?', '#']).next().unwrap_or_default();
        match self.0.meta(id).await {
            Ok(Some(meta)) => Ok(Some((meta.owner, meta.conversation))),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "reading an upload's metadata failed");
                let mut body = ErrorBody::new(
                    ErrorCode::Unavailable,
                    "the file could not be looked up, retry later",
                );
                body.retry_after_ms = Some(1000);
                Err(body)
            }
        }
    }
}

/// The download's `conversation` parameter: where the client saw the file (the upload's
/// own conversation when absent). Any other parameter is refused.
fn seen_in(query: &str) -> Result<Option<ConversationId>, &'static str> {
    let mut seen_in = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if crate::routes::decode_query(name) != "conversation" {
            return Err("a download takes one query parameter, `conversation`");
        }
        let Ok(id) = crate::routes::decode_query(value).parse::<ConversationId>() else {
            return Err("`conversation` is not a conversation id");
        };
        seen_in = Some(id);
    }
    Ok(seen_in)
}

/// The reply to an upload: what a message's body names the file by.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Uploaded<'a> {
    /// The file's id.
    id: &'a str,
    /// The url a message names it by, and where it is fetched (`/v1/attachments/{id}`).
    url: String,
    /// Its type, sniffed from its bytes.
    mime: &'a str,
    /// Its size in bytes.
    size: u64,
    /// An image's width in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    /// An image's height in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
}

/// The longest `conversation` field accepted.
const MAX_FIELD_BYTES: u64 = 256;

impl Gateway {
    /// The blob store and the caller, or the answer that neither can be had: uploads
    /// are off (404) or the token is not good (401).
    async fn blobs_for(
        &self,
        token: &str,
    ) -> Result<(&std::sync::Arc<dyn crate::BlobStore>, Identity), Response> {
        let Some(blobs) = &self.inner.blobs else {
            return Err(error_of(
                ErrorCode::NotFound,
                "uploads are not enabled on this server",
            ));
        };
        let identity = self
            .inner
            .engine
            .authenticate(token)
            .await
            .map_err(|e| error(&e))?;
        Ok((blobs, identity))
    }

    pub(crate) async fn upload(&self, token: &str, headers: &HeaderMap, body: Body) -> Response {
        let (blobs, identity) = match self.blobs_for(token).await {
            Ok(found) => found,
            Err(refused) => return refused,
        };
        if let Err(refused) = self.admit_upload(identity.user.id) {
            return error(&refused);
        }
        let Some(boundary) = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok())
        else {
            return http::invalid_with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be multipart/form-data",
            );
        };
        let limit = self.inner.config.max_upload_bytes;
        let constraints = multer::Constraints::new()
            .allowed_fields(vec!["conversation", "file"])
            .size_limit(
                multer::SizeLimit::new()
                    .whole_stream(limit + 64 * 1024)
                    .for_field("conversation", MAX_FIELD_BYTES)
                    .for_field("file", limit),
            );
        let _permit = match self.transfer_permit() {
            Ok(permit) => permit,
            Err(busy) => return error(&busy),
        };
        let form = multer::Multipart::with_constraints(body, boundary, constraints);
        let read = tokio::time::timeout(
            self.inner.config.body_timeout,
            self.read_form(form, &identity, limit),
        );
        let (conversation, bytes) = match read.await {
            Err(_) => return http::body_timeout(),
            Ok(Err(refused)) => return refused,
            Ok(Ok(read)) => read,
        };
        let Some(mime) = stored_type(&self.inner.config.upload_types, &bytes) else {
            return error_of(
                ErrorCode::Invalid,
                format!(
                    "this type of file is not accepted; allowed: {}",
                    self.inner.config.upload_types.join(", ")
                ),
            );
        };
        let (width, height) = if mime.starts_with("image/") {
            match imagesize::blob_size(&bytes) {
                Ok(size) => (
                    u32::try_from(size.width).ok(),
                    u32::try_from(size.height).ok(),
                ),
                Err(_) => (None, None),
            }
        } else {
            (None, None)
        };
        let id = match blob::new_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "no randomness for an upload id");
                return error_of(ErrorCode::Internal, "internal error");
            }
        };
        let meta = BlobMeta {
            id,
            mime: mime.to_owned(),
            size: bytes.len() as u64,
            owner: identity.user.id,
            conversation,
            created_at: Timestamp::now(),
            width,
            height,
        };
        let quota = self.inner.config.upload_quota_bytes;
        let stored = if quota == 0 {
            blobs.put(&meta, bytes).await
        } else {
            blobs.put_within(&meta, bytes, quota).await
        };
        match stored {
            Ok(()) => {}
            Err(e @ blob::BlobError::QuotaExceeded { .. }) => {
                return error_of(ErrorCode::TooLarge, e.to_string());
            }
            Err(e) => {
                tracing::error!(error = %e, "storing an upload failed");
                return error_of(
                    ErrorCode::Unavailable,
                    "the file could not be stored, retry later",
                );
            }
        }
        metrics_upload(meta.size);
        let reply = Uploaded {
            id: &meta.id,
            url: url_of(&meta.id),
            mime: &meta.mime,
            size: meta.size,
            width,
            height,
        };
        http::json(
            StatusCode::CREATED,
            serde_json::to_vec(&reply).unwrap_or_default(),
        )
    }

    /// Reads the form: the `conversation` first (access is checked before any of the
    /// file is read), then the `file`.
    async fn read_form(
        &self,
        mut form: multer::Multipart<'static>,
        identity: &Identity,
        limit: u64,
    ) -> Result<(ConversationId, Bytes), Response> {
        let mut conversation = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| multipart_error(&e, limit))?
        {
            match field.name() {
                Some("conversation") => {
                    let text = field.text().await.map_err(|e| multipart_error(&e, limit))?;
                    let Ok(id) = text.trim().parse::<ConversationId>() else {
                        return Err(error_of(
                            ErrorCode::Invalid,
                            "`conversation` is not a conversation id",
                        ));
                    };
                    self.inner
                        .engine
                        .check_access(identity, id)
                        .await
                        .map_err(|e| error(&e))?;
                    conversation = Some(id);
                }
                Some("file") => {
                    let Some(conversation) = conversation else {
                        return Err(error_of(
                            ErrorCode::Invalid,
                            "the form's `conversation` field must come before its `file`",
                        ));
                    };
                    let mut buf = BytesMut::new();
                    let mut chunks = field;
                    while let Some(chunk) = chunks
                        .try_next()
                        .await
                        .map_err(|e| multipart_error(&e, limit))?
                    {
                        buf.extend_from_slice(&chunk);
                    }
                    if buf.is_empty() {
                        break;
                    }
                    return Ok((conversation, buf.freeze()));
                }
                _ => {}
            }
        }
        Err(error_of(
            ErrorCode::Invalid,
            if conversation.is_none() {
                "the form has no `conversation` field"
            } else {
                "the form has no `file`, or it is empty"
            },
        ))
    }

    /// A permit for one upload or download, or `unavailable` when too many are under
    /// way.
    fn transfer_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ErrorBody> {
        self.inner
            .transfers
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                metrics::counter!("im_transfers_refused_total").increment(1);
                let mut busy = ErrorBody::new(
                    ErrorCode::Unavailable,
                    "too many uploads and downloads at once, retry shortly",
                );
                busy.retry_after_ms = Some(1000);
                busy
            })
    }

    pub(crate) async fn download(&self, token: &str, id: &str, query: &str) -> Response {
        let seen_in = match seen_in(query) {
            Ok(seen_in) => seen_in,
            Err(wrong) => return error_of(ErrorCode::Invalid, wrong),
        };
        let (blobs, identity) = match self.blobs_for(token).await {
            Ok(found) => found,
            Err(refused) => return refused,
        };
        let meta = match blobs.meta(id).await {
            Ok(Some(meta)) => meta,
            Ok(None) => return error_of(ErrorCode::NotFound, "no such attachment"),
            Err(e) => return read_failed(&e),
        };
        let url = url_of(&meta.id);
        let upload = Upload {
            url: &url,
            owner: meta.owner,
            conversation: meta.conversation,
        };
        if let Err(e) = self
            .inner
            .engine
            .check_download(identity.user.id, &upload, seen_in)
            .await
        {
            return error(&e);
        }
        let permit = match self.transfer_permit() {
            Ok(permit) => permit,
            Err(busy) => return error(&busy),
        };
        let body = match blobs.read(id).await {
            Ok(Some(body)) => body,
            Ok(None) => return error_of(ErrorCode::NotFound, "no such attachment"),
            Err(e) => return read_failed(&e),
        };
        // The permit goes with the stream: the transfer lasts until the last chunk is out
        // or the client goes away.
        let body = futures::StreamExt::map(body, move |chunk| {
            let _held = &permit;
            chunk
        });
        let mut response = warp::reply::stream(body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
        if let Ok(mime) = HeaderValue::from_str(&meta.mime) {
            headers.insert(header::CONTENT_TYPE, mime);
        }
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static(if meta.mime.starts_with("image/") {
                "inline"
            } else {
                "attachment"
            }),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        );
        // The bytes behind an id never change, but who may read them does (a member
        // leaves, a device logs out): the browser keeps a copy but asks each time.
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
        response
    }
}

impl Gateway {
    /// Counts an upload against its user's rate limit: `429` with `Retry-After` when
    /// over it.
    fn admit_upload(&self, user: UserId) -> Result<(), ErrorBody> {
        use governor::clock::Clock as _;
        let Some(limiter) = &self.inner.uploads else {
            return Ok(());
        };
        // Forget users whose allowance has refilled, now and then (a scan of them all).
        let seen = self
            .inner
            .uploads_seen
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if seen % 1024 == 1023 {
            limiter.retain_recent();
        }
        limiter.check_key(&user).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            let mut body = ErrorBody::new(ErrorCode::RateLimited, "uploading too fast");
            body.retry_after_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1));
            body
        })
    }
}

fn read_failed(e: &crate::BlobError) -> Response {
    tracing::error!(error = %e, "reading an upload failed");
    error_of(
        ErrorCode::Unavailable,
        "the file could not be read, retry later",
    )
}

fn metrics_upload(size: u64) {
    metrics::counter!("im_uploads_total").increment(1);
    metrics::counter!("im_upload_bytes_total").increment(size);
}

fn multipart_error(e: &multer::Error, limit: u64) -> Response {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            error_of(
                ErrorCode::TooLarge,
                format!("the upload is over the limit of {limit} bytes"),
            )
        }
        e => error_of(ErrorCode::Invalid, format!("malformed multipart body: {e}")),
    }
}

/// The entry of [`WsConfig::upload_types`](crate::WsConfig::upload_types) that accepts
/// any other file, as a download.
pub const ANY_FILE: &str = "*/*";

/// The type an upload is stored and served with, judged from its bytes: its sniffed
/// type when `types` lists it; otherwise, when `types` holds [`ANY_FILE`],
/// `application/octet-stream` (a file served only as a download, whatever it is: an
/// unknown format, a script, an image type that is not listed); otherwise `None`, and
/// the upload is refused.
fn stored_type(types: &[String], bytes: &[u8]) -> Option<&'static str> {
    let listed = |m: &str| types.iter().any(|allowed| allowed == m);
    match infer::get(bytes).map(|t| t.mime_type()) {
        Some(sniffed) if listed(sniffed) => Some(sniffed),
        _ if listed(ANY_FILE) => Some("application/octet-stream"),
        _ => None,
    }
}
