use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use im_core::transport::{BoxConnection, Transport};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::watch;

use crate::{TcpConfig, TcpConnection};

/// How long a client may take over its TLS handshake before it is dropped.
#[cfg(feature = "tls")]
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP listener that hands connections to the engine: `engine.serve(&transport)`.
#[derive(Debug)]
pub struct TcpTransport {
    incoming: Incoming,
    config: TcpConfig,
    local_addr: SocketAddr,
    closed: watch::Sender<bool>,
}

/// Where accepted connections come from.
#[derive(Debug)]
enum Incoming {
    /// Straight from the listener.
    Plain(TcpListener),
    /// From the task that accepts and runs TLS handshakes, each in a task of its own, so
    /// that a client slow to finish its handshake holds up nobody else.
    #[cfg(feature = "tls")]
    Tls(tokio::sync::Mutex<tokio::sync::mpsc::Receiver<TcpConnection>>),
}

impl TcpTransport {
    /// Binds a listener (use port 0 for any free port).
    pub async fn bind(addr: impl ToSocketAddrs, config: TcpConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(TcpTransport {
            incoming: Incoming::Plain(listener),
            config,
            local_addr,
            closed: watch::channel(false).0,
        })
    }

    /// Binds a listener whose connections speak TLS (feature `tls`). The handshakes run
    /// beside the accept loop; one that takes over 10 s is dropped. Share `tls` with the
    /// HTTPS server, or give it a certificate resolver that reloads (the chat server's
    /// `--tls-cert` does).
    ///
    /// ```no_run
    /// # async fn demo(tls: std::sync::Arc<im_transport_tcp::rustls::ServerConfig>) -> std::io::Result<()> {
    /// use im_transport_tcp::{TcpConfig, TcpTransport};
    /// let transport = TcpTransport::bind_tls("0.0.0.0:7100", TcpConfig::default(), tls).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub async fn bind_tls(
        addr: impl ToSocketAddrs,
        config: TcpConfig,
        tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let closed = watch::channel(false).0;
        let (ready, incoming) = tokio::sync::mpsc::channel(64);
        tokio::spawn(handshakes(
            listener,
            tokio_rustls::TlsAcceptor::from(tls),
            config.clone(),
            closed.subscribe(),
            ready,
        ));
        Ok(TcpTransport {
            incoming: Incoming::Tls(tokio::sync::Mutex::new(incoming)),
            config,
            local_addr,
            closed,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting: `accept` returns `None` from now on. Open connections are not
    /// touched (the engine's shutdown closes those).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// Applies the configured socket buffer sizes.
fn tune(stream: &TcpStream, config: &TcpConfig) {
    let sock = socket2::SockRef::from(stream);
    if let Some(bytes) = config.recv_buffer_bytes {
        let _ = sock.set_recv_buffer_size(bytes as usize);
    }
    if let Some(bytes) = config.send_buffer_bytes {
        let _ = sock.set_send_buffer_size(bytes as usize);
    }
}

/// Accepts on `listener` and runs each TLS handshake in a task of its own, handing the
/// finished connections to `ready`, until the transport is closed or dropped.
#[cfg(feature = "tls")]
async fn handshakes(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    config: TcpConfig,
    mut closed: watch::Receiver<bool>,
    ready: tokio::sync::mpsc::Sender<TcpConnection>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = closed.wait_for(|closed| *closed) => return,
            () = ready.closed() => return,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tune(&stream, &config);
        if let Err(e) = stream.set_nodelay(config.nodelay) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let (acceptor, config, ready) = (acceptor.clone(), config.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let connection = TcpConnection::tls(tls.into(), Some(addr), &config);
                    let _ = ready.send(connection).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        });
    }
}

#[async_trait]
impl Transport for TcpTransport {
    async fn accept(&self) -> Option<BoxConnection> {
        let mut closed = self.closed.subscribe();
        #[cfg_attr(not(feature = "tls"), allow(clippy::infallible_destructuring_match))]
        let listener = match &self.incoming {
            Incoming::Plain(listener) => listener,
            #[cfg(feature = "tls")]
            Incoming::Tls(incoming) => {
                let mut incoming = incoming.lock().await;
                if *closed.borrow() {
                    return None;
                }
                return tokio::select! {
                    connection = incoming.recv() => connection.map(|c| Box::new(c) as BoxConnection),
                    _ = closed.changed() => None,
                };
            }
        };
        loop {
            if *closed.borrow() {
                return None;
            }
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = closed.changed() => return None,
            };
            match accepted {
                Ok((stream, _)) => {
                    tune(&stream, &self.config);
                    match TcpConnection::new(stream, &self.config) {
                        Ok(conn) => return Some(Box::new(conn)),
                        Err(e) => tracing::debug!(error = %e, "dropped a connection at setup"),
                    }
                }
                Err(e) => {
                    // Out of file descriptors, or the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
