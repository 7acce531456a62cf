//! The HTTP API: requests matched against [`ROUTES`](crate::routes::ROUTES), run by the
//! engine with the bearer token standing in for a session, answered in JSON with a
//! status code per error code.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use im_core::model::{ConversationId, UserId};
use im_core::protocol::{Command as _, ErrorBody, ErrorCode, Reply, Request, request};
use im_core::transport::PeerInfo;
use serde_json::Value;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::Gateway;
use crate::routes::{self, Handler, Matched, Route};

/// A request body, as warp streams it.
pub(crate) type Body = BoxStream<'static, Result<Bytes, warp::Error>>;

/// The HTTP status for an error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::UnsupportedVersion => StatusCode::BAD_REQUEST,
        ErrorCode::DeviceLimit | ErrorCode::ProofRequired => StatusCode::FORBIDDEN,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error response: the [`ErrorBody`] as JSON, with `Retry-After` when the error says
/// when to retry and `WWW-Authenticate` on 401.
pub fn error(body: &ErrorBody) -> Response {
    let status = status_of(body.code);
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = json(status, bytes);
    if let Some(ms) = body.retry_after_ms {
        let secs = ms.div_ceil(1000).max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// An error response for a code and a message (see [`error`]).
pub fn error_of(code: ErrorCode, message: impl Into<String>) -> Response {
    error(&ErrorBody::new(code, message))
}

/// Whether the request says its body is JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// An `invalid` error under a status of HTTP's own (405, 408, 415), which no error code
/// maps to.
pub(crate) fn invalid_with_status(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = error_of(ErrorCode::Invalid, message);
    *response.status_mut() = status;
    response
}

/// `408`: the body did not arrive within [`WsConfig::body_timeout`](crate::WsConfig).
pub(crate) fn body_timeout() -> Response {
    invalid_with_status(
        StatusCode::REQUEST_TIMEOUT,
        "the request body took too long to arrive",
    )
}

/// The bearer token of a request (`Authorization: Bearer <token>`, the scheme in any
/// case), if it has a non-empty one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Reads a body of at most `limit` bytes; `None` if it is larger.
pub(crate) async fn read_body(mut body: Body, limit: usize) -> Result<Option<Bytes>, warp::Error> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

pub(crate) fn peer(addr: Option<SocketAddr>) -> PeerInfo {
    PeerInfo {
        addr,
        transport: "http",
    }
}

impl Gateway {
    /// Answers one request under `/v1/`.
    pub(crate) async fn handle_api(
        &self,
        method: Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        addr: Option<SocketAddr>,
        body: Body,
    ) -> Response {
        let (route, params) = match routes::find(&method, path) {
            Matched::Route(route, params) => (route, params),
            Matched::WrongMethod(allowed) => {
                let mut response = invalid_with_status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} is not allowed on {path}"),
                );
                let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
                if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                return response;
            }
            Matched::NotFound => {
                return error_of(ErrorCode::NotFound, format!("no route {method} {path}"));
            }
        };
        // A JSON body must say so: a page on another site can send `text/plain` or a
        // form without asking first, but `application/json` makes the browser ask (CORS),
        // and this API answers no such question.
        if route.body && !is_json(headers) {
            return invalid_with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON, sent as Content-Type: application/json",
            );
        }
        let token = bearer(headers);
        if route.auth && token.is_none() {
            return error_of(
                ErrorCode::Unauthorized,
                "an Authorization: Bearer token is required",
            );
        }
        let peer = peer(addr);
        match route.handler {
            Handler::Command(kind) | Handler::Direct(kind) => {
                self.command(route, kind, params, query, token, &peer, body)
                    .await
            }
            Handler::Upload => self.upload(token.unwrap_or_default(), headers, body).await,
            Handler::Download => {
                let id = params
                    .first()
                    .map(|(_, id)| id.as_str())
                    .unwrap_or_default();
                self.download(token.unwrap_or_default(), id, query).await
            }
            Handler::OpenApi | Handler::WebSocket => {
                error_of(ErrorCode::NotFound, format!("no route {method} {path}"))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn command(
        &self,
        route: &'static Route,
        kind: &'static str,
        params: Vec<(&'static str, String)>,
        query: &str,
        token: Option<&str>,
        peer: &PeerInfo,
        body: Body,
    ) -> Response {
        let bytes = if route.body {
            let limit = self.inner.config.max_body_bytes;
            let read = tokio::time::timeout(self.inner.config.body_timeout, read_body(body, limit));
            match read.await {
                Err(_) => return body_timeout(),
                Ok(Ok(Some(bytes))) => Some(bytes),
                Ok(Ok(None)) => {
                    return error_of(
                        ErrorCode::TooLarge,
                        format!(
                            "the body is over the limit of {} bytes",
                            self.inner.config.max_body_bytes
                        ),
                    );
                }
                Ok(Err(e)) => {
                    return error_of(ErrorCode::Invalid, format!("reading the body: {e}"));
                }
            }
        } else {
            None
        };
        let mut fields = match routes::request_json(route, kind, params, query, bytes.as_deref()) {
            Ok(fields) => fields,
            Err(e) => return error_of(ErrorCode::Invalid, e.0),
        };
        if let (Handler::Direct(_), Some(token)) = (route.handler, token) {
            let me = match self.inner.engine.authenticate(token).await {
                Ok(identity) => identity.user.id,
                Err(e) => return error(&e),
            };
            let peer = fields.remove("user").and_then(|v| v.as_u64()).unwrap_or(0);
            let conversation = ConversationId::direct(me, UserId(peer));
            fields.insert("conversation".into(), conversation.to_string().into());
        }
        // A `send` or `forward` without the caller's retry key gets one of ours, returned
        // in the reply (a script with curl has nothing to make one from). `recall` and
        // `edit` need none.
        let mut client_id = None;
        if makes_client_id(kind) && !fields.contains_key("client_id") {
            let made = match crate::blob::new_id() {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "no randomness for a client_id");
                    return error_of(ErrorCode::Internal, "internal error");
                }
            };
            fields.insert("client_id".into(), made.clone().into());
            client_id = Some(made);
        }
        let request: Request = match serde_json::from_value(Value::Object(fields)) {
            Ok(request) => request,
            Err(e) => return error_of(ErrorCode::Invalid, e.to_string()),
        };
        match self.inner.engine.execute(peer, token, request).await {
            Ok(Reply::Done(_)) => {
                let mut response = Response::new(Default::default());
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            }
            Ok(reply) => match with_client_id(&reply, client_id) {
                // A route documented as 204 answers 200 if the reply has content.
                Ok(bytes) if route.status == StatusCode::NO_CONTENT => json(StatusCode::OK, bytes),
                Ok(bytes) => json(route.status, bytes),
                Err(e) => {
                    tracing::error!(error = %e, "encoding a reply failed");
                    error_of(ErrorCode::Internal, "internal error")
                }
            },
            Err(e) => error(&e),
        }
    }
}

/// Whether the gateway makes a `client_id` for a request of this type that has none:
/// the requests that store a message (`send`, `forward`).
pub(crate) fn makes_client_id(kind: &str) -> bool {
    kind == request::Send::NAME || kind == request::Forward::NAME
}

/// The reply's JSON, with the `client_id` the gateway made, if it made one.
fn with_client_id(reply: &Reply, client_id: Option<String>) -> serde_json::Result<Vec<u8>> {
    let Some(client_id) = client_id else {
        return serde_json::to_vec(reply);
    };
    let mut value = serde_json::to_value(reply)?;
    if let Value::Object(map) = &mut value {
        map.insert("client_id".into(), client_id.into());
    }
    serde_json::to_vec(&value)
}
