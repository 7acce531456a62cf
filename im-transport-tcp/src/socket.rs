//! The byte stream under a [`TcpConnection`](crate::TcpConnection): a TCP socket, or
//! TLS over one (feature `tls`), as one type so that a connection is the same type
//! either way.

use tokio::net::TcpStream;

/// A plain socket, or (with feature `tls`) TLS over one: boxed, since a TLS session is
/// a few KB where a plain socket is a few bytes.
#[cfg(feature = "tls")]
pub(crate) type Socket =
    tokio_util::either::Either<TcpStream, Box<tokio_rustls::TlsStream<TcpStream>>>;
/// A plain socket.
#[cfg(not(feature = "tls"))]
pub(crate) type Socket = TcpStream;

/// A plain socket as a [`Socket`].
pub(crate) fn plain(stream: TcpStream) -> Socket {
    #[cfg(feature = "tls")]
    return tokio_util::either::Either::Left(stream);
    #[cfg(not(feature = "tls"))]
    stream
}
