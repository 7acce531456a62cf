//! TLS for both listeners (`--tls-cert`, `--tls-key`), with the certificate reloaded on
//! SIGHUP and when its files change: a renewed certificate (certbot, cert-manager) is
//! picked up without a restart, by new connections; open ones keep theirs.
//!
//! One [`Certificates`] serves the HTTPS and the TLS TCP listener. A reload that fails
//! (a half-written file, a key that does not match) keeps the certificate in use and
//! says why in the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use im_transport_ws::rustls;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files are looked at for a change.
const POLL: Duration = Duration::from_secs(5);

/// The certificate in use and where it came from.
#[derive(Debug)]
pub(crate) struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times at the last load.
    loaded: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl Certificates {
    /// Loads the chain and key, or says what is wrong with them.
    pub(crate) fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<Certificates>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = (modified(cert), modified(key));
        let current = read(cert, key, &provider)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(current)),
            loaded: Mutex::new(stamps),
        }))
    }

    /// A server config that presents the current certificate, with these ALPN protocols.
    pub(crate) fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// Reads the files again; the certificate in use stays if they do not load.
    pub(crate) fn reload(&self) -> anyhow::Result<()> {
        let stamps = (modified(&self.cert), modified(&self.key));
        let fresh = read(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        Ok(())
    }

    /// Whether a file changed since the last load.
    fn changed(&self) -> bool {
        let now = (modified(&self.cert), modified(&self.key));
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) != now
    }

    /// Reloads on SIGHUP, and when a file's modification time changes (checked every
    /// five seconds), until the process ends. The SIGHUP handler is in place when this
    /// returns (until then, SIGHUP would end the process): call it before the server
    /// says it is listening.
    pub(crate) fn watch(self: Arc<Self>) {
        #[cfg(unix)]
        let mut hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        tokio::spawn(async move {
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hangups.as_mut() {
                        Some(signal) => {
                            signal.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<()>();
                let why = tokio::select! {
                    () = hangup => "SIGHUP",
                    () = tokio::time::sleep(POLL) => {
                        if !self.changed() {
                            continue;
                        }
                        "the files changed"
                    }
                };
                match self.reload() {
                    Ok(()) => {
                        tracing::info!(reason = why, cert = %self.cert.display(), "TLS certificate reloaded")
                    }
                    Err(e) => tracing::warn!(
                        reason = why,
                        error = format!("{e:#}"),
                        "TLS certificate not reloaded; the one in use stays"
                    ),
                }
            }
        });
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// The chain (leaf first) and its key from PEM files, checked to belong together.
fn read(cert: &Path, key: &Path, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificates in --tls-cert {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "--tls-cert {} holds no certificate",
        cert.display()
    );
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key in --tls-key {}", key.display()))?;
    CertifiedKey::from_der(chain, private, provider).with_context(|| {
        format!(
            "--tls-key {} does not fit --tls-cert {}",
            key.display(),
            cert.display()
        )
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
