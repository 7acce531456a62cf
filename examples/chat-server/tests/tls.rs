//! TLS on both listeners with a certificate made when the test runs: `wss://` and TLS
//! over TCP serve a client that trusts its authority and no other, and a renewed
//! certificate is served after SIGHUP or a change of its files, while a broken one is not.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use im_core::client::Client;
use im_transport_tcp::TcpConfig;
use im_transport_ws::rustls;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A certificate authority of its own.
fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Writes a certificate for `localhost` and 127.0.0.1 signed by `ca`, and its key.
fn issue(ca: &CertifiedIssuer<'static, KeyPair>, dir: &Path) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    // Written whole at once each, as a renewal tool would (rename over the old file).
    for (name, text) in [("cert.pem", cert.pem()), ("key.pem", key.serialize_pem())] {
        let fresh = dir.join(format!("{name}.new"));
        std::fs::write(&fresh, text).unwrap();
        std::fs::rename(&fresh, dir.join(name)).unwrap();
    }
}

/// A client that trusts `ca` alone.
fn trusting(ca: &CertifiedIssuer<'static, KeyPair>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.as_ref().der().to_vec()))
        .unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// Starts the server with the certificate in `dir`; returns its TLS TCP and HTTPS
/// addresses.
fn start(dir: &Path) -> (Server, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .current_dir(dir)
        .args([
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--database",
            "memory",
        ])
        .args([
            "--hash-memory-kib",
            "1024",
            "--hash-iterations",
            "1",
            "--log",
            "warn",
        ])
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut address = |scheme: &str| -> SocketAddr {
        let line = lines.next().unwrap().unwrap();
        line.rsplit(scheme)
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {scheme} address in {line:?}"))
    };
    let tcp = address("tls://");
    let https = address("https://");
    (Server(child), tcp, https)
}

/// Whether a TLS handshake with `addr` succeeds for a client with `tls`.
async fn handshake(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> bool {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    im_transport_ws::tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_tls_tcp_serve_clients_that_trust_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority("test authority");
    issue(&ca, dir.path());
    let (_server, tcp, https) = start(dir.path());
    let tls = trusting(&ca);

    let socket = im_transport_ws::connect_tls(
        &format!("wss://localhost:{}/ws", https.port()),
        64 * 1024,
        tls.clone(),
    )
    .await
    .expect("wss:// connects");
    let (web, _events) = Client::connect(socket).await.unwrap();
    web.register("tess", "correct horse", "Tess").await.unwrap();
    web.login("tess", "correct horse", "browser").await.unwrap();

    let socket =
        im_transport_tcp::connect_tls(tcp, "localhost", tls.clone(), &TcpConfig::default())
            .await
            .expect("TLS over TCP connects");
    let (cli, _events) = Client::connect(socket).await.unwrap();
    let session = cli
        .login("tess", "correct horse", "terminal")
        .await
        .unwrap();
    assert_eq!(session.user.username, "tess");

    // The HTTP API over HTTPS, by hand: a request line, and the status line back.
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio::net::TcpStream::connect(https).await.unwrap();
    let mut stream = im_transport_ws::tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, stream)
        .await
        .expect("the certificate names 127.0.0.1 too");
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream
        .write_all(b"GET /openapi.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap_or_default();
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply[..reply.len().min(200)])
    );

    // Plain text on a TLS port gets nowhere; neither does a client that trusts another
    // authority.
    assert!(
        im_transport_ws::connect(&format!("ws://127.0.0.1:{}/ws", https.port()), 64 * 1024)
            .await
            .is_err()
    );
    let stranger = trusting(&authority("another authority"));
    assert!(!handshake(https, stranger.clone()).await);
    assert!(!handshake(tcp, stranger).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = authority("first authority");
    issue(&first, dir.path());
    let (server, tcp, https) = start(dir.path());
    assert!(handshake(https, trusting(&first)).await);

    // Renewed, then SIGHUP: new connections get the new certificate on both listeners.
    let second = authority("second authority");
    assert!(!handshake(https, trusting(&second)).await);
    issue(&second, dir.path());
    let hup = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(3);
    while !handshake(https, trusting(&second)).await {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(handshake(tcp, trusting(&second)).await);
    assert!(!handshake(https, trusting(&first)).await);

    // A broken file is not taken: the certificate in use stays.
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(handshake(https, trusting(&second)).await);

    // Renewed without a signal: the change of the files is noticed (checked every 5 s).
    let third = authority("third authority");
    issue(&third, dir.path());
    let deadline = Instant::now() + Duration::from_secs(12);
    while !handshake(https, trusting(&third)).await {
        assert!(
            Instant::now() < deadline,
            "the changed files were not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(handshake(tcp, trusting(&third)).await);
}

#[test]
fn a_key_that_does_not_fit_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    issue(&authority("an authority"), dir.path());
    let other = KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("other.pem"), other.serialize_pem()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .current_dir(dir.path())
        .args(["--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0"])
        .args(["--tls-cert", "cert.pem", "--tls-key", "other.pem"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not fit"), "{stderr}");
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["cert.pem", "key.pem", "other.pem"],
        "no database, no uploads"
    );
}
