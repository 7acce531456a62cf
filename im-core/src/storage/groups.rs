use async_trait::async_trait;

use super::{NewMessage, StorageResult};
use crate::model::{Group, GroupId, Member, Message, Role, Timestamp, UserId};

/// A group to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    /// Display name.
    pub name: String,
    /// The creator, who becomes the owner.
    pub owner: UserId,
    /// Whether anyone may join.
    pub open: bool,
    /// When.
    pub created_at: Timestamp,
}

/// A change to a group, applied atomically together with the system message that
/// records it in the group's timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupChange {
    /// Users to add, with their roles. Users who are already members are left as they are.
    pub add: Vec<(UserId, Role)>,
    /// Members to remove.
    pub remove: Vec<UserId>,
    /// New roles for existing members.
    pub roles: Vec<(UserId, Role)>,
    /// A new name.
    pub name: Option<String>,
    /// A new owner (who must also get `Role::Owner` through `roles`).
    pub owner: Option<UserId>,
    /// What the change was decided on: each user's role in the group as the caller saw it
    /// (`None`: not a member). If any differs when the change would apply, nothing is
    /// changed or recorded and the result is `Conflict`, so two changes decided on the
    /// same view (two ownership transfers, say) cannot both apply.
    pub expect: Vec<(UserId, Option<Role>)>,
    /// With `Some(n)`, the change applies only if the group has at most `n` members
    /// after it; otherwise `Conflict` ([`GROUP_FULL`]), nothing changed or recorded.
    /// Checked atomically with the change, so two additions at once cannot pass the
    /// limit together.
    pub max_members: Option<usize>,
}

/// The `Conflict` of an `update_group` that would take a group over
/// [`GroupChange::max_members`].
pub const GROUP_FULL: &str = "the group would be over its member limit";

/// Groups and their members.
///
/// # Contract
/// - `create_group` assigns a new id, stores the group, its `members` and the first
///   message of its timeline (seq 1, `record`) in one atomic step, and returns both.
///   Every first member's `joined_seq` is 1 and their read cursor is set to 1.
/// - `update_group` applies `change` and appends `record` to the group's timeline
///   atomically, returning the group as it is after the change and the stored message.
///   Added members get `joined_seq` = the record's seq, and their read cursor is moved
///   up to it. `NotFound` for an unknown group; `Conflict` (and no change, nothing
///   appended) when a role in `change.expect` is not what it was expected to be, or
///   the group would have more than `change.max_members`, checked atomically with the
///   change; `Conflict` ([`ACCOUNT_DISABLED`](super::ACCOUNT_DISABLED)) when a member
///   added (or a first member of `create_group`) is a disabled account.
/// - `group` and `members` fail with `NotFound` for an unknown group; `member` returns
///   `None` for a non-member. `user_groups` lists the groups a user is a member of now.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Creates a group with its first members and first timeline message.
    async fn create_group(
        &self,
        group: NewGroup,
        members: Vec<(UserId, Role)>,
        record: NewMessage,
    ) -> StorageResult<(Group, Message)>;
    /// Changes a group and records the change in its timeline.
    async fn update_group(
        &self,
        group: GroupId,
        change: GroupChange,
        record: NewMessage,
    ) -> StorageResult<(Group, Message)>;
    /// A group's settings.
    async fn group(&self, group: GroupId) -> StorageResult<Group>;
    /// A group's members.
    async fn members(&self, group: GroupId) -> StorageResult<Vec<Member>>;
    /// One member, if `user` is one.
    async fn member(&self, group: GroupId, user: UserId) -> StorageResult<Option<Member>>;
    /// The groups `user` belongs to.
    async fn user_groups(&self, user: UserId) -> StorageResult<Vec<Group>>;
}
