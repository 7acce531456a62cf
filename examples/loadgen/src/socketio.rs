//! socket.io's client side, by hand: Engine.IO v4 over WebSocket only, the default
//! namespace, events named `m`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::conn::Conn;

/// The Engine.IO ping packet the server sends (answered with [`PONG`]).
pub(crate) const PING: &[u8] = b"2";

/// The Engine.IO pong packet.
pub(crate) const PONG: &str = "3";

/// Opens a socket.io connection: WebSocket upgrade, the server's open packet (`0{...}`),
/// then connecting to the namespace `/` (`40`, answered with `40{...}`).
pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
    let mut conn = Conn::ws(addr, "/socket.io/?EIO=4&transport=websocket").await?;
    tokio::time::timeout(Duration::from_secs(30), async {
        let open = conn.recv().await.context("closed before the open packet")?;
        if !open.starts_with(b"0") {
            bail!(
                "expected an Engine.IO open packet, got {:?}",
                String::from_utf8_lossy(&open)
            );
        }
        conn.send("40").await?;
        loop {
            let frame = conn
                .recv()
                .await
                .context("closed before the namespace connect")?;
            if frame.starts_with(b"40") {
                return Ok(());
            }
            if frame.starts_with(b"44") {
                bail!("namespace refused: {}", String::from_utf8_lossy(&frame));
            }
            if &frame[..] == PING {
                conn.send(PONG).await?;
            }
        }
    })
    .await
    .context("socket.io handshake timed out")??;
    Ok(conn)
}

/// The frame of an `m` event carrying `text` (which needs no JSON escaping).
pub(crate) fn event_frame(text: &str) -> String {
    format!(r#"42["m","{text}"]"#)
}
