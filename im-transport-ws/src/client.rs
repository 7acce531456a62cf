use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::{Sink, Stream};
use im_core::transport::{Connection, PeerInfo, TransportError};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::connection::{Outgoing, outgoing};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Why a WebSocket connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("websocket connect to {url}: {source}")]
pub struct ConnectError {
    url: String,
    #[source]
    source: WsError,
}

/// Client side of a WebSocket to the server's `/ws` endpoint, usable by
/// [`im_core::client::Client`]: each frame is one message, JSON as text.
#[derive(Debug)]
pub struct WsClientConnection {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    peer: PeerInfo,
    limit: usize,
}

/// Opens a WebSocket (`ws://host:port/ws`) with frames up to `max_frame_bytes`. Hand it
/// to [`im_core::client::Client::connect`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let socket = im_transport_ws::connect("ws://127.0.0.1:8080/ws", 64 * 1024).await?;
/// let (client, _events) = im_core::client::Client::connect(socket).await?;
/// client.login("alice", "correct horse", "cli").await?;
/// # Ok(()) }
/// ```
pub async fn connect(
    url: &str,
    max_frame_bytes: usize,
) -> Result<WsClientConnection, ConnectError> {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(max_frame_bytes);
    config.max_frame_size = Some(max_frame_bytes);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|source| ConnectError {
            url: url.to_owned(),
            source,
        })?;
    let addr = match socket.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.peer_addr().ok(),
        _ => None,
    };
    Ok(WsClientConnection {
        socket,
        peer: PeerInfo {
            addr,
            transport: "ws",
        },
        limit: max_frame_bytes,
    })
}

impl Stream for WsClientConnection {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.socket).poll_next(cx)) {
                Some(Ok(Message::Text(text))) => return Poll::Ready(Some(Ok(Bytes::from(text)))),
                Some(Ok(Message::Binary(bytes))) => return Poll::Ready(Some(Ok(bytes))),
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(None),
                Some(Ok(_)) => continue,
                Some(Err(WsError::Capacity(e))) => {
                    let size = match e {
                        tokio_tungstenite::tungstenite::error::CapacityError::MessageTooLong {
                            size,
                            ..
                        } => size,
                        _ => 0,
                    };
                    let limit = self.limit;
                    return Poll::Ready(Some(Err(TransportError::TooLarge { size, limit })));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(io_error(e)))),
            }
        }
    }
}

impl Sink<Bytes> for WsClientConnection {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket).poll_ready(cx).map_err(io_error)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Bytes) -> Result<(), Self::Error> {
        let message = match outgoing(frame, self.limit)? {
            Outgoing::Text(text) => Message::Text(text),
            Outgoing::Binary(bytes) => Message::Binary(bytes),
        };
        Pin::new(&mut self.socket)
            .start_send(message)
            .map_err(io_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket).poll_flush(cx).map_err(io_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket).poll_close(cx).map_err(io_error)
    }
}

impl Connection for WsClientConnection {
    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

fn io_error(e: WsError) -> TransportError {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::Closed,
        WsError::Io(e) => TransportError::Io(e),
        e => TransportError::Io(std::io::Error::other(e)),
    }
}
