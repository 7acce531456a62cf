//! Sockets: source addresses spread over 127.0.0.1–127.0.0.8, TCP_NODELAY.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use tokio::net::{TcpSocket, TcpStream};

/// Loopback source addresses the client sockets are spread over (each has its own
/// ephemeral-port range and TIME_WAIT table entries).
const SOURCE_ADDRESSES: u8 = 8;

/// The next source address, round-robin, shared by every connection of the process.
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// The source address for the `n`-th connection of shard `shard`.
fn source_for(n: usize) -> IpAddr {
    let last = (n % SOURCE_ADDRESSES as usize) as u8 + 1;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Opens a TCP connection to `addr` from the next loopback source address, with
/// TCP_NODELAY. A non-loopback target is refused: this tool only measures local servers.
pub(crate) async fn connect_tcp(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the load generator only targets loopback addresses, not {addr}"
    );
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed);
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    let source = if addr.is_ipv4() {
        source_for(n)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding to {source}:0"))?;
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr} from {source}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
