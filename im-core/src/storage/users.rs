use async_trait::async_trait;

use super::{StorageError, StorageResult};
use crate::model::{Timestamp, User, UserId};

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Unique, already normalised to lower case.
    pub username: String,
    /// Shown to others.
    pub display_name: String,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// The PHC string of the password hash.
    pub password_hash: String,
    /// When.
    pub created_at: Timestamp,
}

/// A change to a user's profile: the fields given are replaced, the others kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    /// A new display name.
    pub display_name: Option<String>,
    /// A new avatar URL (`Some(None)` removes it).
    pub avatar: Option<Option<String>>,
}

/// Accounts and their credentials.
///
/// # Contract
/// - `create_user` assigns a new, never reused id and fails with `Conflict` when the
///   username is taken; two concurrent registrations of one name leave exactly one user.
/// - `user`, `user_by_name` and `password_hash` fail with `NotFound` for unknown users.
/// - `users` returns the users that exist among `ids`, each once, in any order.
/// - `set_password_hash` replaces the hash; `NotFound` for unknown users.
/// - `update_profile` replaces the fields the change gives, and only those, in one
///   atomic step, and returns the user after it; `NotFound` for unknown users. Two
///   changes of different fields at once both apply.
/// - `set_last_seen` records when the user was last online (it never moves back);
///   `last_seen` returns it for those of `ids` that have one, in any order.
/// - `set_last_seen_many` does what `set_last_seen` does for each pair, skipping unknown
///   users instead of failing; two batches naming one user at once leave the later time.
/// - `set_disabled` marks an account disabled or enabled in one atomic step and says
///   whether that changed it; `is_disabled` reads the mark. Both fail with `NotFound`
///   for unknown users. A new account is enabled. A disabled account gains no friend,
///   friend request or group (`Conflict` with [`ACCOUNT_DISABLED`]; it may still be
///   blocked): a request, an
///   accept or an add at the same moment as the disable either comes first, and is seen
///   by whoever reads the account's ties after `set_disabled` returned, or is refused.
///
/// [`ACCOUNT_DISABLED`]: super::ACCOUNT_DISABLED
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user.
    async fn create_user(&self, user: NewUser) -> StorageResult<User>;
    /// A user by id.
    async fn user(&self, id: UserId) -> StorageResult<User>;
    /// A user by (normalised) username.
    async fn user_by_name(&self, username: &str) -> StorageResult<User>;
    /// Several users by id.
    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>>;
    /// The stored password hash.
    async fn password_hash(&self, id: UserId) -> StorageResult<String>;
    /// Replaces the password hash.
    async fn set_password_hash(&self, id: UserId, hash: String) -> StorageResult<()>;
    /// Changes the display name or avatar.
    async fn update_profile(&self, id: UserId, change: ProfileChange) -> StorageResult<User>;
    /// Records when the user's last device went offline.
    async fn set_last_seen(&self, id: UserId, at: Timestamp) -> StorageResult<()>;
    /// Records the last seen time of several users, as [`set_last_seen`] does for each,
    /// skipping users that do not exist. The engine calls it when many users go offline
    /// at once (a node restarting, a network failure), so an adapter should write them
    /// together (one transaction: one commit and one fsync, not one per user); the
    /// default calls [`set_last_seen`] for each.
    ///
    /// [`set_last_seen`]: UserStore::set_last_seen
    async fn set_last_seen_many(&self, seen: &[(UserId, Timestamp)]) -> StorageResult<()> {
        for &(id, at) in seen {
            match self.set_last_seen(id, at).await {
                Ok(()) | Err(StorageError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    /// When each of these users was last seen.
    async fn last_seen(&self, ids: &[UserId]) -> StorageResult<Vec<(UserId, Timestamp)>>;
    /// Disables (`true`) or enables an account; `Ok(true)` if that changed it. A disabled
    /// account cannot log in or use a token (the engine checks [`is_disabled`]). The
    /// default refuses: an adapter without it cannot disable accounts, and
    /// `is_disabled` says no account is.
    ///
    /// [`is_disabled`]: UserStore::is_disabled
    async fn set_disabled(&self, id: UserId, disabled: bool) -> StorageResult<bool> {
        let _ = (id, disabled);
        Err(StorageError::Unsupported("disabling accounts"))
    }
    /// Whether the account is disabled. The default says no (see [`set_disabled`]).
    ///
    /// [`set_disabled`]: UserStore::set_disabled
    async fn is_disabled(&self, id: UserId) -> StorageResult<bool> {
        self.user(id).await.map(|_| false)
    }
}
