//! The ceiling server's client side: a plain WebSocket at `/`; every text message is a
//! payload, forwarded as is to every other client.

use std::net::SocketAddr;

use crate::conn::Conn;

/// Opens a WebSocket to the ceiling server; it is in the broadcast once accepted.
pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
    Conn::ws(addr, "/").await
}
