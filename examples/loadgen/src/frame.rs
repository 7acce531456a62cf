//! Frames on the wire, without a WebSocket library: server frames parsed in place from a
//! byte buffer (WebSocket: unmasked, FIN/opcode byte, 7/16/64-bit length; TCP: a 4-byte
//! big-endian length), and client frames encoded into a buffer (WebSocket: masked).

use std::sync::atomic::{AtomicU64, Ordering};

/// The largest frame a server may send us (ours sends at most 64 KiB by default).
pub(crate) const MAX_FRAME_BYTES: usize = 16 << 20;

/// How frames are delimited on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// WebSocket (RFC 6455), no extensions.
    Ws,
    /// A 4-byte big-endian length, then that many bytes (our TCP transport).
    Len,
}

/// One complete server frame, borrowed from the buffer it was parsed from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A text or binary message (every TCP frame).
    Data(&'a [u8]),
    /// A WebSocket ping, to be answered with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A WebSocket pong.
    Pong,
    /// A WebSocket close.
    Close,
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// A complete frame, and the bytes it took (header included).
    Frame(Frame<'a>, usize),
    /// No complete frame yet: the buffer must hold at least this many bytes first.
    Need(usize),
}

/// A frame these servers never send (or a broken stream): the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameError(pub(crate) String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FrameError {}

/// WebSocket opcodes.
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Parses the frame at the start of `buf`.
pub(crate) fn parse(framing: Framing, buf: &[u8]) -> Result<Step<'_>, FrameError> {
    match framing {
        Framing::Ws => parse_ws(buf),
        Framing::Len => parse_len(buf),
    }
}

fn parse_len(buf: &[u8]) -> Result<Step<'_>, FrameError> {
    let Some(head) = buf.first_chunk::<4>() else {
        return Ok(Step::Need(4));
    };
    let len = u32::from_be_bytes(*head) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError(format!(
            "a {len}-byte frame (over the 16 MiB limit)"
        )));
    }
    let total = 4 + len;
    match buf.get(4..total) {
        Some(payload) => Ok(Step::Frame(Frame::Data(payload), total)),
        None => Ok(Step::Need(total)),
    }
}

fn parse_ws(buf: &[u8]) -> Result<Step<'_>, FrameError> {
    let Some(&[b0, b1]) = buf.first_chunk::<2>() else {
        return Ok(Step::Need(2));
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 {
        return Err(FrameError(format!(
            "a frame with RSV bits {:#04x} (no extension was negotiated)",
            b0 & 0x70
        )));
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError("a masked frame from the server".into()));
    }
    let (len, header) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(Step::Need(4)),
        },
        127 => match buf.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
            Some(bytes) => (u64::from_be_bytes(bytes), 10),
            None => return Ok(Step::Need(10)),
        },
        short => (u64::from(short), 2),
    };
    if len > MAX_FRAME_BYTES as u64 {
        return Err(FrameError(format!(
            "a {len}-byte frame (over the 16 MiB limit)"
        )));
    }
    let total = header + len as usize;
    let Some(payload) = buf.get(header..total) else {
        return Ok(Step::Need(total));
    };
    let frame = match opcode {
        TEXT | BINARY if fin => Frame::Data(payload),
        TEXT | BINARY | CONTINUATION => {
            return Err(FrameError(
                "a fragmented message (continuation frames are not supported)".into(),
            ));
        }
        PING if fin => Frame::Ping(payload),
        PONG if fin => Frame::Pong,
        CLOSE if fin => Frame::Close,
        PING | PONG | CLOSE => return Err(FrameError("a fragmented control frame".into())),
        other => return Err(FrameError(format!("a frame with opcode {other:#x}"))),
    };
    Ok(Step::Frame(frame, total))
}

/// A masking key for the next client frame: not cryptographic (the key only keeps
/// intermediaries from reading frames as HTTP), but different for every frame.
fn mask_key() -> [u8; 4] {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    // splitmix64 over a counter.
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let [a, b, c, d, ..] = z.to_le_bytes();
    [a, b, c, d]
}

/// Appends a masked client WebSocket frame (FIN set) to `out`.
fn encode_ws(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = mask_key();
    out.extend_from_slice(&key);
    out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
}

/// Client frames encoded and waiting to be written.
#[derive(Debug)]
pub(crate) struct OutBuf {
    framing: Framing,
    /// The encoded bytes.
    pub(crate) bytes: Vec<u8>,
}

impl OutBuf {
    /// An empty buffer for frames delimited by `framing`.
    pub(crate) fn new(framing: Framing) -> Self {
        OutBuf {
            framing,
            bytes: Vec::new(),
        }
    }

    /// Queues a text message (TCP: a length-prefixed frame).
    pub(crate) fn text(&mut self, payload: &[u8]) {
        match self.framing {
            Framing::Ws => encode_ws(&mut self.bytes, TEXT, payload),
            Framing::Len => {
                self.bytes
                    .extend_from_slice(&(payload.len() as u32).to_be_bytes());
                self.bytes.extend_from_slice(payload);
            }
        }
    }

    /// Queues the answer to a WebSocket ping.
    pub(crate) fn pong(&mut self, payload: &[u8]) {
        if self.framing == Framing::Ws {
            encode_ws(&mut self.bytes, PONG, payload);
        }
    }

    /// Queues a WebSocket close (status 1000, normal closure); nothing on TCP.
    pub(crate) fn close(&mut self) {
        if self.framing == Framing::Ws {
            encode_ws(&mut self.bytes, CLOSE, &1000u16.to_be_bytes());
        }
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame: unmasked.
    fn server(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![opcode_byte];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 65535 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    /// Unmasks a client frame: (FIN/opcode byte, payload).
    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        assert!(frame[1] & 0x80 != 0, "client frames are masked");
        let (len, at) = match frame[1] & 0x7F {
            126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let key = &frame[at..at + 4];
        let payload = frame[at + 4..at + 4 + len]
            .iter()
            .zip(key.iter().cycle())
            .map(|(b, k)| b ^ k)
            .collect();
        assert_eq!(frame.len(), at + 4 + len);
        (frame[0], payload)
    }

    #[test]
    fn parses_every_length_form_and_asks_for_more() {
        for len in [0, 5, 125, 126, 1000, 65535, 65536, 200_000] {
            let payload = vec![b'x'; len];
            let bytes = server(0x81, &payload);
            assert_eq!(
                parse(Framing::Ws, &bytes),
                Ok(Step::Frame(Frame::Data(&payload), bytes.len()))
            );
            // Every strict prefix asks for more, never for fewer bytes than it has.
            for cut in [0, 1, 2, 3, bytes.len() / 2, bytes.len() - 1] {
                if cut >= bytes.len() {
                    continue;
                }
                match parse(Framing::Ws, &bytes[..cut]) {
                    Ok(Step::Need(n)) => assert!(n > cut && n <= bytes.len(), "{len} {cut} {n}"),
                    other => panic!("{len} cut at {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn parses_frames_back_to_back_and_control_frames() {
        let mut bytes = server(0x81, b"one");
        bytes.extend(server(0x89, b"p"));
        bytes.extend(server(0x82, b"two"));
        bytes.extend(server(0x8A, b""));
        bytes.extend(server(0x88, &1000u16.to_be_bytes()));
        let mut at = 0;
        let mut seen = Vec::new();
        while let Ok(Step::Frame(frame, len)) = parse(Framing::Ws, &bytes[at..]) {
            seen.push(format!("{frame:?}"));
            at += len;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(
            seen,
            [
                "Data([111, 110, 101])",
                "Ping([112])",
                "Data([116, 119, 111])",
                "Pong",
                "Close"
            ]
        );
    }

    #[test]
    fn refuses_what_these_servers_never_send() {
        // A text frame without FIN, then a continuation frame.
        assert!(parse(Framing::Ws, &server(0x01, b"half")).is_err());
        assert!(parse(Framing::Ws, &server(0x80, b"rest")).is_err());
        // RSV1 (compression), a masked server frame, an unknown opcode.
        assert!(parse(Framing::Ws, &server(0xC1, b"x")).is_err());
        assert!(parse(Framing::Ws, &[0x81, 0x81, 1, 2, 3, 4, b'x']).is_err());
        assert!(parse(Framing::Ws, &server(0x83, b"x")).is_err());
        // Over the size limit, known from the header alone.
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(parse(Framing::Ws, &huge).is_err());
    }

    #[test]
    fn length_prefixed_frames() {
        let mut bytes = 3u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        bytes.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            parse(Framing::Len, &bytes),
            Ok(Step::Frame(Frame::Data(b"abc"), 7))
        );
        assert_eq!(
            parse(Framing::Len, &bytes[7..]),
            Ok(Step::Frame(Frame::Data(b""), 4))
        );
        assert_eq!(parse(Framing::Len, &bytes[..2]), Ok(Step::Need(4)));
        assert_eq!(parse(Framing::Len, &bytes[..5]), Ok(Step::Need(7)));
        assert!(parse(Framing::Len, &u32::MAX.to_be_bytes()).is_err());
    }

    #[test]
    fn client_frames_are_masked_and_round_trip() {
        for len in [0, 1, 125, 126, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = OutBuf::new(Framing::Ws);
            out.text(&payload);
            assert_eq!(unmask(&out.bytes), (0x81, payload.clone()));
        }
        let mut out = OutBuf::new(Framing::Ws);
        out.pong(b"hi");
        assert_eq!(unmask(&out.bytes), (0x8A, b"hi".to_vec()));
        let mut out = OutBuf::new(Framing::Ws);
        out.close();
        assert_eq!(unmask(&out.bytes), (0x88, vec![0x03, 0xE8]));
        let mut out = OutBuf::new(Framing::Len);
        out.text(b"{}");
        out.pong(b"ignored on TCP");
        out.close();
        assert_eq!(out.bytes, [0, 0, 0, 2, b'{', b'}']);
        assert_ne!(mask_key(), mask_key());
    }
}
