//! One client connection carrying text frames: a WebSocket (our own client: the
//! handshake of `handshake.rs`, the frames of `frame.rs`) or TCP with 4-byte big-endian
//! length-prefixed frames. Whole, split into a writing half and a reading half, or
//! handed to the fast receive path (`fastrx.rs`) once set up.
//!
//! This is the convenient path, for set-up and senders: every frame received is handed
//! out as its own `Bytes`. Receivers of pushes use [`Conn::into_fast`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::fastrx::FastRx;
use crate::frame::{self, Frame, Framing, OutBuf, Step};
use crate::handshake;
use crate::net;

/// How frames travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    /// WebSocket, one text message per frame.
    Ws,
    /// TCP, length-prefixed frames.
    Tcp,
}

/// What a reader found, owned.
enum Msg {
    /// A text or binary message.
    Data(Bytes),
    /// A WebSocket ping and its payload.
    Ping(Bytes),
    /// A WebSocket close, or the end of the stream.
    End,
}

/// Reads frames from a stream into its own buffer and hands each out as `Bytes`.
#[derive(Debug)]
struct Reader {
    framing: Framing,
    buf: BytesMut,
}

impl Reader {
    fn new(framing: Framing, leftover: &[u8]) -> Self {
        Reader {
            framing,
            buf: BytesMut::from(leftover),
        }
    }

    /// The next message. A frame these servers never send is an error, printed on
    /// stderr: it means the generator or the server is broken, not that the run is slow.
    async fn next(&mut self, io: &mut (impl AsyncRead + Unpin)) -> anyhow::Result<Msg> {
        loop {
            let need = match frame::parse(self.framing, &self.buf) {
                Ok(Step::Frame(frame, len)) => {
                    let (ping, payload_len) = match frame {
                        Frame::Data(p) => (false, p.len()),
                        Frame::Ping(p) => (true, p.len()),
                        Frame::Pong => {
                            let _ = self.buf.split_to(len);
                            continue;
                        }
                        Frame::Close => return Ok(Msg::End),
                    };
                    let payload = self.buf.split_to(len).freeze().slice(len - payload_len..);
                    return Ok(if ping {
                        Msg::Ping(payload)
                    } else {
                        Msg::Data(payload)
                    });
                }
                Ok(Step::Need(n)) => n,
                Err(e) => {
                    eprintln!("loadgen: PROTOCOL ERROR from the server: {e}");
                    return Err(e.into());
                }
            };
            self.buf.reserve((need - self.buf.len()).max(4096));
            if io.read_buf(&mut self.buf).await? == 0 {
                return Ok(Msg::End);
            }
        }
    }
}

/// A connection, whole.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    reader: Reader,
    out: OutBuf,
}

impl Conn {
    /// Opens a WebSocket to `ws://addr{path}`.
    pub(crate) async fn ws(addr: SocketAddr, path: &str) -> anyhow::Result<Self> {
        let mut stream = net::connect_tcp(addr).await?;
        let leftover = handshake::client(&mut stream, &addr.to_string(), path)
            .await
            .with_context(|| format!("WebSocket handshake with ws://{addr}{path}"))?;
        Ok(Conn {
            stream,
            reader: Reader::new(Framing::Ws, &leftover),
            out: OutBuf::new(Framing::Ws),
        })
    }

    /// Opens a length-prefixed TCP connection to `addr`.
    pub(crate) async fn tcp(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Conn {
            stream: net::connect_tcp(addr).await?,
            reader: Reader::new(Framing::Len, &[]),
            out: OutBuf::new(Framing::Len),
        })
    }

    /// Queues a frame without writing it.
    pub(crate) fn feed(&mut self, text: &str) {
        self.out.text(text.as_bytes());
    }

    /// Writes out whatever was fed.
    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        self.stream.write_all(&self.out.bytes).await?;
        self.out.bytes.clear();
        Ok(())
    }

    /// Sends one frame now.
    pub(crate) async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.feed(text);
        self.flush().await
    }

    /// The next frame; `None` once the connection is closed (or broken). WebSocket pings
    /// are answered.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.reader.next(&mut self.stream).await.ok()? {
                Msg::Data(frame) => return Some(frame),
                Msg::Ping(payload) => {
                    self.out.pong(&payload);
                    self.flush().await.ok()?;
                }
                Msg::End => return None,
            }
        }
    }

    /// Closes politely (a WebSocket close, or shutting the write side), waiting up to 2 s
    /// for the server's side of it.
    pub(crate) async fn close(mut self) {
        let drain = async move {
            self.out.close();
            if self.flush().await.is_err() {
                return;
            }
            let _ = self.stream.shutdown().await;
            while let Ok(Msg::Data(_) | Msg::Ping(_)) = self.reader.next(&mut self.stream).await {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    /// Splits into a writing half and a reading half, to be used by different tasks.
    pub(crate) fn split(self) -> (ConnTx, ConnRx) {
        debug_assert!(self.out.is_empty(), "split with frames not written");
        let (read, write) = self.stream.into_split();
        (
            ConnTx {
                half: write,
                out: self.out,
            },
            ConnRx {
                half: read,
                reader: self.reader,
            },
        )
    }

    /// Hands the connection to the fast receive path, with whatever it had read but not
    /// yet handed out.
    pub(crate) fn into_fast(self) -> FastRx {
        debug_assert!(self.out.is_empty(), "into_fast with frames not written");
        FastRx::new(self.stream, self.reader.framing, &self.reader.buf)
    }
}

/// The writing half of a [`Conn`].
#[derive(Debug)]
pub(crate) struct ConnTx {
    half: OwnedWriteHalf,
    out: OutBuf,
}

impl ConnTx {
    /// Queues a frame without writing it.
    pub(crate) fn feed(&mut self, text: &str) {
        self.out.text(text.as_bytes());
    }

    /// Writes out whatever was fed.
    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        self.half.write_all(&self.out.bytes).await?;
        self.out.bytes.clear();
        Ok(())
    }

    /// Sends a close (WebSocket) and shuts the write side.
    pub(crate) async fn close(&mut self) {
        self.out.close();
        if self.flush().await.is_ok() {
            let _ = self.half.shutdown().await;
        }
    }
}

/// The reading half of a [`Conn`].
#[derive(Debug)]
pub(crate) struct ConnRx {
    half: OwnedReadHalf,
    reader: Reader,
}

impl ConnRx {
    /// The next frame; `None` once the connection is closed (or broken). WebSocket pings
    /// are skipped: this half cannot answer them, and none of the servers measured here
    /// sends them (socket.io pings are Engine.IO text frames, `2`).
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.reader.next(&mut self.half).await.ok()? {
                Msg::Data(frame) => return Some(frame),
                Msg::Ping(_) => {}
                Msg::End => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;
    use crate::frame::OutBuf;

    /// Our client against tungstenite's server (which checks masking and framing): set-up
    /// frames through `recv`, then the rest through the fast path, pings answered on both.
    #[tokio::test]
    async fn speaks_websocket_with_tungstenite() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            // Sent before the client says anything: may arrive with the handshake.
            ws.send(Message::text("first")).await.unwrap();
            let hello = ws.next().await.unwrap().unwrap();
            assert_eq!(hello, Message::text("hello, server"));
            ws.send(Message::Ping(b"p1".to_vec().into())).await.unwrap();
            ws.send(Message::text("x".repeat(70_000))).await.unwrap();
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::Pong(b"p1".to_vec().into())
            );
            for i in 0..1000 {
                ws.feed(Message::text(format!("push {i}"))).await.unwrap();
            }
            ws.feed(Message::Ping(b"p2".to_vec().into())).await.unwrap();
            ws.feed(Message::binary(b"last".to_vec())).await.unwrap();
            ws.flush().await.unwrap();
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::Pong(b"p2".to_vec().into())
            );
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("3"));
            assert!(matches!(ws.next().await, Some(Ok(Message::Close(_)))));
            // tungstenite answers the close; the client reads it and ends.
            while ws.next().await.is_some() {}
        });
        let mut conn = Conn::ws(addr, "/").await.unwrap();
        assert_eq!(&conn.recv().await.unwrap()[..], b"first");
        conn.send("hello, server").await.unwrap();
        assert_eq!(conn.recv().await.unwrap().len(), 70_000, "after the ping");
        let mut rx = conn.into_fast();
        let mut got = Vec::new();
        while got.last().map(Vec::as_slice) != Some(b"last") {
            rx.read(&mut |_, data: &[u8], _: &mut OutBuf| got.push(data.to_vec()))
                .await
                .unwrap();
            rx.flush().await.unwrap();
        }
        assert_eq!(got.len(), 1001);
        assert_eq!(got[999], b"push 999");
        rx.out.text(b"3");
        rx.flush().await.unwrap();
        rx.close().await;
        server.await.unwrap();
    }
}
