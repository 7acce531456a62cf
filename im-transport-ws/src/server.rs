//! [`serve`]: an HTTP/1.1 server for the gateway (and whatever routes an app puts beside
//! it) that sets `TCP_NODELAY` on every connection and hands WebSocket sockets to the
//! engine without a layer in between.
//!
//! Apps with a server of their own (warp's, axum's, hyper's) mount
//! [`Gateway::filter`](crate::Gateway::filter) or [`Gateway::service`](crate::Gateway::service)
//! there instead; they should set `TCP_NODELAY` on accepted sockets themselves (chat
//! frames are small, and Nagle's algorithm holds a small write back for up to 40 ms
//! behind a delayed ACK) and put the peer's address in the request as a [`PeerAddr`]
//! for the per-address rate limits.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use warp::Filter;
use warp::reply::Reply;

/// The peer's address, as a request extension. [`serve`] adds it to every request; an
/// app serving the gateway with another server adds it itself (warp's own server needs
/// nothing: the gateway also reads warp's remote address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Serves `routes` on `listener` until `shutdown` resolves, then waits up to `drain` for
/// the HTTP requests in progress. WebSocket sessions are not waited for: they belong to
/// the engine, whose [`shutdown`](im_core::Engine::shutdown) ends them.
///
/// Every accepted socket gets `TCP_NODELAY`; requests carry a [`PeerAddr`].
///
/// ```no_run
/// # async fn demo(gateway: im_transport_ws::Gateway) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let stop = async { let _ = tokio::signal::ctrl_c().await; };
/// im_transport_ws::serve(listener, gateway.filter(), stop, std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub async fn serve<F>(
    listener: TcpListener,
    routes: F,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    serve_with(listener, Handshake::None, routes, shutdown, drain).await;
}

/// [`serve`] over TLS (feature `tls`): HTTPS, and `wss://` for the WebSocket. Each
/// connection's handshake runs in its own task (one slow client holds up nobody) and is
/// dropped after 10 s. Put `http/1.1` in the config's ALPN protocols.
///
/// ```no_run
/// # async fn demo(gateway: im_transport_ws::Gateway, tls: std::sync::Arc<im_transport_ws::rustls::ServerConfig>) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
/// let stop = async { let _ = tokio::signal::ctrl_c().await; };
/// im_transport_ws::serve_tls(listener, tls, gateway.filter(), stop, std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[cfg(feature = "tls")]
pub async fn serve_tls<F>(
    listener: TcpListener,
    tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
    routes: F,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    serve_with(listener, Handshake::Tls(acceptor), routes, shutdown, drain).await;
}

/// How long a client may take over its TLS handshake.
#[cfg(feature = "tls")]
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What happens on a socket before HTTP.
#[derive(Clone)]
enum Handshake {
    None,
    #[cfg(feature = "tls")]
    Tls(tokio_rustls::TlsAcceptor),
}

async fn serve_with<F>(
    listener: TcpListener,
    handshake: Handshake,
    routes: F,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    // Connections in progress, and the signal that asks them to finish what they are
    // doing and close.
    let tracker = TaskTracker::new();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service = warp::service(routes.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(PeerAddr(addr));
            let mut service = service.clone();
            async move { tower_service::Service::call(&mut service, request).await }
        });
        let stopping = stopping.clone();
        let handshake = handshake.clone();
        tracker.spawn(async move {
            match handshake {
                Handshake::None => http(TokioIo::new(stream), service, stopping).await,
                #[cfg(feature = "tls")]
                Handshake::Tls(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => http(TokioIo::new(tls), service, stopping).await,
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    stop.send_replace(true);
    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::debug!("http connections still open after the drain period");
    }
}

/// Serves HTTP/1.1 (with upgrades) on one connection until it closes or `stopping` asks
/// it to finish the request in progress and close.
async fn http<I, S>(io: I, service: S, mut stopping: tokio::sync::watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
            // Finish the request in progress, then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "http connection error");
    }
}
