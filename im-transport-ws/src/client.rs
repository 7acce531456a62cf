use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::{Sink, Stream};
use im_core::transport::{Connection, PeerInfo, TransportError};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::connection::{Outgoing, outgoing};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// The socket under a client WebSocket: TCP, or TLS over TCP for `wss://`.
#[cfg(feature = "tls")]
type Socket =
    tokio_util::either::Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;
#[cfg(not(feature = "tls"))]
type Socket = TcpStream;

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
    socket: WebSocketStream<Socket>,
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
    open(url, max_frame_bytes, None).await
}

/// Opens a WebSocket over TLS (`wss://host:port/ws`, feature `tls`), checking the
/// server's certificate against the roots in `tls`.
///
/// ```no_run
/// # async fn demo(tls: std::sync::Arc<im_transport_ws::rustls::ClientConfig>) -> Result<(), Box<dyn std::error::Error>> {
/// let socket = im_transport_ws::connect_tls("wss://chat.example.com/ws", 64 * 1024, tls).await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "tls")]
pub async fn connect_tls(
    url: &str,
    max_frame_bytes: usize,
    tls: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
) -> Result<WsClientConnection, ConnectError> {
    open(url, max_frame_bytes, Some(tls)).await
}

#[cfg(feature = "tls")]
type ClientTls = Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>;
#[cfg(not(feature = "tls"))]
type ClientTls = Option<std::convert::Infallible>;

async fn open(
    url: &str,
    max_frame_bytes: usize,
    tls: ClientTls,
) -> Result<WsClientConnection, ConnectError> {
    let failed = |source: WsError| ConnectError {
        url: url.to_owned(),
        source,
    };
    let request = url.into_client_request().map_err(failed)?;
    let uri = request.uri();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(failed(WsError::Url(UrlError::UnsupportedUrlScheme))),
    };
    let host = uri
        .host()
        .ok_or_else(|| failed(WsError::Url(UrlError::NoHostName)))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| failed(WsError::Io(e)))?;
    stream
        .set_nodelay(true)
        .map_err(|e| failed(WsError::Io(e)))?;
    let addr = stream.peer_addr().ok();
    let socket: Socket = match (secure, tls) {
        #[cfg(feature = "tls")]
        (true, Some(tls)) => {
            use tokio_rustls::rustls::pki_types::ServerName;
            let name = ServerName::try_from(host.clone())
                .map_err(|_| failed(WsError::Url(UrlError::NoHostName)))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, stream)
                .await
                .map_err(|e| failed(WsError::Io(e)))?;
            tokio_util::either::Either::Right(Box::new(stream))
        }
        (true, _) => return Err(failed(WsError::Url(UrlError::TlsFeatureNotEnabled))),
        #[cfg(feature = "tls")]
        (false, _) => tokio_util::either::Either::Left(stream),
        #[cfg(not(feature = "tls"))]
        (false, _) => stream,
    };
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(max_frame_bytes);
    config.max_frame_size = Some(max_frame_bytes);
    let (socket, _) = tokio_tungstenite::client_async_with_config(request, socket, Some(config))
        .await
        .map_err(failed)?;
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
