//! What an operator does to accounts and sessions: the engine's side of an admin API.
//! These calls trust their caller (there is no session behind them); put them behind the
//! app's own authentication, as the example server's admin routes do with a token.
//!
//! ```
//! # tokio_test_block_on(async {
//! use im_core::model::UserId;
//! let engine = im_core::Engine::builder().start().await.unwrap();
//! // Nobody registered yet: the user is not found.
//! let missing = engine.disable_user(UserId(7)).await.unwrap_err();
//! assert_eq!(missing.code, im_core::protocol::ErrorCode::NotFound);
//! assert!(engine.sessions().is_empty());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::cmp::Reverse;

use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::{Engine, Shared, validate};
use crate::model::{DeviceId, GroupId, Platform, Role, SystemEvent, Timestamp, UserId};
use crate::protocol::{Codec, ErrorBody, Event, KickCode};
use crate::storage::{GroupChange, ProfileChange, StorageError};
use crate::transport::PeerInfo;

/// The display name a deleted account is shown with.
pub const DELETED_NAME: &str = "Deleted account";

/// What [`Engine::delete_user`] undid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeletedUser {
    /// Groups the account left (ownership handed on first where it owned one).
    pub groups: usize,
    /// Friendships ended.
    pub friends: usize,
    /// Pending friend requests, from it or to it, withdrawn.
    pub requests: usize,
}

/// One session on this node, as [`Engine::sessions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// Whose session.
    pub user: UserId,
    /// On which device.
    pub device: DeviceId,
    /// The device's platform.
    pub platform: Platform,
    /// When it began.
    pub since: Timestamp,
}

impl Engine {
    /// Disables an account: its devices are signed out (their tokens stop working and
    /// their sessions, on every node, are closed with `kicked: disabled`), and logins
    /// are refused with `forbidden` until [`enable_user`](Self::enable_user). Its
    /// messages, groups and friendships stay. `Ok(false)` if it was disabled already.
    pub async fn disable_user(&self, user: UserId) -> Result<bool, ErrorBody> {
        self.shared
            .disable_user(user)
            .await
            .map_err(ApiError::into_body)
    }

    /// Enables a disabled account: its user may log in again. `Ok(false)` if it was
    /// enabled already.
    pub async fn enable_user(&self, user: UserId) -> Result<bool, ErrorBody> {
        self.shared
            .storage
            .set_disabled(user, false)
            .await
            .map_err(|e| ApiError::from(e).into_body())
    }

    /// Deletes an account, as far as others can see: it is disabled and signed out on
    /// every node (`kicked: deleted`), leaves each of its groups (as an owner, after
    /// handing the group to its longest-standing admin, or member if it has no admin:
    /// `owner_changed`, then `member_left`, in the group's timeline), its friendships end
    /// (each friend gets `friend_removed`) and its pending friend requests are withdrawn,
    /// and its profile is wiped (display name [`DELETED_NAME`], no avatar, and a password
    /// nobody knows). A group it was the last member of is left empty, and nobody may
    /// join it any more.
    /// Its messages stay in the conversations' history, shown under that name; its id
    /// and username stay taken, so that nobody else answers to them later.
    ///
    /// The account gains no new tie while this runs: storage refuses a friend request,
    /// an accept or a group add for a disabled account in the same step as the change
    /// ([`ACCOUNT_DISABLED`](crate::storage::ACCOUNT_DISABLED)), and this reads the ties
    /// after disabling it. Deleting twice (or at once) is not an error; the second finds
    /// less to undo. `not_found` for an unknown user.
    pub async fn delete_user(&self, user: UserId) -> Result<DeletedUser, ErrorBody> {
        self.shared
            .delete_user(user)
            .await
            .map_err(ApiError::into_body)
    }

    /// Whether an account is disabled.
    pub async fn is_disabled(&self, user: UserId) -> Result<bool, ErrorBody> {
        self.shared
            .storage
            .is_disabled(user)
            .await
            .map_err(|e| ApiError::from(e).into_body())
    }

    /// Sets a new password for a user (the same rules as `change_password`: 8 to 256
    /// characters) and signs out every device, as a change of one's own password does
    /// (`kicked: password_changed`).
    pub async fn reset_password(&self, user: UserId, password: &str) -> Result<(), ErrorBody> {
        self.shared
            .reset_password(user, password)
            .await
            .map_err(ApiError::into_body)
    }

    /// Signs a user's device out: its token stops working and its sessions, on every
    /// node, are closed with `kicked: revoked`. `not_found` if the user has no such
    /// device.
    pub async fn sign_out_device(&self, user: UserId, device: &DeviceId) -> Result<(), ErrorBody> {
        let shared = &self.shared;
        match shared.storage.delete_device(user, device).await {
            Ok(true) => {}
            Ok(false) | Err(StorageError::NotFound(_)) => {
                return Err(ApiError::not_found("no such device").into_body());
            }
            Err(e) => return Err(ApiError::from(e).into_body()),
        }
        shared
            .kick(user, Some(device), None, None, KickCode::Revoked)
            .await;
        Ok(())
    }

    /// The sessions on this node now, oldest first. In a cluster each node lists its
    /// own.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut sessions: Vec<SessionInfo> = self
            .shared
            .sessions
            .all()
            .iter()
            .map(|s| SessionInfo {
                user: s.user,
                device: s.device.clone(),
                platform: s.platform,
                since: s.since,
            })
            .collect();
        sessions.sort_by_key(|s| (s.since, s.user));
        sessions
    }
}

impl Shared {
    async fn delete_user(&self, user: UserId) -> ApiResult<DeletedUser> {
        self.storage.set_disabled(user, true).await?;
        self.sign_out_everywhere(user, KickCode::Deleted).await?;
        let mut done = DeletedUser::default();
        for group in self.storage.user_groups(user).await? {
            if self.leave_for_good(user, group.id).await? {
                done.groups += 1;
            }
        }
        for friend in self.storage.friends(user).await? {
            if self.storage.remove_friend(user, friend.user).await? {
                done.friends += 1;
                self.invalidate_contacts(user, friend.user).await;
                self.push(friend.user, None, Event::FriendRemoved { user })
                    .await;
            }
        }
        for request in self.storage.friend_requests(user).await? {
            if self
                .storage
                .delete_friend_request(request.from, request.to)
                .await?
            {
                done.requests += 1;
            }
        }
        let wiped = ProfileChange {
            display_name: Some(DELETED_NAME.to_owned()),
            avatar: Some(None),
        };
        self.storage.update_profile(user, wiped).await?;
        // The engine's hash of a random password nobody knows (the one unknown usernames
        // are checked against): a login is refused (disabled), an enable without a
        // password reset lets nobody in, and a login attempt costs a full hash, as for
        // any account, so its timing does not tell a deleted one.
        self.storage
            .set_password_hash(user, self.dummy_hash.clone())
            .await?;
        Ok(done)
    }

    /// Takes `user` out of `group` for good, handing the group on first if they own it.
    /// Each change is decided on a fresh view and checked against storage (`expect`):
    /// one that lost a race with another change is decided again. Whether they left.
    async fn leave_for_good(&self, user: UserId, group: GroupId) -> ApiResult<bool> {
        // In the group's timeline the changes are the departing member's own.
        let conn = Conn::detached(
            PeerInfo {
                addr: None,
                transport: "admin",
            },
            Codec::Json,
        );
        let device = DeviceId::new("admin").map_err(|_| ApiError::internal())?;
        let me = conn.new_session(0, user, device, Platform::Other);
        for _ in 0..8 {
            self.invalidate_group(group).await;
            let before = match self.members.get(&*self.storage, group).await {
                Ok(before) => before,
                Err(StorageError::NotFound(_)) => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            let Some(member) = before.get(user).copied() else {
                return Ok(false);
            };
            let result = if member.role == Role::Owner
                && let Some(heir) = before
                    .members
                    .values()
                    .filter(|m| m.user != user)
                    .max_by_key(|m| (m.role, Reverse(m.joined_seq), Reverse(m.user)))
                    .copied()
            {
                let change = GroupChange {
                    roles: vec![(heir.user, Role::Owner), (user, Role::Admin)],
                    owner: Some(heir.user),
                    expect: vec![(heir.user, Some(heir.role))],
                    ..GroupChange::default()
                };
                let event = SystemEvent::OwnerChanged {
                    from: user,
                    to: heir.user,
                };
                self.change_group(&me, group, change, event, &before).await
            } else {
                let change = GroupChange {
                    remove: vec![user],
                    ..GroupChange::default()
                };
                let event = SystemEvent::MemberLeft { user };
                match self.change_group(&me, group, change, event, &before).await {
                    Ok(_) => return Ok(true),
                    Err(e) => Err(e),
                }
            };
            match result {
                Ok(_) => {}
                // Changed meanwhile: look again.
                Err(e) if e.code == crate::protocol::ErrorCode::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(
            "the group kept changing while the account left it; retry the deletion",
        ))
    }

    async fn disable_user(&self, user: UserId) -> ApiResult<bool> {
        let changed = self.storage.set_disabled(user, true).await?;
        // Even if it was disabled already: a device that slipped in is signed out too.
        self.sign_out_everywhere(user, KickCode::Disabled).await?;
        Ok(changed)
    }

    async fn reset_password(&self, user: UserId, password: &str) -> ApiResult<()> {
        validate::password(password)?;
        // Exists? (Before the hash is computed for nothing.)
        self.storage.user(user).await?;
        let password = password.to_owned();
        let hash = self.hash_password(password).await?;
        self.storage.set_password_hash(user, hash).await?;
        self.sign_out_everywhere(user, KickCode::PasswordChanged)
            .await
    }

    /// Deletes every device of a user and closes their sessions on every node. A login
    /// that checked its password before and stores its device after is caught by its own
    /// look afterwards (`password_unchanged`), which finds the account disabled or the
    /// password changed.
    async fn sign_out_everywhere(&self, user: UserId, code: KickCode) -> ApiResult<()> {
        for record in self.storage.devices(user).await? {
            self.storage.delete_device(user, &record.device.id).await?;
        }
        self.kick(user, None, None, None, code).await;
        Ok(())
    }
}
