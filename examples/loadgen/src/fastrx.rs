//! The fast receive path: a socket read with one large read (up to 64 KiB) into a
//! scratch buffer shared by every connection of the thread, every complete frame in it
//! parsed in place (no allocation, no UTF-8 check, no copy) and handed to the caller
//! with one timestamp for the whole read: every frame in it arrived at that moment.
//!
//! The generator holds up to ~19,000 connections, so a connection keeps no read buffer
//! of its own: only `carry`, the bytes of a frame cut by the end of a read (usually
//! empty, at most one frame), copied in front of the next read. The scratch buffer is
//! borrowed only inside one poll, never across an `.await`.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

use crate::clock;
use crate::frame::{self, Frame, FrameError, Framing, OutBuf, Step};

/// Bytes asked for per read.
const READ_BYTES: usize = 64 * 1024;

thread_local! {
    /// The scratch buffer of every read on this thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The server closed it (a WebSocket close, or the end of the stream).
    Closed,
    /// A read or write failed (the connection broke: counted as closed, like `Closed`).
    Io,
    /// The server sent a frame these servers never send.
    Protocol(FrameError),
}

/// A connection read through the fast path.
#[derive(Debug)]
pub(crate) struct FastRx {
    stream: TcpStream,
    framing: Framing,
    /// The start of a frame the last read cut off.
    carry: Vec<u8>,
    /// Whether `carry` may hold complete frames not handed out yet (read during set-up).
    carry_unparsed: bool,
    /// Frames to write (pongs, pings), written by [`FastRx::flush`].
    pub(crate) out: OutBuf,
}

/// Hands every complete frame at the start of `buf` out: data frames to `on_data`,
/// pings answered in `out`. Returns the bytes used and the bytes the next frame needs
/// (`Err` on a close or a broken frame).
fn frames(
    framing: Framing,
    buf: &[u8],
    now: u64,
    out: &mut OutBuf,
    on_data: &mut impl FnMut(u64, &[u8], &mut OutBuf),
) -> Result<(usize, usize), End> {
    let mut at = 0;
    loop {
        match frame::parse(framing, &buf[at..]).map_err(End::Protocol)? {
            Step::Frame(frame, len) => {
                at += len;
                match frame {
                    Frame::Data(payload) => on_data(now, payload, out),
                    Frame::Ping(payload) => out.pong(payload),
                    Frame::Pong => {}
                    Frame::Close => return Err(End::Closed),
                }
            }
            Step::Need(need) => return Ok((at, need)),
        }
    }
}

impl FastRx {
    /// Reads `stream`, whose first bytes (read during set-up) are `leftover`.
    pub(crate) fn new(stream: TcpStream, framing: Framing, leftover: &[u8]) -> Self {
        FastRx {
            stream,
            framing,
            carry: leftover.to_vec(),
            carry_unparsed: !leftover.is_empty(),
            out: OutBuf::new(framing),
        }
    }

    /// Waits for data, reads once, and calls `on_data(now, payload, out)` for every
    /// complete data frame read, `now` being the time of the read (`clock::now_ns`).
    /// Pings are answered in `out`; write it with [`FastRx::flush`].
    pub(crate) async fn read(
        &mut self,
        on_data: &mut impl FnMut(u64, &[u8], &mut OutBuf),
    ) -> Result<(), End> {
        let framing = self.framing;
        if self.carry_unparsed {
            self.carry_unparsed = false;
            let carry = std::mem::take(&mut self.carry);
            let (used, _) = frames(framing, &carry, clock::now_ns(), &mut self.out, on_data)?;
            self.carry = carry[used..].to_vec();
            if used > 0 {
                return Ok(());
            }
        }
        std::future::poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|scratch| {
                let kept = self.carry.len();
                // Room for a whole read, or for the rest of a frame longer than that.
                let want = kept + READ_BYTES;
                if scratch.len() < want {
                    scratch.resize(want, 0);
                }
                let mut read_buf = ReadBuf::new(&mut scratch[kept..]);
                match Pin::new(&mut self.stream).poll_read(cx, &mut read_buf) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(End::Io)),
                    Poll::Ready(Ok(())) => {}
                }
                let n = read_buf.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(End::Closed));
                }
                let now = clock::now_ns();
                scratch[..kept].copy_from_slice(&self.carry);
                let filled = &scratch[..kept + n];
                let (used, need) = match frames(framing, filled, now, &mut self.out, on_data) {
                    Ok(done) => done,
                    Err(end) => return Poll::Ready(Err(end)),
                };
                self.carry.clear();
                self.carry.extend_from_slice(&filled[used..]);
                // A frame longer than a read: make room for all of it in the carry, so
                // that the next reads only append.
                if need > READ_BYTES {
                    self.carry.reserve(need);
                }
                Poll::Ready(Ok(()))
            })
        })
        .await
    }

    /// Writes the frames waiting in `out`.
    pub(crate) async fn flush(&mut self) -> Result<(), End> {
        if !self.out.is_empty() {
            self.stream
                .write_all(&self.out.bytes)
                .await
                .map_err(|_| End::Io)?;
            self.out.bytes.clear();
        }
        Ok(())
    }

    /// Closes politely (a WebSocket close, or shutting the write side), reading until the
    /// server's side of it for up to 2 s.
    pub(crate) async fn close(mut self) {
        let drain = async move {
            self.out.close();
            if self.flush().await.is_err() {
                return;
            }
            let _ = self.stream.shutdown().await;
            while self.read(&mut |_, _, _| {}).await.is_ok() {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpListener;

    use super::*;

    /// An unmasked server frame.
    fn server_frame(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![opcode_byte];
        if payload.len() < 126 {
            out.push(payload.len() as u8);
        } else {
            out.push(126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn frames_cut_anywhere_arrive_whole_and_pings_are_answered() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for i in 0..300usize {
            let payload = vec![b'a' + (i % 26) as u8; 1 + i * 7 % 400];
            bytes.extend(server_frame(0x81, &payload));
            expected.push(payload);
            if i == 150 {
                bytes.extend(server_frame(0x89, b"pp"));
            }
        }
        bytes.extend(server_frame(0x88, &[0x03, 0xE8]));
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Odd-sized writes with pauses: frames are cut at every point.
            for chunk in bytes.chunks(997) {
                s.write_all(chunk).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let mut answer = vec![0; 8];
            s.read_exact(&mut answer).await.unwrap();
            answer
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut rx = FastRx::new(stream, Framing::Ws, &[]);
        let mut got = Vec::new();
        let end = loop {
            match rx.read(&mut |_, data, _| got.push(data.to_vec())).await {
                Ok(()) => rx.flush().await.unwrap(),
                Err(end) => break end,
            }
        };
        assert!(matches!(end, End::Closed), "{end:?}");
        assert_eq!(got, expected);
        let pong = server.await.unwrap();
        assert_eq!(pong[0], 0x8A, "a pong");
        assert_eq!(pong[1], 0x80 | 2, "masked, two bytes");
        let key = &pong[2..6];
        assert_eq!([pong[6] ^ key[0], pong[7] ^ key[1]], *b"pp");
    }

    #[tokio::test]
    async fn leftover_frames_from_the_set_up_come_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"abc").await.unwrap();
            s.write_all(&4u32.to_be_bytes()).await.unwrap();
            s.write_all(b"late").await.unwrap();
            s
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        // Read during the set-up: a whole frame, and the header of one cut short.
        let mut leftover = 5u32.to_be_bytes().to_vec();
        leftover.extend_from_slice(b"early");
        leftover.extend_from_slice(&3u32.to_be_bytes());
        let mut rx = FastRx::new(stream, Framing::Len, &leftover);
        let mut got = Vec::new();
        rx.read(&mut |_, d, _| got.push(d.to_vec())).await.unwrap();
        assert_eq!(got, [b"early".to_vec()], "handed out before any read");
        while got.len() < 3 {
            rx.read(&mut |_, d, _| got.push(d.to_vec())).await.unwrap();
        }
        assert_eq!(got, [b"early".to_vec(), b"abc".to_vec(), b"late".to_vec()]);
        drop(server.await.unwrap());
    }
}
