//! One accepted WebSocket as the engine sees it ([`WsConnection`]), and the byte stream
//! under it ([`WsIo`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, Stream};
use hyper_util::rt::TokioIo;
use im_core::transport::{Connection, PeerInfo, TransportError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// One accepted WebSocket, as the engine sees it: each text or binary message is a frame.
///
/// Frames the engine sends go out as text when they are JSON (they start with `{`) and
/// as binary otherwise (MessagePack, after a `hello` that asked for it). Control frames
/// are handled here: pings are answered (by tungstenite), and the server pings the peer
/// every [`WsConfig::ping_interval`](crate::WsConfig::ping_interval) so that idle
/// connections survive proxies.
#[derive(Debug)]
pub struct WsConnection {
    socket: WebSocketStream<WsIo>,
    peer: PeerInfo,
    limit: usize,
    ping: tokio::time::Interval,
    ping_due: bool,
    unflushed_ping: bool,
    /// Why the peer broke the protocol, for the close frame (RFC 6455, 7.4.1): set when a
    /// read fails, sent when the engine closes the connection.
    close_with: Option<CloseFrame>,
}

impl WsConnection {
    pub(crate) fn new(
        socket: WebSocketStream<WsIo>,
        peer: PeerInfo,
        limit: usize,
        ping: Duration,
    ) -> Self {
        // Zero means no pings: an interval too long to ever fire.
        let ping = if ping.is_zero() {
            Duration::from_secs(86_400 * 365)
        } else {
            ping
        };
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        WsConnection {
            socket,
            peer,
            limit,
            ping,
            ping_due: false,
            unflushed_ping: false,
            close_with: None,
        }
    }

    /// Sends a ping when one is due, without ever waiting for it: a socket that is not
    /// ready now gets it on a later poll.
    fn poll_heartbeat(&mut self, cx: &mut Context<'_>) -> Result<(), TransportError> {
        if self.ping.poll_tick(cx).is_ready() {
            self.ping_due = true;
        }
        if self.ping_due
            && let Poll::Ready(ready) = Pin::new(&mut self.socket).poll_ready(cx)
        {
            ready.map_err(io_error)?;
            Pin::new(&mut self.socket)
                .start_send(Message::Ping(Bytes::new()))
                .map_err(io_error)?;
            self.ping_due = false;
            self.unflushed_ping = true;
        }
        if self.unflushed_ping
            && let Poll::Ready(flushed) = Pin::new(&mut self.socket).poll_flush(cx)
        {
            flushed.map_err(io_error)?;
            self.unflushed_ping = false;
        }
        Ok(())
    }
}

impl Stream for WsConnection {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Err(e) = this.poll_heartbeat(cx) {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            match ready!(Pin::new(&mut this.socket).poll_next(cx)) {
                Some(Ok(Message::Text(text))) => return Poll::Ready(Some(Ok(text.into()))),
                Some(Ok(Message::Binary(bytes))) => return Poll::Ready(Some(Ok(bytes))),
                Some(Ok(Message::Close(_))) => return Poll::Ready(None),
                // Pings and pongs: tungstenite answers pings itself.
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    this.close_with = close_frame(&e);
                    return Poll::Ready(Some(Err(map_error(e, this.limit))));
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

impl Sink<Bytes> for WsConnection {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket).poll_ready(cx).map_err(io_error)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Bytes) -> Result<(), Self::Error> {
        // The frame's bytes are shared with every other recipient: no copy here.
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
        if self.close_with.is_some() {
            ready!(Pin::new(&mut self.socket).poll_ready(cx)).map_err(io_error)?;
            let frame = self.close_with.take();
            Pin::new(&mut self.socket)
                .start_send(Message::Close(frame))
                .map_err(io_error)?;
        }
        Pin::new(&mut self.socket).poll_close(cx).map_err(io_error)
    }
}

impl Connection for WsConnection {
    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

/// The byte stream under a server-side WebSocket: the TCP socket itself when the
/// gateway's own server ([`serve`](crate::serve)) accepted it, or hyper's upgraded
/// connection when another server (warp's, axum's) did.
#[derive(Debug)]
pub enum WsIo {
    /// The accepted socket, handed back by hyper after the upgrade.
    Tcp(TcpStream),
    /// Whatever another server's hyper connection was built on.
    Upgraded(TokioIo<hyper::upgrade::Upgraded>),
}

impl AsyncRead for WsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WsIo::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            WsIo::Upgraded(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WsIo::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            WsIo::Upgraded(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WsIo::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            WsIo::Upgraded(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WsIo::Tcp(s) => s.is_write_vectored(),
            WsIo::Upgraded(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WsIo::Tcp(s) => Pin::new(s).poll_flush(cx),
            WsIo::Upgraded(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WsIo::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            WsIo::Upgraded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A frame on its way out, as the WebSocket carries it.
pub(crate) enum Outgoing {
    /// JSON (the only codec whose frames start with `{`), as a text message.
    Text(Utf8Bytes),
    /// MessagePack, as a binary message.
    Binary(Bytes),
}

/// How a frame goes out, both ways: over the size limit is `TooLarge`; JSON is text,
/// the rest binary.
pub(crate) fn outgoing(frame: Bytes, limit: usize) -> Result<Outgoing, TransportError> {
    if frame.len() > limit {
        return Err(TransportError::TooLarge {
            size: frame.len(),
            limit,
        });
    }
    if frame.first() != Some(&b'{') {
        return Ok(Outgoing::Binary(frame));
    }
    Utf8Bytes::try_from(frame)
        .map(Outgoing::Text)
        .map_err(|e| TransportError::Io(io::Error::other(e)))
}

fn io_error(e: WsError) -> TransportError {
    match e {
        WsError::Io(e) => TransportError::Io(e),
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::Closed,
        e => TransportError::Io(io::Error::other(e)),
    }
}

/// The close frame that tells the peer what it did wrong, for the read errors that are
/// the peer's fault: invalid UTF-8 in a text message is 1007, a message over the limit
/// 1009, any other protocol violation 1002.
fn close_frame(e: &WsError) -> Option<CloseFrame> {
    let (code, reason) = match e {
        WsError::Utf8(_) => (CloseCode::Invalid, "invalid UTF-8 in a text message"),
        WsError::Capacity(_) => (CloseCode::Size, "message too large"),
        WsError::Protocol(_) => (CloseCode::Protocol, "protocol error"),
        _ => return None,
    };
    Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    })
}

/// A read error, with messages over the limit told apart from the rest.
fn map_error(e: WsError, limit: usize) -> TransportError {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { size, .. }) => {
            TransportError::TooLarge { size, limit }
        }
        e => io_error(e),
    }
}
