//! `ceiling`: the best-case raw WebSocket broadcast, the reference the load generator
//! divides every other system's figures by. Every text message a client sends is
//! forwarded, as the same bytes (`Utf8Bytes` is reference-counted: no copy per
//! recipient), to every other connected client. No protocol, no storage, no checks.
//!
//! ```sh
//! ceiling --listen 127.0.0.1:0   # prints "ceiling listening on ws://ADDR"
//! ```

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Messages written per flush at most.
const BATCH: usize = 256;

/// Every connection's outgoing queue, by connection id.
type Registry = Arc<RwLock<HashMap<u64, mpsc::UnboundedSender<Utf8Bytes>>>>;

/// Small buffers, as a server holding 10,000+ connections would choose: a 4 KiB read
/// buffer (tungstenite's default is 128 KiB, zero-filled before each read), and frames
/// coalesced up to 8 KiB before a write (the writer flushes after each batch anyway).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(8192)
}

/// The address of `--listen ADDR` (default `127.0.0.1:0`); `None` after printing the usage
/// (`--help`, or anything else it does not know: a server started by mistake would
/// keep running).
fn listen_arg() -> Option<String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_string();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => {
                eprintln!(
                    "usage: ceiling [--listen ADDR]   (default 127.0.0.1:0; prints \"ceiling listening on ws://ADDR\")"
                );
                return None;
            }
        }
    }
    Some(listen)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(listen) = listen_arg() else {
        std::process::exit(2);
    };
    let listener = TcpListener::bind(listen).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ceiling listening on ws://{}", listener.local_addr()?)?;
        out.flush()?;
    }
    let registry: Registry = Arc::default();
    let next_id = AtomicU64::new(0);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connection(stream, id, registry.clone()));
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}

/// One connection: the reader runs here; the writer in its own task, so that a write
/// wake-up never polls the reader.
async fn connection(stream: TcpStream, id: u64, registry: Registry) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
    else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    if let Ok(mut registry) = registry.write() {
        registry.insert(id, tx);
    }
    let writer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            for text in batch.drain(..) {
                if sink.feed(Message::Text(text)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = source.next().await {
        match message {
            Message::Text(text) => {
                if let Ok(registry) = registry.read() {
                    for (&other, queue) in registry.iter() {
                        if other != id {
                            let _ = queue.send(text.clone());
                        }
                    }
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    if let Ok(mut registry) = registry.write() {
        registry.remove(&id);
    }
    writer.abort();
}
