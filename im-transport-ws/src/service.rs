//! [`GatewayService`]: the gateway as a tower `Service`, so that any server built on
//! hyper 1 — axum, hyper itself, tower stacks — can mount it beside its own routes.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Body, Frame};
use sync_wrapper::SyncWrapper;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// The gateway's routes (`/ws`, `/v1/...`, `/openapi.json`) as a tower `Service` over
/// any request body; requests it has no route for are answered `404`. Made by
/// [`Gateway::service`](crate::Gateway::service). Cheap to clone.
///
/// For the per-address rate limits, the server should put the peer's address in each
/// request as a [`PeerAddr`](crate::PeerAddr) extension; WebSocket upgrades need an
/// HTTP/1.1 server with upgrades enabled (axum's and hyper-util's are).
#[derive(Clone)]
pub struct GatewayService {
    filter: BoxedFilter<(Response,)>,
}

impl std::fmt::Debug for GatewayService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayService").finish_non_exhaustive()
    }
}

impl GatewayService {
    pub(crate) fn new(filter: BoxedFilter<(Response,)>) -> Self {
        GatewayService { filter }
    }
}

impl<B> tower_service::Service<http::Request<B>> for GatewayService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut inner = warp::service(self.filter.clone());
        let request = request.map(SyncBody::new);
        Box::pin(async move { tower_service::Service::call(&mut inner, request).await })
    }
}

/// A request body that is `Sync`, as warp asks: other servers' bodies (axum's) are only
/// `Send`, and a body is only ever polled through `&mut`, which `SyncWrapper` allows.
struct SyncBody<B>(SyncWrapper<Pin<Box<B>>>);

impl<B> SyncBody<B> {
    fn new(body: B) -> Self {
        SyncBody(SyncWrapper::new(Box::pin(body)))
    }
}

impl<B: Body> Body for SyncBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.0.get_mut().as_mut().poll_frame(cx)
    }
}
