//! Opening a connection from a `--server` address: `tcp://host:port` (length-prefixed
//! frames, `im-transport-tcp`) or `ws://host:port/ws` (WebSocket, `im-transport-ws`).

use std::time::Duration;

use im_core::client::{Client, ClientConfig, Events};
use im_transport_tcp::TcpConfig;

use crate::error::CliError;

/// Where to connect when neither `--server`, `IM_SERVER` nor a saved session says.
pub(crate) const DEFAULT_SERVER: &str = "tcp://127.0.0.1:7100";

/// How long opening the socket and the `hello` exchange may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one request may wait for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest frame accepted from the server. The server keeps its frames within its
/// own `max_frame_bytes` (64 KiB by default; history pages are trimmed to fit), but it
/// only says how large that is in the `hello` reply, and the transports need a limit
/// before that. A frame over the limit would end the connection without a word, so the
/// client takes anything a server could plausibly be configured to send; the server
/// refuses oversized requests itself.
const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// A parsed `--server` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// `host:port` for the TCP transport.
    Tcp(String),
    /// The full `ws://` URL of the WebSocket endpoint.
    Ws(String),
}

impl Address {
    pub(crate) fn parse(server: &str) -> Result<Address, CliError> {
        let server = server.trim();
        if let Some(rest) = server.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() || !rest.contains(':') {
                return Err(CliError::invalid(format!(
                    "{server}: expected tcp://host:port"
                )));
            }
            Ok(Address::Tcp(rest.to_owned()))
        } else if server.starts_with("ws://") {
            Ok(Address::Ws(server.to_owned()))
        } else if server.starts_with("wss://") {
            Err(CliError::invalid(format!(
                "{server}: this build has no TLS; reach the server over ws:// (or tcp://), \
                 or through a local TLS tunnel"
            )))
        } else {
            Err(CliError::invalid(format!(
                "{server}: expected tcp://host:port or ws://host:port/ws"
            )))
        }
    }
}

/// Connects to `server` and exchanges `hello`. Not logged in yet.
pub(crate) async fn open(server: &str) -> Result<(Client, Events), CliError> {
    let address = Address::parse(server)?;
    let config = ClientConfig {
        request_timeout: REQUEST_TIMEOUT,
        name: concat!("chat-cli/", env!("CARGO_PKG_VERSION")).to_owned(),
        ..ClientConfig::default()
    };
    let unreachable = |e: &dyn std::fmt::Display| {
        CliError::unavailable(format!("cannot connect to {server}: {e}"))
    };
    let connecting = async {
        match address {
            Address::Tcp(addr) => {
                let tcp = TcpConfig::default().with_max_frame_bytes(MAX_FRAME_BYTES);
                let conn = im_transport_tcp::connect(addr.as_str(), &tcp)
                    .await
                    .map_err(|e| unreachable(&e))?;
                Ok(Client::connect_with(conn, config).await?)
            }
            Address::Ws(url) => {
                let conn = im_transport_ws::connect(&url, MAX_FRAME_BYTES)
                    .await
                    .map_err(|e| unreachable(&e))?;
                Ok(Client::connect_with(conn, config).await?)
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(result) => result,
        Err(_) => Err(unreachable(&"timed out")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Address::parse("tcp://127.0.0.1:7100").unwrap(),
            Address::Tcp("127.0.0.1:7100".to_owned())
        );
        assert_eq!(
            Address::parse("ws://localhost:8080/ws").unwrap(),
            Address::Ws("ws://localhost:8080/ws".to_owned())
        );
        for bad in ["127.0.0.1:7100", "tcp://", "tcp://host", "http://x/ws", ""] {
            assert_eq!(Address::parse(bad).unwrap_err().code, "invalid", "{bad}");
        }
    }
}
