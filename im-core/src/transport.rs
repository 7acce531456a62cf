//! How frames reach the engine: a [`Transport`] accepts [`Connection`]s, and a connection
//! is a stream of incoming frames plus a sink for outgoing ones.
//!
//! Transports are thin: framing and I/O only. The engine does everything else, so a new
//! transport is a small crate. [`duplex`] gives an in-process connection pair, for tests
//! and for embedding a client in the same process as the server.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::channel::mpsc;
use futures::{Sink, Stream};

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's network address, when there is one.
    pub addr: Option<SocketAddr>,
    /// The transport's name (`tcp`, `ws`, `duplex`), for logs and metrics.
    pub transport: &'static str,
}

/// A transport failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer sent a frame over the size limit.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// How large it was, when known.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// An I/O error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// One client connection: whole frames in, whole frames out.
///
/// # Contract
/// - The stream yields each frame the peer sent, whole, in order, and ends when the peer
///   closes. A frame over the transport's size limit yields `TransportError::TooLarge`;
///   the engine answers `too_large` and closes.
/// - The sink takes whole frames. `feed` may buffer; `flush` writes everything fed so
///   far (the engine feeds a batch, then flushes once). `close` ends the connection.
pub trait Connection:
    Stream<Item = Result<Bytes, TransportError>>
    + Sink<Bytes, Error = TransportError>
    + Send
    + Unpin
    + 'static
{
    /// Who is connected.
    fn peer(&self) -> &PeerInfo;
}

/// A connection behind a box, as transports hand them to the engine.
pub type BoxConnection = Box<dyn Connection>;

/// A listener that accepts connections.
///
/// # Contract
/// `accept` waits for the next connection; it returns `None` once the transport is shut
/// down and will accept no more. Errors on a single connection attempt are logged by the
/// transport, not returned.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// The next connection.
    async fn accept(&self) -> Option<BoxConnection>;
}

/// One end of an in-process connection made by [`duplex`].
#[derive(Debug)]
pub struct DuplexConnection {
    tx: mpsc::Sender<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    peer: PeerInfo,
}

/// Two connected in-process endpoints; what one sends the other receives. Each direction
/// buffers `capacity` frames before the sender waits, like a socket buffer.
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (mut a, mut b) = im_core::transport::duplex(8);
/// a.send(bytes::Bytes::from_static(b"hi")).await.unwrap();
/// assert_eq!(b.next().await.unwrap().unwrap(), "hi");
/// # });
/// ```
pub fn duplex(capacity: usize) -> (DuplexConnection, DuplexConnection) {
    let (tx_a, rx_b) = mpsc::channel(capacity);
    let (tx_b, rx_a) = mpsc::channel(capacity);
    let peer = PeerInfo {
        addr: None,
        transport: "duplex",
    };
    (
        DuplexConnection {
            tx: tx_a,
            rx: rx_a,
            peer: peer.clone(),
        },
        DuplexConnection {
            tx: tx_b,
            rx: rx_b,
            peer,
        },
    )
}

impl Stream for DuplexConnection {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.rx).poll_next(cx).map(|f| f.map(Ok))
    }
}

impl Sink<Bytes> for DuplexConnection {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.tx)
            .poll_ready(cx)
            .map_err(|_| TransportError::Closed)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), Self::Error> {
        Pin::new(&mut self.tx)
            .start_send(item)
            .map_err(|_| TransportError::Closed)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.tx)
            .poll_flush(cx)
            .map_err(|_| TransportError::Closed)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.tx)
            .poll_close(cx)
            .map_err(|_| TransportError::Closed)
    }
}

impl Connection for DuplexConnection {
    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl<C: Connection + ?Sized> Connection for Box<C> {
    fn peer(&self) -> &PeerInfo {
        (**self).peer()
    }
}
