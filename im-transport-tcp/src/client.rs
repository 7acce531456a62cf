use tokio::net::{TcpSocket, ToSocketAddrs, lookup_host};

use crate::{TcpConfig, TcpConnection};

/// Opens a client connection to a TCP transport. Hand it to
/// [`im_core::client::Client::connect`].
pub async fn connect(
    addr: impl ToSocketAddrs,
    config: &TcpConfig,
) -> std::io::Result<TcpConnection> {
    let mut last = None;
    for addr in lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(bytes) = config.recv_buffer_bytes {
            socket.set_recv_buffer_size(bytes)?;
        }
        match socket.connect(addr).await {
            Ok(stream) => return TcpConnection::new(stream, config),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "address resolved to nothing")
    }))
}
