use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, Stream};
use im_core::transport::{Connection, PeerInfo, TransportError};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use warp::ws::{Message, WebSocket};

/// One accepted WebSocket, as the engine sees it: each text or binary message is a frame.
///
/// Frames the engine sends go out as text when they are JSON (they start with `{`) and
/// as binary otherwise (MessagePack, after a `hello` that asked for it). Control frames
/// are handled here: pings are answered (by tungstenite), and the server pings the peer
/// every [`WsConfig::ping_interval`](crate::WsConfig::ping_interval) so that idle
/// connections survive proxies.
#[derive(Debug)]
pub struct WsConnection {
    socket: WebSocket,
    peer: PeerInfo,
    limit: usize,
    ping: tokio::time::Interval,
    ping_due: bool,
    unflushed_ping: bool,
}

impl WsConnection {
    pub(crate) fn new(socket: WebSocket, peer: PeerInfo, limit: usize, ping: Duration) -> Self {
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
                .start_send(Message::ping(Bytes::new()))
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
                Some(Ok(message)) if message.is_text() || message.is_binary() => {
                    return Poll::Ready(Some(Ok(message.into_bytes())));
                }
                Some(Ok(message)) if message.is_close() => return Poll::Ready(None),
                // Pings and pongs: tungstenite answers pings itself.
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Some(Err(map_error(&e, this.limit)))),
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
        let message = match outgoing(frame, self.limit)? {
            // warp's text messages are Strings, which costs this one copy per frame.
            Outgoing::Text(text) => Message::text(text.as_str()),
            Outgoing::Binary(bytes) => Message::binary(bytes),
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

impl Connection for WsConnection {
    fn peer(&self) -> &PeerInfo {
        &self.peer
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
        .map_err(|e| TransportError::Io(std::io::Error::other(e)))
}

fn io_error(e: warp::Error) -> TransportError {
    TransportError::Io(std::io::Error::other(e))
}

/// A read error, with messages over the limit told apart from the rest.
fn map_error(e: &warp::Error, limit: usize) -> TransportError {
    let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<WsError>());
    match inner {
        Some(WsError::Capacity(CapacityError::MessageTooLong { size, .. })) => {
            TransportError::TooLarge { size: *size, limit }
        }
        _ => TransportError::Io(std::io::Error::other(e.to_string())),
    }
}
