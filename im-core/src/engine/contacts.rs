//! Friend requests, friendships and blocks. Each change is pushed to the other party and
//! to the acting user's other devices.

use std::sync::Arc;

use super::Shared;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::fanout::{Outgoing, Recipients, Skip};
use super::session::SessionHandle;
use super::validate;
use crate::model::{FriendRequest, Timestamp, UserId};
use crate::protocol::{Event, ServerFrame, reply, request};
use crate::storage::{RequestOutcome, StorageError};

const BLOCKED: &str = "one of you has blocked the other";

impl Shared {
    /// Pushes an event to all sessions of `user`, except the session `skip`.
    pub(crate) async fn push(&self, user: UserId, skip: Option<&SessionHandle>, event: Event) {
        let skip = skip.map_or(Skip::Nobody, SessionHandle::skip);
        let out = Outgoing::new(ServerFrame::Event { event });
        self.fan_out(Recipients::Users(&[user]), skip, &out, false)
            .await;
    }

    /// Fails with `not_found` unless `user` exists and is not `me`.
    async fn other_user(&self, me: &SessionHandle, user: UserId) -> ApiResult<()> {
        if user == me.user {
            return Err(ApiError::invalid("user: cannot be yourself"));
        }
        match self.storage.user(user).await {
            Ok(_) => Ok(()),
            Err(StorageError::NotFound(_)) => Err(ApiError::not_found("no such user")),
            Err(e) => Err(e.into()),
        }
    }

    /// Fails with `too_large` when either user is at the friend limit.
    async fn friend_room(&self, a: UserId, b: UserId) -> ApiResult<()> {
        for user in [a, b] {
            if self.storage.friends(user).await?.len() >= self.config.max_friends {
                let whose = if user == a { "your" } else { "their" };
                return Err(ApiError::too_large(format!(
                    "{whose} friend list is full ({} friends)",
                    self.config.max_friends
                )));
            }
        }
        Ok(())
    }

    pub(super) async fn request_friend(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::RequestFriend,
    ) -> ApiResult<reply::Done> {
        let request::RequestFriend { user, note } = request;
        let note = validate::note(&note)?;
        self.other_user(me, user).await?;
        if self.blocked_between(me.user, user).await? {
            return Err(ApiError::forbidden(BLOCKED));
        }
        if self.storage.is_friend(me.user, user).await? {
            return Err(ApiError::conflict("already friends"));
        }
        self.friend_room(me.user, user).await?;
        let request = FriendRequest {
            from: me.user,
            to: user,
            note,
            created_at: Timestamp::now(),
        };
        // Two people who ask each other are friends: storage decides it atomically, so
        // two requests crossing at the same moment make a friendship too.
        match self.storage.put_friend_request(request.clone()).await? {
            RequestOutcome::Pending => {
                self.push(user, None, Event::FriendRequest { request })
                    .await;
                Ok(reply::Done {})
            }
            RequestOutcome::Accepted => self.befriended(me, user).await,
            RequestOutcome::AlreadyFriends => Err(ApiError::conflict("already friends")),
            // A block made since the check above.
            RequestOutcome::Blocked => Err(ApiError::forbidden(BLOCKED)),
        }
    }

    pub(super) async fn accept_friend(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::AcceptFriend,
    ) -> ApiResult<reply::Done> {
        let user = request.user;
        self.friend_room(me.user, user).await?;
        match self
            .storage
            .accept_friend_request(user, me.user, Timestamp::now())
            .await
        {
            Ok(()) => self.befriended(me, user).await,
            // The request may have just been accepted the other way round.
            Err(StorageError::NotFound(_)) if self.storage.is_friend(me.user, user).await? => {
                Err(ApiError::conflict("already friends"))
            }
            Err(StorageError::NotFound(_)) => {
                Err(ApiError::not_found("no friend request from this user"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Tells both users (all of `me`'s other devices) that they are friends now.
    async fn befriended(&self, me: &SessionHandle, user: UserId) -> ApiResult<reply::Done> {
        self.invalidate_contacts(me.user, user).await;
        self.push(user, None, Event::FriendAdded { user: me.user })
            .await;
        self.push(me.user, Some(me), Event::FriendAdded { user })
            .await;
        Ok(reply::Done {})
    }

    pub(super) async fn decline_friend(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::DeclineFriend,
    ) -> ApiResult<reply::Done> {
        let user = request.user;
        let declined = self.storage.delete_friend_request(user, me.user).await?;
        let withdrawn = !declined && self.storage.delete_friend_request(me.user, user).await?;
        if !declined && !withdrawn {
            return Err(ApiError::not_found("no friend request between you"));
        }
        self.push(user, None, Event::FriendRequestDeclined { user: me.user })
            .await;
        self.push(me.user, Some(me), Event::FriendRequestDeclined { user })
            .await;
        Ok(reply::Done {})
    }

    pub(super) async fn remove_friend(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::RemoveFriend,
    ) -> ApiResult<reply::Done> {
        let user = request.user;
        if !self.storage.remove_friend(me.user, user).await? {
            return Err(ApiError::not_found("not friends"));
        }
        self.invalidate_contacts(me.user, user).await;
        self.push(user, None, Event::FriendRemoved { user: me.user })
            .await;
        self.push(me.user, Some(me), Event::FriendRemoved { user })
            .await;
        Ok(reply::Done {})
    }

    pub(super) async fn block(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Block,
    ) -> ApiResult<reply::Done> {
        self.set_blocked(me, request.user, true).await
    }

    pub(super) async fn unblock(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Unblock,
    ) -> ApiResult<reply::Done> {
        self.set_blocked(me, request.user, false).await
    }

    async fn set_blocked(
        &self,
        me: &SessionHandle,
        user: UserId,
        blocked: bool,
    ) -> ApiResult<reply::Done> {
        self.other_user(me, user).await?;
        if self.storage.set_blocked(me.user, user, blocked).await? {
            self.invalidate_contacts(me.user, user).await;
            // The blocked user is not told; only this user's other devices are.
            let event = if blocked {
                Event::Blocked { user }
            } else {
                Event::Unblocked { user }
            };
            self.push(me.user, Some(me), event).await;
        }
        Ok(reply::Done {})
    }

    pub(super) async fn friends(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        _: request::Friends,
    ) -> ApiResult<reply::Friends> {
        Ok(reply::Friends {
            friends: self.storage.friends(me.user).await?,
        })
    }

    pub(super) async fn friend_requests(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        _: request::FriendRequests,
    ) -> ApiResult<reply::FriendRequests> {
        let (incoming, outgoing) = self
            .storage
            .friend_requests(me.user)
            .await?
            .into_iter()
            .partition(|r| r.to == me.user);
        Ok(reply::FriendRequests { incoming, outgoing })
    }

    pub(super) async fn blocked_users(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        _: request::BlockedUsers,
    ) -> ApiResult<reply::Blocked> {
        Ok(reply::Blocked {
            users: self.storage.blocked(me.user).await?,
        })
    }
}
