//! Routes each request to its handler after the connection-level checks: `hello` first,
//! and a logged-in session for everything but `hello`, `ping`, `register`, `login` and
//! `resume`.

use std::sync::Arc;

use super::Shared;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::session::SessionHandle;
use crate::protocol::{ErrorCode, Reply, Request, SUPPORTED_VERSIONS};

impl Shared {
    /// Handles one request on a connection.
    pub(crate) async fn handle(&self, conn: &mut Conn, request: Request) -> ApiResult<Reply> {
        metrics::counter!("im_requests_total", "type" => request.name()).increment(1);
        if !conn.greeted {
            return match request {
                Request::Hello {
                    versions, codec, ..
                } => self.hello(conn, &versions, codec),
                _ => Err(ApiError::invalid("the first frame must be hello")),
            };
        }
        match request {
            Request::Hello { .. } => Err(ApiError::conflict("hello was already exchanged")),
            Request::Ping => Ok(Reply::Pong),
            Request::Register {
                username,
                password,
                display_name,
                avatar,
            } => {
                self.register(&conn.peer, &username, &password, &display_name, avatar)
                    .await
            }
            Request::Login {
                username,
                password,
                device,
            } => self.login(conn, &username, &password, device).await,
            Request::Resume { token } => self.resume(conn, &token).await,
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
    ) -> ApiResult<Reply> {
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
        Ok(Reply::Hello {
            version,
            server: self.config.server_name.clone(),
            max_frame_bytes: u32::try_from(self.config.max_frame_bytes).unwrap_or(u32::MAX),
            idle_timeout_ms: u64::try_from(self.config.idle_timeout.as_millis())
                .unwrap_or(u64::MAX),
        })
    }

    pub(super) async fn handle_session(
        &self,
        conn: &mut Conn,
        me: &Arc<SessionHandle>,
        request: Request,
    ) -> ApiResult<Reply> {
        match request {
            Request::Logout => self.logout(conn, me).await,
            Request::Devices => self.devices(me).await,
            Request::RevokeDevice { device } => self.revoke_device(conn, me, &device).await,
            Request::ChangePassword {
                old_password,
                new_password,
            } => self.change_password(me, &old_password, &new_password).await,
            Request::FindUser { username } => self.find_user(&username).await,
            Request::Users { users } => self.users(&users).await,

            Request::RequestFriend { user, note } => self.request_friend(me, user, &note).await,
            Request::AcceptFriend { user } => self.accept_friend(me, user).await,
            Request::DeclineFriend { user } => self.decline_friend(me, user).await,
            Request::RemoveFriend { user } => self.remove_friend(me, user).await,
            Request::Block { user } => self.block(me, user, true).await,
            Request::Unblock { user } => self.block(me, user, false).await,
            Request::Friends => self.friends(me).await,
            Request::FriendRequests => self.friend_requests(me).await,
            Request::BlockedUsers => self.blocked_users(me).await,

            Request::CreateGroup {
                name,
                members,
                open,
            } => self.create_group(me, &name, &members, open).await,
            Request::AddMembers { group, users } => self.add_members(me, group, &users).await,
            Request::JoinGroup { group } => self.join_group(me, group).await,
            Request::LeaveGroup { group } => self.leave_group(me, group).await,
            Request::KickMember { group, user } => self.kick_member(me, group, user).await,
            Request::SetRole { group, user, role } => self.set_role(me, group, user, role).await,
            Request::RenameGroup { group, name } => self.rename_group(me, group, &name).await,
            Request::TransferGroup { group, to } => self.transfer_group(me, group, to).await,
            Request::GroupInfo { group } => self.group_info(me, group).await,
            Request::GroupMembers {
                group,
                after,
                limit,
            } => self.group_members(me, group, after, limit).await,
            Request::MyGroups => self.my_groups(me).await,

            Request::Send {
                conversation,
                client_id,
                body,
            } => self.send(me, conversation, client_id, body).await,
            Request::Conversations => self.conversations(me).await,
            Request::History {
                conversation,
                query,
            } => self.history(me, conversation, query).await,
            Request::MarkRead { conversation, seq } => self.mark_read(me, conversation, seq).await,
            Request::Ack { conversation, seq } => self.ack(me, conversation, seq).await,
            Request::Receipts {
                conversation,
                seq,
                after,
                limit,
            } => self.receipts(me, conversation, seq, after, limit).await,
            Request::Typing {
                conversation,
                active,
            } => self.typing(me, conversation, active).await,
            Request::Recall {
                conversation,
                seq,
                client_id,
            } => self.recall(me, conversation, seq, client_id).await,
            Request::Edit {
                conversation,
                seq,
                client_id,
                body,
            } => self.edit(me, conversation, seq, client_id, body).await,
            Request::DeleteForMe { conversation, seq } => {
                self.delete_for_me(me, conversation, seq).await
            }
            Request::Signal {
                to,
                device,
                call_id,
                signal,
            } => self.signal(me, to, device, call_id, signal).await,
            Request::Presence { users } => self.presence_status(me, &users).await,

            Request::Hello { .. }
            | Request::Ping
            | Request::Register { .. }
            | Request::Login { .. }
            | Request::Resume { .. } => Err(ApiError::internal()),
        }
    }
}
