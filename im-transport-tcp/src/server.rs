use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use im_core::transport::{BoxConnection, Transport};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;

use crate::{TcpConfig, TcpConnection};

/// A TCP listener that hands connections to the engine: `engine.serve(&transport)`.
#[derive(Debug)]
pub struct TcpTransport {
    listener: TcpListener,
    config: TcpConfig,
    local_addr: SocketAddr,
    closed: watch::Sender<bool>,
}

impl TcpTransport {
    /// Binds a listener (use port 0 for any free port).
    pub async fn bind(addr: impl ToSocketAddrs, config: TcpConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(TcpTransport {
            listener,
            config,
            local_addr,
            closed: watch::channel(false).0,
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

#[async_trait]
impl Transport for TcpTransport {
    async fn accept(&self) -> Option<BoxConnection> {
        let mut closed = self.closed.subscribe();
        loop {
            if *closed.borrow() {
                return None;
            }
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = closed.changed() => return None,
            };
            match accepted {
                Ok((stream, _)) => {
                    let sock = socket2::SockRef::from(&stream);
                    if let Some(bytes) = self.config.recv_buffer_bytes {
                        let _ = sock.set_recv_buffer_size(bytes as usize);
                    }
                    if let Some(bytes) = self.config.send_buffer_bytes {
                        let _ = sock.set_send_buffer_size(bytes as usize);
                    }
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
