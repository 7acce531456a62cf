//! Routes each request to its handler after the connection-level checks: `hello` first,
//! and a logged-in session for everything but `hello`, `ping`, `register`, `login` and
//! `resume`.

use std::sync::Arc;

use super::Shared;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::session::SessionHandle;
use crate::protocol::request::for_each_request;
use crate::protocol::{ErrorCode, Reply, Request, SUPPORTED_VERSIONS, reply, request};

/// Defines [`Shared::handle_session`] from the request table: each session request goes
/// to the engine method of its name, whose reply must be the request's `Output`. The
/// requests answered without a session never get there.
macro_rules! define_handle_session {
    (
        open { $($open:ident $Open:ident -> $OpenOutput:ident [$($open_error:ident),*];)* }
        session { $($name:ident $Request:ident -> $Output:ident [$($error:ident),*];)* }
    ) => {
        impl Shared {
            /// Runs a request of a logged-in session.
            pub(super) async fn handle_session(
                &self,
                conn: &mut Conn,
                me: &Arc<SessionHandle>,
                request: Request,
            ) -> ApiResult<Reply> {
                match request {
                    $(Request::$Request(request) => {
                        self.$name(conn, me, request).await.map(Reply::$Output)
                    })*
                    $(Request::$Open(_) => Err(ApiError::internal()),)*
                }
            }
        }
    };
}
for_each_request!(define_handle_session);

impl Shared {
    /// Handles one request on a connection.
    pub(crate) async fn handle(&self, conn: &mut Conn, request: Request) -> ApiResult<Reply> {
        metrics::counter!("im_requests_total", "type" => request.name()).increment(1);
        if !conn.greeted {
            return match request {
                Request::Hello(request::Hello {
                    versions, codec, ..
                }) => self.hello(conn, &versions, codec).map(Into::into),
                _ => Err(ApiError::invalid("the first frame must be hello")),
            };
        }
        match request {
            Request::Hello(_) => Err(ApiError::conflict("hello was already exchanged")),
            Request::Ping(_) => Ok(reply::Pong {}.into()),
            Request::Register(request) => self.register(&conn.peer, request).await.map(Into::into),
            Request::SendCode(request) => self.send_code(&conn.peer, request).await.map(Into::into),
            Request::Login(request) => self.login(conn, request).await.map(Into::into),
            Request::Resume(request) => self.resume(conn, &request.token).await.map(Into::into),
            request => {
                let Some(me) = conn.session.clone() else {
                    return Err(ApiError::unauthorized("log in first"));
                };
                self.handle_session(conn, &me, request).await
            }
        }
    }

    fn hello(
        &self,
        conn: &mut Conn,
        versions: &[u32],
        codec: Option<crate::protocol::Codec>,
    ) -> ApiResult<reply::Hello> {
        let Some(version) = versions
            .iter()
            .copied()
            .filter(|v| SUPPORTED_VERSIONS.contains(v))
            .max()
        else {
            return Err(ApiError::new(
                ErrorCode::UnsupportedVersion,
                format!("this server speaks protocol versions {SUPPORTED_VERSIONS:?}"),
            ));
        };
        let codec = codec.unwrap_or_default();
        if !codec.is_available() {
            return Err(ApiError::invalid(format!(
                "codec {codec:?} is not available on this server"
            )));
        }
        conn.greeted = true;
        conn.codec = codec;
        Ok(reply::Hello {
            version,
            server: self.config.server_name.clone(),
            max_frame_bytes: u32::try_from(self.config.max_frame_bytes).unwrap_or(u32::MAX),
            idle_timeout_ms: u64::try_from(self.config.idle_timeout.as_millis())
                .unwrap_or(u64::MAX),
        })
    }
}
