use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Sink, Stream};
use im_core::transport::{Connection, PeerInfo, TransportError};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec, LengthDelimitedCodecError};

use crate::TcpConfig;
use crate::socket::{Socket, plain};

/// One TCP connection carrying length-delimited frames, usable by the engine (as a
/// [`Connection`]) and by the client (as a `Stream` + `Sink` of frames).
#[derive(Debug)]
pub struct TcpConnection {
    framed: Framed<Socket, LengthDelimitedCodec>,
    peer: PeerInfo,
    limit: usize,
}

impl TcpConnection {
    pub(crate) fn new(stream: TcpStream, config: &TcpConfig) -> std::io::Result<Self> {
        stream.set_nodelay(config.nodelay)?;
        let addr: Option<SocketAddr> = stream.peer_addr().ok();
        Ok(Self::over(plain(stream), addr, config))
    }

    /// A connection over TLS, after its handshake.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(
        stream: tokio_rustls::TlsStream<TcpStream>,
        addr: Option<SocketAddr>,
        config: &TcpConfig,
    ) -> Self {
        Self::over(
            tokio_util::either::Either::Right(Box::new(stream)),
            addr,
            config,
        )
    }

    fn over(socket: Socket, addr: Option<SocketAddr>, config: &TcpConfig) -> Self {
        let codec = LengthDelimitedCodec::builder()
            .length_field_length(4)
            .max_frame_length(config.max_frame_bytes)
            .new_codec();
        TcpConnection {
            framed: Framed::new(socket, codec),
            peer: PeerInfo {
                addr,
                transport: "tcp",
            },
            limit: config.max_frame_bytes,
        }
    }

    fn map_err(&self, e: std::io::Error) -> TransportError {
        if e.get_ref()
            .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
        {
            TransportError::TooLarge {
                size: 0,
                limit: self.limit,
            }
        } else {
            TransportError::Io(e)
        }
    }
}

impl Stream for TcpConnection {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.framed).poll_next(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame.freeze()))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(self.map_err(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Sink<Bytes> for TcpConnection {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Sink::<Bytes>::poll_ready(Pin::new(&mut self.framed), cx).map_err(TransportError::Io)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), Self::Error> {
        if item.len() > self.limit {
            return Err(TransportError::TooLarge {
                size: item.len(),
                limit: self.limit,
            });
        }
        Pin::new(&mut self.framed)
            .start_send(item)
            .map_err(TransportError::Io)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Sink::<Bytes>::poll_flush(Pin::new(&mut self.framed), cx).map_err(TransportError::Io)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Sink::<Bytes>::poll_close(Pin::new(&mut self.framed), cx).map_err(TransportError::Io)
    }
}

impl Connection for TcpConnection {
    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}
