use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proxy::{ForwardedHeader, TrustedProxy};

/// Settings of the WebSocket endpoint, the HTTP API and uploads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Largest WebSocket message accepted, in bytes. Default 64 KiB, like the engine's
    /// frame limit. The gateway raises it to the engine's limit if it is lower, so that
    /// every reply the engine may send fits (the engine's own limit applies too).
    pub max_frame_bytes: usize,
    /// How often the server pings an idle WebSocket, to keep proxies and NATs from
    /// dropping it (zero: never). Default 30 s. The engine's idle timeout still needs a frame from the
    /// client (a protocol `ping`) within `idle_timeout`.
    #[serde(with = "im_core::engine::millis")]
    pub ping_interval: Duration,
    /// Origins allowed to open a WebSocket (`https://chat.example.com`); `None` allows
    /// any. Browsers send `Origin` and let any page open a socket to any host, so set
    /// this when a page is served from a known origin. Requests without `Origin`
    /// (non-browser clients) are always allowed.
    pub allowed_origins: Option<Vec<String>>,
    /// Bytes read from a WebSocket at a time, in a buffer each connection keeps (it grows
    /// while a larger frame arrives). Default 1 KiB: what clients send is small (a send
    /// is a few hundred bytes), and this buffer is most of what an idle connection
    /// costs. tungstenite's own default is 128 KiB.
    pub read_buffer_bytes: usize,
    /// Outgoing WebSocket frames are gathered up to this many bytes before they are
    /// written to the socket (a flush writes whatever is gathered). Default 16 KiB: a
    /// batch of small frames goes out in a few writes, and a connection keeps no more
    /// than about this much after a burst.
    pub write_buffer_bytes: usize,
    /// Sets `TCP_NODELAY` on WebSocket connections (when the socket is reachable: with
    /// [`serve`](crate::serve), which sets it on every connection anyway). Default true:
    /// the engine batches its writes itself, and Nagle's algorithm would hold a small
    /// frame back for up to 40 ms.
    pub tcp_nodelay: bool,
    /// Largest JSON request body of the HTTP API, in bytes. Default 64 KiB.
    pub max_body_bytes: usize,
    /// How long a request body (JSON or upload) may take to arrive; slower ones get
    /// `408`. Default 30 s.
    #[serde(with = "im_core::engine::millis")]
    pub body_timeout: Duration,
    /// Uploads and downloads in progress at once, over all users; more get `503`
    /// (each holds up to `max_upload_bytes` in memory). Default 64.
    pub max_transfers: usize,
    /// Largest upload, in bytes. Default 5 MiB.
    pub max_upload_bytes: u64,
    /// Uploads one user may make per minute (a burst of as many, refilling steadily);
    /// 0 for no limit. Default 30.
    pub uploads_per_user_per_minute: u32,
    /// Bytes one user's uploads may take in all; an upload past it gets `too_large`
    /// (413) saying how much is in use. 0 for no quota. Default 1 GiB. Checked by the
    /// blob store in the same step as it counts the upload
    /// ([`BlobStore::put_within`](crate::BlobStore::put_within)).
    pub upload_quota_bytes: u64,
    /// How long an upload is kept while no message shows it: files older than this that
    /// no live message names (never sent, or every message showing them recalled or
    /// edited away) are removed, in a pass every hour (or every `upload_grace`, if
    /// shorter). Zero keeps every file. Default 24 h, so that a file uploaded for a
    /// message still being written is not taken away. Needs a storage that finds the
    /// messages naming a file
    /// ([`MessageStore::attachment_use`](im_core::storage::MessageStore::attachment_use))
    /// and a blob store that lists and deletes; otherwise files are kept. See
    /// [`Gateway::collect_uploads`](crate::Gateway::collect_uploads).
    #[serde(with = "im_core::engine::millis")]
    pub upload_grace: Duration,
    /// MIME types an upload may have, judged from its content (never from the client's
    /// claim). With `*/*` ([`ANY_FILE`](crate::ANY_FILE)) any other file is
    /// accepted too, stored and served as `application/octet-stream`, a download only.
    /// Default: PNG, JPEG, GIF, WebP images and PDF, and `*/*`; leave `*/*` out to
    /// refuse the rest.
    pub upload_types: Vec<String>,
    /// Reverse proxies whose [`forwarded_header`](Self::forwarded_header) names the
    /// client, for the per-address limits (registration and login). From any other peer
    /// the header is ignored, so a client cannot choose its own address. Default: none.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// The header the trusted proxies write: `x-forwarded-for` (default) or `forwarded`
    /// (RFC 7239). The other is ignored, since a proxy passes it on as the client sent it.
    pub forwarded_header: ForwardedHeader,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_frame_bytes: 64 * 1024,
            ping_interval: Duration::from_secs(30),
            allowed_origins: None,
            read_buffer_bytes: 1024,
            write_buffer_bytes: 16 * 1024,
            tcp_nodelay: true,
            max_body_bytes: 64 * 1024,
            body_timeout: Duration::from_secs(30),
            max_transfers: 64,
            max_upload_bytes: 5 * 1024 * 1024,
            uploads_per_user_per_minute: 30,
            upload_quota_bytes: 1 << 30,
            upload_grace: Duration::from_secs(24 * 60 * 60),
            upload_types: [
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "application/pdf",
                "*/*",
            ]
            .map(String::from)
            .to_vec(),
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::XForwardedFor,
        }
    }
}

impl WsConfig {
    /// Sets [`max_frame_bytes`](Self::max_frame_bytes).
    pub fn with_max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval).
    pub fn with_ping_interval(mut self, every: Duration) -> Self {
        self.ping_interval = every;
        self
    }

    /// Sets [`allowed_origins`](Self::allowed_origins).
    pub fn with_allowed_origins(mut self, origins: impl IntoIterator<Item = String>) -> Self {
        self.allowed_origins = Some(origins.into_iter().collect());
        self
    }

    /// Sets [`read_buffer_bytes`](Self::read_buffer_bytes).
    pub fn with_read_buffer_bytes(mut self, bytes: usize) -> Self {
        self.read_buffer_bytes = bytes;
        self
    }

    /// Sets [`write_buffer_bytes`](Self::write_buffer_bytes).
    pub fn with_write_buffer_bytes(mut self, bytes: usize) -> Self {
        self.write_buffer_bytes = bytes;
        self
    }

    /// Sets [`tcp_nodelay`](Self::tcp_nodelay).
    pub fn with_tcp_nodelay(mut self, on: bool) -> Self {
        self.tcp_nodelay = on;
        self
    }

    /// Sets [`max_body_bytes`](Self::max_body_bytes).
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets [`body_timeout`](Self::body_timeout).
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Sets [`max_transfers`](Self::max_transfers).
    pub fn with_max_transfers(mut self, n: usize) -> Self {
        self.max_transfers = n;
        self
    }

    /// Sets [`trusted_proxies`](Self::trusted_proxies).
    pub fn with_trusted_proxies(mut self, proxies: impl IntoIterator<Item = TrustedProxy>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// Sets [`forwarded_header`](Self::forwarded_header).
    pub fn with_forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.forwarded_header = header;
        self
    }

    /// Sets [`max_upload_bytes`](Self::max_upload_bytes).
    pub fn with_max_upload_bytes(mut self, bytes: u64) -> Self {
        self.max_upload_bytes = bytes;
        self
    }

    /// Sets [`uploads_per_user_per_minute`](Self::uploads_per_user_per_minute).
    pub fn with_uploads_per_user_per_minute(mut self, n: u32) -> Self {
        self.uploads_per_user_per_minute = n;
        self
    }

    /// Sets [`upload_grace`](Self::upload_grace).
    pub fn with_upload_grace(mut self, grace: Duration) -> Self {
        self.upload_grace = grace;
        self
    }

    /// Sets [`upload_quota_bytes`](Self::upload_quota_bytes).
    pub fn with_upload_quota_bytes(mut self, bytes: u64) -> Self {
        self.upload_quota_bytes = bytes;
        self
    }

    /// Sets [`upload_types`](Self::upload_types).
    pub fn with_upload_types(mut self, types: impl IntoIterator<Item = String>) -> Self {
        self.upload_types = types.into_iter().collect();
        self
    }
}
