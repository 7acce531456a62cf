//! `GET /ws`: the WebSocket handshake (RFC 6455 §4.2), done here rather than by warp so
//! that each socket gets buffers sized for chat frames and `TCP_NODELAY`, then handed to
//! the engine.
//!
//! warp's own `ws()` filter builds every socket with tungstenite's defaults: a 128 KiB
//! read buffer per connection, zero-filled before each read attempt. Measured on the
//! chat server, that was 141 KiB of memory per idle connection, and `memset` the top
//! symbol of a group fan-out. Here the read buffer is [`WsConfig::read_buffer_bytes`]
//! (it grows only while a larger frame arrives) and writes are gathered up to
//! [`WsConfig::write_buffer_bytes`] before they reach the socket.

use std::net::SocketAddr;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use im_core::protocol::ErrorCode;
use im_core::transport::PeerInfo;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::Gateway;
use crate::config::WsConfig;
use crate::connection::{WsConnection, WsIo};
use crate::http::error_of;

impl Gateway {
    /// Answers a `GET /ws`: checks the handshake and the origin, replies `101`, and
    /// serves the socket on the engine once hyper hands it over.
    pub(crate) fn upgrade(
        &self,
        headers: &HeaderMap,
        on_upgrade: Option<OnUpgrade>,
        addr: Option<SocketAddr>,
    ) -> Response {
        let config = &self.inner.config;
        let key = match handshake_key(headers) {
            Ok(key) => key,
            Err(refusal) => return refusal.response(),
        };
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        if let (Some(allowed), Some(origin)) = (&config.allowed_origins, origin)
            && !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
        {
            metrics::counter!("im_ws_origin_refused_total").increment(1);
            return error_of(
                ErrorCode::Forbidden,
                "this origin may not open a WebSocket here",
            );
        }
        let Some(on_upgrade) = on_upgrade else {
            // An HTTP/2 request, or a server that does not support upgrades.
            return error_of(
                ErrorCode::Invalid,
                "this connection cannot be upgraded to a WebSocket (use HTTP/1.1)",
            );
        };

        let engine = self.inner.engine.clone();
        let socket_config = socket_config(config);
        let (limit, ping, nodelay) = (
            config.max_frame_bytes,
            config.ping_interval,
            config.tcp_nodelay,
        );
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!(error = %e, "websocket upgrade failed");
                    return;
                }
            };
            let socket = open(upgraded, socket_config, nodelay).await;
            let peer = PeerInfo {
                addr,
                transport: "ws",
            };
            engine
                .serve_connection(WsConnection::new(socket, peer, limit, ping))
                .await;
        });

        let mut response = Response::default();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = response.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

/// Why a request is not a WebSocket handshake we accept.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// Not an upgrade to `websocket`.
    NotUpgrade,
    /// A protocol version other than 13.
    Version,
    /// No `Sec-WebSocket-Key`, or not one of 16 bytes in base64.
    Key,
}

impl Refusal {
    fn response(self) -> Response {
        match self {
            Refusal::NotUpgrade => {
                let mut refusal = error_of(
                    ErrorCode::Invalid,
                    "expected a WebSocket handshake (Connection: Upgrade, Upgrade: websocket)",
                );
                *refusal.status_mut() = StatusCode::UPGRADE_REQUIRED;
                refusal
                    .headers_mut()
                    .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                refusal
            }
            Refusal::Version => {
                let mut refusal =
                    error_of(ErrorCode::Invalid, "only WebSocket version 13 is spoken");
                *refusal.status_mut() = StatusCode::UPGRADE_REQUIRED;
                refusal.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
                refusal
            }
            Refusal::Key => error_of(ErrorCode::Invalid, "missing or malformed Sec-WebSocket-Key"),
        }
    }
}

/// The client's `Sec-WebSocket-Key` if the request is a WebSocket handshake we speak.
fn handshake_key(headers: &HeaderMap) -> Result<String, Refusal> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(Refusal::NotUpgrade);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Refusal::Version);
    }
    match headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
    {
        // 16 random bytes in base64 (RFC 6455 §4.1).
        Some(key) if key.len() == 24 => Ok(key.to_owned()),
        _ => Err(Refusal::Key),
    }
}

/// tungstenite's settings for a server socket: our buffer sizes and frame limit.
fn socket_config(config: &WsConfig) -> WebSocketConfig {
    let mut socket = WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_bytes.max(256))
        .write_buffer_size(config.write_buffer_bytes);
    socket.max_message_size = Some(config.max_frame_bytes);
    socket.max_frame_size = Some(config.max_frame_bytes);
    socket
}

/// The WebSocket over an upgraded connection. When the connection is a plain TCP socket
/// under hyper's HTTP/1 server (the gateway's own [`serve`](crate::serve)), the socket
/// itself is taken back (any bytes hyper had read past the handshake go first), so that
/// `TCP_NODELAY` can be set and no layer sits between tungstenite and the socket.
async fn open(
    upgraded: hyper::upgrade::Upgraded,
    config: WebSocketConfig,
    nodelay: bool,
) -> WebSocketStream<WsIo> {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let stream = parts.io.into_inner();
            if nodelay && let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
            WebSocketStream::from_partially_read(
                WsIo::Tcp(stream),
                parts.read_buf.to_vec(),
                Role::Server,
                Some(config),
            )
            .await
        }
        Err(upgraded) => {
            WebSocketStream::from_raw_socket(
                WsIo::Upgraded(TokioIo::new(upgraded)),
                Role::Server,
                Some(config),
            )
            .await
        }
    }
}
