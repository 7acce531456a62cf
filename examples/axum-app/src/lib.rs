//! An axum app with instant messaging: the app's own routes, and the im gateway
//! (`/ws`, `/v1/...`, `/openapi.json`) mounted beside them as a tower service.
//!
//! ```text
//! cargo run -p axum-app            # http://127.0.0.1:3000/hello, ws://127.0.0.1:3000/ws
//! ```
//!
//! Two things an app's own server should do for the gateway, shown here: set
//! `TCP_NODELAY` on accepted sockets (chat frames are small; Nagle's algorithm would
//! hold them back), and put the peer's address in each request as an
//! [`im_transport_ws::PeerAddr`] (the per-address login limits use it).

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::routing::get;
use axum::serve::ListenerExt;
use im_core::Engine;
use im_transport_ws::{Gateway, PeerAddr, WsConfig};
use tokio::net::TcpListener;

/// The app: its own `GET /hello`, and everything else to the gateway.
pub fn app(engine: Engine) -> Router {
    let gateway = Gateway::new(engine, WsConfig::default(), None);
    Router::new()
        .route("/hello", get(|| async { "hello from the app" }))
        .fallback_service(gateway.service())
        .layer(axum::middleware::map_request(peer_addr))
}

/// Copies axum's connection info into the request as the gateway's [`PeerAddr`].
async fn peer_addr(request: Request) -> Request {
    let mut request = request;
    let addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    if let Some(addr) = addr {
        request.extensions_mut().insert(PeerAddr(addr));
    }
    request
}

/// Serves `app` on `listener` until `shutdown` resolves, with `TCP_NODELAY` on every
/// connection and the peer's address known to the handlers.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
