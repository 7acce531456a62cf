//! Requests handled one at a time, outside any connection: the entry point of request /
//! response bindings such as HTTP. The caller presents a token with each request instead
//! of logging in on a connection; no session is registered, so such a caller receives no
//! pushes and never counts as online.

use super::Shared;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use crate::model::{ConversationId, Device, User};
use crate::protocol::{Codec, ErrorBody, KickCode, Reply, Request, reply, request};
use crate::transport::PeerInfo;

/// Who a token belongs to, as [`Engine::authenticate`](super::Engine::authenticate)
/// finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user: User,
    /// The device the token was issued to.
    pub device: Device,
}

impl super::Engine {
    /// Handles one request on its own, as a request / response binding (HTTP) needs:
    /// `token` is what `login` returned (or an app token the hooks accept) and stands in
    /// for a logged-in connection.
    ///
    /// `register`, `login` and `ping` need no token. `login` issues a token without
    /// starting a session (the device policy applies to sessions, when the token is later
    /// used to `resume` on a connection). `logout` revokes the token and closes the
    /// device's sessions (for a token of the app's own, see [`Hooks::authenticate`](crate::hooks::Hooks),
    /// only the sessions: the app decides when its tokens end). `hello` and `resume`
    /// belong to connections and are refused as `invalid`. Everything else runs exactly
    /// as on a connection.
    ///
    /// ```
    /// use im_core::Engine;
    /// use im_core::model::{DeviceId, Platform};
    /// use im_core::protocol::{DeviceInfo, Reply, reply, request};
    /// use im_core::transport::PeerInfo;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = Engine::builder().start().await.unwrap();
    /// let peer = PeerInfo { addr: None, transport: "http" };
    /// let register = request::Register {
    ///     username: "alice".into(),
    ///     password: "correct horse".into(),
    ///     display_name: "Alice".into(),
    ///     avatar: None,
    ///     proof: None,
    ///     contact: None,
    /// };
    /// engine.execute(&peer, None, register.into()).await.unwrap();
    /// let login = request::Login {
    ///     username: "alice".into(),
    ///     password: "correct horse".into(),
    ///     device: DeviceInfo {
    ///         id: DeviceId::new("script").unwrap(),
    ///         name: "a script".into(),
    ///         platform: Platform::Other,
    ///     },
    ///     proof: None,
    /// };
    /// let Reply::Session(reply::Session { token: Some(token), .. }) =
    ///     engine.execute(&peer, None, login.into()).await.unwrap()
    /// else { unreachable!() };
    /// let friends = engine.execute(&peer, Some(&token), request::Friends {}.into()).await.unwrap();
    /// assert_eq!(friends, reply::Friends { friends: vec![] }.into());
    /// // No token, no answer.
    /// let refused = engine.execute(&peer, None, request::Friends {}.into()).await.unwrap_err();
    /// assert_eq!(refused.code, im_core::protocol::ErrorCode::Unauthorized);
    /// # });
    /// ```
    pub async fn execute(
        &self,
        peer: &PeerInfo,
        token: Option<&str>,
        request: Request,
    ) -> Result<Reply, ErrorBody> {
        self.shared
            .execute(peer, token, request)
            .await
            .map_err(ApiError::into_body)
    }

    /// Who `token` belongs to; `unauthorized` if it is unknown, revoked or expired.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, ErrorBody> {
        let (user, device) = self
            .shared
            .verify_token(token)
            .await
            .map_err(ApiError::into_body)?;
        Ok(Identity { user, device })
    }

    /// Whether `identity`'s user may read `conversation`: a party of the direct chat, or
    /// a member of the group. `forbidden` (or `not_found` for a group that does not
    /// exist) otherwise. For checks outside the protocol, such as downloading a file
    /// shared in the conversation.
    pub async fn check_access(
        &self,
        identity: &Identity,
        conversation: ConversationId,
    ) -> Result<(), ErrorBody> {
        self.shared
            .access(identity.user.id, conversation)
            .await
            .map(|_| ())
            .map_err(ApiError::into_body)
    }
}

impl Shared {
    async fn execute(
        &self,
        peer: &PeerInfo,
        token: Option<&str>,
        request: Request,
    ) -> ApiResult<Reply> {
        metrics::counter!("im_requests_total", "type" => request.name()).increment(1);
        match request {
            Request::Hello(_) | Request::Resume(_) => Err(ApiError::invalid(
                "hello and resume belong to connections; present the token with each request",
            )),
            Request::Ping(_) => Ok(reply::Pong {}.into()),
            Request::Register(request) => self.register(peer, request).await.map(Into::into),
            Request::SendCode(request) => self.send_code(peer, request).await.map(Into::into),
            Request::Login(request) => {
                let request::Login {
                    username,
                    password,
                    device,
                    proof,
                } = request;
                let login = self
                    .check_login(peer, &username, &password, &device, proof.as_deref())
                    .await?;
                self.storage.put_device(login.record.clone()).await?;
                self.password_unchanged(&login).await?;
                // The device's old token is replaced; its sessions go with it, as when a
                // device logs in again on a connection.
                let (user, device) = (login.user.id, &login.record.device.id);
                self.kick(user, Some(device), None, None, KickCode::Replaced)
                    .await;
                Ok(login.into_reply().into())
            }
            request => {
                let Some(token) = token else {
                    return Err(ApiError::unauthorized("a token is required"));
                };
                let (user, device) = self.verify_token(token).await?;
                let logout = match &request {
                    Request::Logout(_) => true,
                    Request::RevokeDevice(revoke) => revoke.device == device.id,
                    _ => false,
                };
                if logout {
                    // The device's sessions elsewhere end with its token.
                    self.storage.delete_device(user.id, &device.id).await?;
                    self.kick(user.id, Some(&device.id), None, None, KickCode::Revoked)
                        .await;
                    return Ok(reply::Done {}.into());
                }
                let mut conn = Conn::detached(peer.clone(), Codec::Json);
                let me =
                    conn.new_session(self.next_session_id(), user.id, device.id, device.platform);
                self.handle_session(&mut conn, &me, request).await
            }
        }
    }
}
