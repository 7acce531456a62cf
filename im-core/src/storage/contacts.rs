use async_trait::async_trait;

use super::StorageResult;
use crate::model::{Friend, FriendRequest, Timestamp, UserId};

/// What [`ContactStore::put_friend_request`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The request is pending (new, or replacing the same pair's earlier one).
    Pending,
    /// The other user had asked first: the two are friends now, no request left between
    /// them.
    Accepted,
    /// They were friends already; nothing changed.
    AlreadyFriends,
    /// One of the two has blocked the other; nothing changed.
    Blocked,
}

/// Friend requests, friendships and blocks.
///
/// # Contract
/// - At most one pending request per ordered pair `(from, to)`; `put_friend_request`
///   inserts or replaces it (a repeated request updates the note) and returns
///   [`RequestOutcome::Pending`], with two exceptions decided atomically with the
///   insert: when `to` has a pending request to `from`, the two become friends instead
///   (both requests deleted, `since` the new request's time; [`RequestOutcome::Accepted`]),
///   and nothing changes when either has blocked the other ([`RequestOutcome::Blocked`],
///   checked first) or they are friends already ([`RequestOutcome::AlreadyFriends`]).
///   So two users who ask each other at the same moment end up friends with no request
///   left, whichever is stored first, and a request never outlives a block made at the
///   same moment.
/// - `put_friend_request` and `accept_friend_request` fail with `Conflict`
///   ([`ACCOUNT_DISABLED`](super::ACCOUNT_DISABLED)), changing nothing, when either user
///   is a disabled account (see `UserStore::set_disabled`).
/// - `friend_requests(u)` lists every pending request from or to `u`.
/// - `accept_friend_request(from, to, at)` atomically deletes the request `from → to` and
///   makes the two friends both ways (any request `to → from` is deleted too); it fails
///   with `NotFound`, changing nothing, when there is no such request.
/// - Friendship is symmetric: after it, `is_friend(a, b) == is_friend(b, a)` and each
///   lists the other in `friends`. `remove_friend` ends it both ways and returns
///   whether it existed.
/// - Blocks are directed: `set_blocked(u, t, true)` means `u` blocks `t`. It returns
///   whether anything changed (of two identical calls at once, one says so), and blocking
///   deletes the pending requests between the two.
/// - Calls on the same two users at once (a request each way, accepts each way, a block
///   and an accept, a block and a request) behave as if made one after the other, and none fails for the other
///   (a deadlock the database reports is not an answer).
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// Inserts or replaces a pending request, or accepts the reverse one (see the
    /// contract).
    async fn put_friend_request(&self, request: FriendRequest) -> StorageResult<RequestOutcome>;
    /// Pending requests from or to `user`.
    async fn friend_requests(&self, user: UserId) -> StorageResult<Vec<FriendRequest>>;
    /// Deletes the request `from → to`; returns whether it existed.
    async fn delete_friend_request(&self, from: UserId, to: UserId) -> StorageResult<bool>;
    /// Turns the request `from → to` into a friendship, atomically.
    async fn accept_friend_request(
        &self,
        from: UserId,
        to: UserId,
        at: Timestamp,
    ) -> StorageResult<()>;
    /// A user's friends.
    async fn friends(&self, user: UserId) -> StorageResult<Vec<Friend>>;
    /// Whether `a` and `b` are friends.
    async fn is_friend(&self, a: UserId, b: UserId) -> StorageResult<bool>;
    /// Ends a friendship; returns whether it existed.
    async fn remove_friend(&self, a: UserId, b: UserId) -> StorageResult<bool>;
    /// Blocks or unblocks `target` for `user`; returns whether anything changed.
    async fn set_blocked(&self, user: UserId, target: UserId, blocked: bool)
    -> StorageResult<bool>;
    /// Whether `user` has blocked `target`.
    async fn is_blocked(&self, user: UserId, target: UserId) -> StorageResult<bool>;
    /// Whom `user` has blocked.
    async fn blocked(&self, user: UserId) -> StorageResult<Vec<UserId>>;
}
