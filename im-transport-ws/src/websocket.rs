//! `GET /ws`: the WebSocket upgrade, with the origin check, handing each socket to the
//! engine.

use std::net::SocketAddr;

use im_core::protocol::ErrorCode;
use im_core::transport::PeerInfo;
use warp::Reply as _;
use warp::reply::Response;
use warp::ws::Ws;

use crate::Gateway;
use crate::connection::WsConnection;
use crate::http::error_of;

impl Gateway {
    pub(crate) fn upgrade(
        &self,
        ws: Ws,
        origin: Option<String>,
        addr: Option<SocketAddr>,
    ) -> Response {
        let config = &self.inner.config;
        if let (Some(allowed), Some(origin)) = (&config.allowed_origins, &origin)
            && !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
        {
            metrics::counter!("im_ws_origin_refused_total").increment(1);
            return error_of(
                ErrorCode::Forbidden,
                "this origin may not open a WebSocket here",
            );
        }
        let engine = self.inner.engine.clone();
        let (limit, ping) = (config.max_frame_bytes, config.ping_interval);
        ws.max_message_size(limit)
            .max_frame_size(limit)
            .on_upgrade(move |socket| async move {
                let peer = PeerInfo {
                    addr,
                    transport: "ws",
                };
                engine
                    .serve_connection(WsConnection::new(socket, peer, limit, ping))
                    .await;
            })
            .into_response()
    }
}
