//! Opening a connection from a `--server` address: `tcp://host:port` (length-prefixed
//! frames, `im-transport-tcp`) or `ws://host:port/ws` (WebSocket, `im-transport-ws`),
//! and each over TLS: `tls://host:port` and `wss://host/ws`. TLS trusts the system's
//! certificate authorities, and the PEM file in `IM_CA_CERT` besides (a server's own
//! authority, for a test or a private network).

use std::time::Duration;

use im_core::client::{Client, ClientConfig, Events};
use im_transport_tcp::TcpConfig;
use im_transport_tcp::rustls;

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
    /// `host:port` for the TCP transport over TLS.
    Tls(String),
    /// The full `wss://` URL of the WebSocket endpoint.
    Wss(String),
}

impl Address {
    pub(crate) fn parse(server: &str) -> Result<Address, CliError> {
        let server = server.trim();
        for (scheme, make) in [
            ("tcp://", Address::Tcp as fn(String) -> Address),
            ("tls://", Address::Tls),
        ] {
            if let Some(rest) = server.strip_prefix(scheme) {
                let rest = rest.trim_end_matches('/');
                if rest.is_empty() || !rest.contains(':') {
                    return Err(CliError::invalid(format!(
                        "{server}: expected {scheme}host:port"
                    )));
                }
                return Ok(make(rest.to_owned()));
            }
        }
        if server.starts_with("ws://") {
            Ok(Address::Ws(server.to_owned()))
        } else if server.starts_with("wss://") {
            Ok(Address::Wss(server.to_owned()))
        } else {
            Err(CliError::invalid(format!(
                "{server}: expected tcp://host:port, tls://host:port, ws://host:port/ws or wss://host/ws"
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
            Address::Tls(addr) => {
                let tcp = TcpConfig::default().with_max_frame_bytes(MAX_FRAME_BYTES);
                let host = addr
                    .rsplit_once(':')
                    .map_or(addr.as_str(), |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let conn = im_transport_tcp::connect_tls(addr.as_str(), host, trust()?, &tcp)
                    .await
                    .map_err(|e| unreachable(&e))?;
                Ok(Client::connect_with(conn, config).await?)
            }
            Address::Wss(url) => {
                let conn = im_transport_ws::connect_tls(&url, MAX_FRAME_BYTES, trust()?)
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

/// Whom TLS trusts: the system's certificate authorities, and those in the PEM file
/// `IM_CA_CERT` names.
fn trust() -> Result<std::sync::Arc<rustls::ClientConfig>, CliError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = std::env::var_os("IM_CA_CERT") {
        let path = std::path::PathBuf::from(path);
        let certs = CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| CliError::invalid(format!("IM_CA_CERT {}: {e}", path.display())))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| CliError::invalid(format!("IM_CA_CERT {}: {e}", path.display())))?;
        }
    } else if added == 0 {
        return Err(CliError::invalid(
            "no certificate authorities to trust: the system has none installed \
             (ca-certificates), and IM_CA_CERT names no PEM file",
        ));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::new("internal", format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
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
        assert_eq!(
            Address::parse("tls://chat.example.com:7100").unwrap(),
            Address::Tls("chat.example.com:7100".to_owned())
        );
        assert_eq!(
            Address::parse("wss://chat.example.com/ws").unwrap(),
            Address::Wss("wss://chat.example.com/ws".to_owned())
        );
        for bad in [
            "127.0.0.1:7100",
            "tcp://",
            "tcp://host",
            "tls://host",
            "http://x/ws",
            "",
        ] {
            assert_eq!(Address::parse(bad).unwrap_err().code, "invalid", "{bad}");
        }
    }
}
