#![doc = include_str!("../README.md")]

mod attachments;
pub mod blob;
mod client;
mod collector;
mod config;
mod connection;
pub mod http;
pub mod openapi;
mod proxy;
pub mod routes;
mod server;
mod service;
#[cfg(feature = "testkit")]
pub mod testkit;
mod websocket;

use std::sync::Arc;

use bytes::Buf;
use futures::TryStreamExt;
use im_core::Engine;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::reply::Response;

pub use attachments::ANY_FILE;
pub use blob::{BlobAge, BlobBody, BlobError, BlobMeta, BlobStore, LocalDirBlobs};
#[cfg(feature = "tls")]
pub use client::connect_tls;
pub use client::{ConnectError, WsClientConnection, connect};
pub use collector::{CollectError, Collected};
pub use config::WsConfig;
pub use connection::{WsConnection, WsIo};
pub use proxy::{ForwardedHeader, TrustedProxy};
#[cfg(feature = "tls")]
pub use server::serve_tls;
pub use server::{PeerAddr, serve};
pub use service::GatewayService;
/// The rustls this crate's TLS is built on (feature `tls`), for building its
/// `ServerConfig` and `ClientConfig`.
#[cfg(feature = "tls")]
pub use tokio_rustls::{self, rustls};

/// The WebSocket and HTTP face of an engine: `/ws`, `/v1/...` and `/openapi.json`, as one
/// warp filter to mount in an app's own server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    config: WsConfig,
    blobs: Option<Arc<dyn BlobStore>>,
    uploads: Option<governor::DefaultKeyedRateLimiter<im_core::model::UserId>>,
    /// Uploads counted, for the limiter's housekeeping.
    uploads_seen: std::sync::atomic::AtomicU64,
    /// Permits for uploads and downloads in progress.
    transfers: Arc<tokio::sync::Semaphore>,
}

impl Gateway {
    /// Serves `engine` with these settings. Without a blob store, uploads answer 404.
    /// With one, call it within a Tokio runtime: unused uploads are removed by a task on
    /// it ([`WsConfig::upload_grace`]).
    pub fn new(engine: Engine, mut config: WsConfig, blobs: Option<Arc<dyn BlobStore>>) -> Self {
        config.max_frame_bytes = config.max_frame_bytes.max(engine.config().max_frame_bytes);
        let transfers = Arc::new(tokio::sync::Semaphore::new(config.max_transfers.max(1)));
        let uploads = std::num::NonZeroU32::new(config.uploads_per_user_per_minute)
            .map(|n| governor::RateLimiter::keyed(governor::Quota::per_minute(n)));
        if let Some(blobs) = &blobs {
            // A message may show only a file its sender may share (the engine asks here).
            engine.set_uploads(Arc::new(attachments::BlobUploads(blobs.clone())));
        }
        let grace = config.upload_grace;
        let inner = Arc::new(Inner {
            engine,
            config,
            blobs,
            uploads,
            uploads_seen: std::sync::atomic::AtomicU64::new(0),
            transfers,
        });
        if inner.blobs.is_some() && !grace.is_zero() {
            collector::spawn(Arc::downgrade(&inner), grace);
        }
        Gateway { inner }
    }

    /// The address a request counts as coming from: the peer's, or the client's that a
    /// trusted proxy names (see [`WsConfig::trusted_proxies`]).
    fn client_addr(
        &self,
        peer: Option<std::net::SocketAddr>,
        headers: &HeaderMap,
    ) -> Option<std::net::SocketAddr> {
        let config = &self.inner.config;
        proxy::client_addr(
            peer,
            headers,
            &config.trusted_proxies,
            config.forwarded_header,
        )
    }

    /// The engine served.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The routes: `GET /ws` (WebSocket), everything under `/v1/` (the HTTP API, which
    /// answers every request under that prefix itself, with JSON errors), and
    /// `GET /openapi.json`. Anything else is left to the app's other filters.
    pub fn filter(&self) -> BoxedFilter<(Response,)> {
        let ws = {
            let gateway = self.clone();
            warp::path("ws")
                .and(warp::path::end())
                .and(warp::get())
                .and(warp::header::headers_cloned())
                .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
                .and(peer_addr())
                .map(move |headers: HeaderMap, on_upgrade, addr| {
                    let addr = gateway.client_addr(addr, &headers);
                    gateway.upgrade(&headers, on_upgrade, addr)
                })
        };
        let openapi = warp::path("openapi.json")
            .and(warp::path::end())
            .and(warp::get())
            .map(|| {
                let mut response = Response::new(openapi::json().into());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            });
        let api = {
            let gateway = self.clone();
            warp::path("v1")
                .and(warp::method())
                .and(warp::path::full())
                .and(warp::query::raw().or(warp::any().map(String::new)).unify())
                .and(warp::header::headers_cloned())
                .and(peer_addr())
                .and(warp::body::stream())
                .then(
                    move |method: Method,
                          path: warp::path::FullPath,
                          query: String,
                          headers: HeaderMap,
                          addr,
                          body| {
                        let gateway = gateway.clone();
                        let body = futures::stream::StreamExt::boxed(TryStreamExt::map_ok(
                            body,
                            |mut chunk| {
                                let len = Buf::remaining(&chunk);
                                Buf::copy_to_bytes(&mut chunk, len)
                            },
                        ));
                        let addr = gateway.client_addr(addr, &headers);
                        async move {
                            gateway
                                .handle_api(method, path.as_str(), &query, &headers, addr, body)
                                .await
                        }
                    },
                )
        };
        ws.or(openapi).unify().or(api).unify().boxed()
    }

    /// The same routes as a tower `Service` over any request body, for servers other
    /// than warp's (axum: `Router::fallback_service(gateway.service())`). See
    /// [`GatewayService`].
    pub fn service(&self) -> GatewayService {
        GatewayService::new(self.filter())
    }
}

/// The peer's address: warp's, when warp's server runs the filter, or the [`PeerAddr`]
/// that [`serve`] (or an app's own server) put in the request.
fn peer_addr()
-> impl Filter<Extract = (Option<std::net::SocketAddr>,), Error = std::convert::Infallible> + Copy {
    warp::addr::remote()
        .and(warp::ext::optional::<PeerAddr>())
        .map(
            |warp: Option<std::net::SocketAddr>, ours: Option<PeerAddr>| {
                warp.or(ours.map(|PeerAddr(addr)| addr))
            },
        )
}
