//! The WebSocket client handshake, by hand: the HTTP upgrade request with a random
//! `Sec-WebSocket-Key`, the response head read up to its blank line, a `101` status and
//! the right `Sec-WebSocket-Accept` checked. Bytes the server sent past the head (a
//! first frame) are handed back, not lost.

use anyhow::{Context as _, bail, ensure};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The longest response head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The upgrade request for `path` on `host` with `key`.
fn request(host: &str, path: &str, key: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Checks a response head (without its blank line) for a `101` and the accept value of
/// `key`.
fn check_head(head: &str, key: &str) -> anyhow::Result<()> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut parts = status.split(' ');
    ensure!(
        parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) && parts.next() == Some("101"),
        "the server did not switch protocols: {status:?}"
    );
    let expected = derive_accept_key(key.as_bytes());
    let accept = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, value)| value.trim())
        .context("no Sec-WebSocket-Accept in the 101 response")?;
    ensure!(
        accept == expected,
        "Sec-WebSocket-Accept {accept:?} does not match the key (expected {expected:?})"
    );
    Ok(())
}

/// Upgrades `stream` to a WebSocket at `path` (`host` goes in the `Host` header). Returns
/// the bytes read past the response head: the start of the first frames, if any.
pub(crate) async fn client(
    stream: &mut TcpStream,
    host: &str,
    path: &str,
) -> anyhow::Result<Vec<u8>> {
    let key = generate_key();
    stream
        .write_all(request(host, path, &key).as_bytes())
        .await
        .context("writing the upgrade request")?;
    let mut buf = Vec::with_capacity(1024);
    let mut searched = 0;
    let head_end = loop {
        if let Some(at) = buf[searched..].windows(4).position(|w| w == b"\r\n\r\n") {
            break searched + at;
        }
        searched = buf.len().saturating_sub(3);
        ensure!(
            buf.len() < MAX_HEAD_BYTES,
            "the response head is over {MAX_HEAD_BYTES} bytes"
        );
        buf.reserve(1024);
        if stream
            .read_buf(&mut buf)
            .await
            .context("reading the upgrade response")?
            == 0
        {
            bail!(
                "the server closed the connection during the upgrade (after {:?})",
                String::from_utf8_lossy(&buf)
            );
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("a response head not UTF-8")?;
    check_head(head, &key)?;
    Ok(buf.split_off(head_end + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_a_valid_upgrade() {
        let r = request("127.0.0.1:80", "/ws", "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(r.starts_with("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:80\r\n"));
        assert!(r.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(r.ends_with("\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    }

    #[test]
    fn checks_the_status_and_the_accept_value() {
        // RFC 6455's example key and accept value.
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nsec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        check_head(ok, key).unwrap();
        assert!(check_head(&ok.replace("s3pP", "XXXX"), key).is_err());
        assert!(
            check_head(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket",
                key
            )
            .is_err()
        );
        assert!(check_head("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0", key).is_err());
    }

    #[tokio::test]
    async fn keeps_the_bytes_past_the_head() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            while !req.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                s.read_exact(&mut byte).await.unwrap();
                req.push(byte[0]);
            }
            let req = String::from_utf8(req).unwrap();
            let key = req
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap();
            let mut reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            )
            .into_bytes();
            reply.extend_from_slice(b"\x81\x02hi");
            // Head and first frame in one write, as a server answering at once would.
            s.write_all(&reply).await.unwrap();
            s
        });
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let rest = client(&mut stream, &addr.to_string(), "/").await.unwrap();
        assert_eq!(rest, b"\x81\x02hi");
        drop(server.await.unwrap());
    }
}
