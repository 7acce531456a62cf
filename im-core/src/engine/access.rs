//! Who may do what: the checks every command makes before it acts, in one place.
//!
//! - A conversation: a direct one is open to its two users; a group's to its members
//!   (from the membership cache, `membership`), from the seq they joined at.
//! - Writing to someone directly (messages, typing), calling them, adding them to a
//!   group: they exist, neither has blocked the other, and under the friends-only policy
//!   they are friends. Those ties come from the contact cache (`contact_cache`), which
//!   every friendship or block change invalidates, here and on the other nodes.

use std::collections::HashSet;
use std::sync::Arc;

use super::Shared;
use super::config::DirectPolicy;
use super::error::{ApiError, ApiResult};
use super::membership::GroupMembers;
use crate::model::{ConversationId, GroupId, Member, Seq, UserId};
use crate::storage::StorageError;

/// What the caller may see of a conversation.
pub(super) enum Access {
    Direct {
        peer: UserId,
    },
    Group {
        members: Arc<GroupMembers>,
        joined: Seq,
    },
}

impl Access {
    /// The seq before the first message the caller may read.
    pub(super) fn floor(&self) -> Seq {
        match self {
            Access::Direct { .. } => Seq::ZERO,
            Access::Group { joined, .. } => Seq(joined.0.saturating_sub(1)),
        }
    }
}

impl Shared {
    /// What `me` may see of `conversation`, or `forbidden` / `not_found`.
    pub(super) async fn access(
        &self,
        me: UserId,
        conversation: ConversationId,
    ) -> ApiResult<Access> {
        match conversation {
            ConversationId::Direct(..) => match conversation.peer_of(me) {
                Some(peer) => Ok(Access::Direct { peer }),
                None => Err(ApiError::forbidden("not your conversation")),
            },
            ConversationId::Group(group) => {
                let (members, member) = self.membership(me, group).await?;
                Ok(Access::Group {
                    members,
                    joined: member.joined_seq,
                })
            }
        }
    }

    /// May `me` write to `peer` directly (a message, a typing notice)? From the contact
    /// cache.
    pub(super) async fn may_message(&self, me: UserId, peer: UserId) -> ApiResult<()> {
        let tie = self.contacts.get(&*self.storage, me, peer).await?;
        if !tie.exist {
            return Err(ApiError::not_found("no such user"));
        }
        if tie.blocked {
            return Err(ApiError::forbidden("one of you has blocked the other"));
        }
        if self.config.direct_policy == DirectPolicy::FriendsOnly && !tie.friends {
            return Err(ApiError::forbidden("you can only message friends"));
        }
        Ok(())
    }

    /// The group with the caller's membership, or `not_found` / `forbidden`.
    pub(crate) async fn membership(
        &self,
        me: UserId,
        group: GroupId,
    ) -> ApiResult<(Arc<GroupMembers>, Member)> {
        let members = match self.members.get(&*self.storage, group).await {
            Ok(members) => members,
            Err(StorageError::NotFound(_)) => return Err(ApiError::not_found("no such group")),
            Err(e) => return Err(e.into()),
        };
        let member = *members
            .get(me)
            .ok_or(ApiError::forbidden("not a member of this group"))?;
        Ok((members, member))
    }

    /// Whether either of the two has blocked the other, read from storage (for changes
    /// that depend on it: friend requests, group additions).
    pub(crate) async fn blocked_between(&self, a: UserId, b: UserId) -> ApiResult<bool> {
        Ok(self.storage.is_blocked(a, b).await? || self.storage.is_blocked(b, a).await?)
    }

    /// Checks that `me` may put `users` into a group: they exist, nobody blocks anybody,
    /// and under the friends-only policy they are `me`'s friends. Read from storage.
    pub(super) async fn may_add(&self, me: UserId, users: &[UserId]) -> ApiResult<()> {
        if self.storage.users(users).await?.len() != users.len() {
            return Err(ApiError::not_found("some of those users do not exist"));
        }
        for &user in users {
            if self.blocked_between(me, user).await? {
                return Err(ApiError::forbidden(format!(
                    "user {user}: one of you has blocked the other"
                )));
            }
            if self.config.direct_policy == DirectPolicy::FriendsOnly
                && !self.storage.is_friend(me, user).await?
            {
                return Err(ApiError::forbidden(format!(
                    "user {user}: you can only add friends"
                )));
            }
        }
        Ok(())
    }

    /// May `me` call `peer`: friends, or members of a shared group, with no block either
    /// way. The tie from the contact cache.
    pub(super) async fn may_call(&self, me: UserId, peer: UserId) -> ApiResult<()> {
        let tie = self.contacts.get(&*self.storage, me, peer).await?;
        if tie.blocked {
            return Err(ApiError::forbidden("one of you has blocked the other"));
        }
        if tie.friends {
            return Ok(());
        }
        let mine: HashSet<_> = self
            .storage
            .user_groups(me)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect();
        let shared = self
            .storage
            .user_groups(peer)
            .await?
            .iter()
            .any(|g| mine.contains(&g.id));
        if shared {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "you can only call friends and members of your groups",
            ))
        }
    }
}
