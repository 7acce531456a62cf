use tokio::net::{TcpSocket, TcpStream, ToSocketAddrs, lookup_host};

use crate::{TcpConfig, TcpConnection};

/// Opens a client connection to a TCP transport. Hand it to
/// [`im_core::client::Client::connect`].
pub async fn connect(
    addr: impl ToSocketAddrs,
    config: &TcpConfig,
) -> std::io::Result<TcpConnection> {
    TcpConnection::new(open(addr, config).await?, config)
}

/// Opens a client connection over TLS to a transport bound with
/// [`TcpTransport::bind_tls`](crate::TcpTransport::bind_tls) (feature `tls`);
/// `server_name` is the name (or IP address) its certificate must carry, checked against
/// the roots in `tls`.
#[cfg(feature = "tls")]
pub async fn connect_tls(
    addr: impl ToSocketAddrs,
    server_name: &str,
    tls: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
    config: &TcpConfig,
) -> std::io::Result<TcpConnection> {
    use tokio_rustls::rustls::pki_types::ServerName;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{server_name:?} is not a server name: {e}"),
        )
    })?;
    let stream = open(addr, config).await?;
    stream.set_nodelay(config.nodelay)?;
    let peer = stream.peer_addr().ok();
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, stream)
        .await?;
    Ok(TcpConnection::tls(tls.into(), peer, config))
}

/// A TCP connection to the first of `addr`'s addresses that answers.
async fn open(addr: impl ToSocketAddrs, config: &TcpConfig) -> std::io::Result<TcpStream> {
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
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "address resolved to nothing")
    }))
}
