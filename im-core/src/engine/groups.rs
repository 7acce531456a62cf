//! Groups: creation, membership, roles, settings.
//!
//! Every change is stored together with a system message in the group's timeline (so
//! sync replays it), invalidates the membership cache on every node, and is pushed to the
//! members before and after the change (so a kicked member learns of it too).

use std::sync::Arc;

use super::Shared;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::fanout::{Outgoing, Recipients};
use super::membership::GroupMembers;
use super::session::SessionHandle;
use super::validate;
use crate::model::{Body, Group, GroupId, Member, Message, Role, SystemEvent, Timestamp, UserId};
use crate::protocol::{Event, ServerFrame, reply, request};
use crate::storage::{
    ACCOUNT_DISABLED, GROUP_FULL, GroupChange, NewGroup, NewMessage, StorageError,
};

impl Shared {
    fn system(me: &SessionHandle, event: SystemEvent) -> NewMessage {
        NewMessage {
            sender: me.user,
            sender_device: me.device.clone(),
            client_id: String::new(),
            body: Body::System { event },
            sent_at: Timestamp::now(),
            reply_to: None,
            forwarded: None,
            mentions: Vec::new(),
        }
    }

    /// Applies a change, invalidates caches, pushes the system message to `notify` and
    /// the members after the change, and replies with the group as it is now.
    pub(super) async fn change_group(
        &self,
        me: &SessionHandle,
        group: GroupId,
        mut change: GroupChange,
        event: SystemEvent,
        before: &GroupMembers,
    ) -> ApiResult<reply::Group> {
        // The change was allowed on `before`, a cached view: storage applies it only if the
        // actor's role (and the targets' the caller added) is still what was seen.
        change
            .expect
            .push((me.user, before.get(me.user).map(|m| m.role)));
        let (settings, message) = match self
            .storage
            .update_group(group, change, Self::system(me, event))
            .await
        {
            Ok(done) => done,
            Err(StorageError::Conflict(GROUP_FULL)) => {
                self.invalidate_group(group).await;
                return Err(ApiError::too_large(format!(
                    "a group has at most {} members",
                    self.config.max_group_members
                )));
            }
            Err(e @ StorageError::Conflict(ACCOUNT_DISABLED)) => return Err(e.into()),
            Err(StorageError::Conflict(_)) => {
                self.invalidate_group(group).await;
                return Err(ApiError::conflict(
                    "the group changed meanwhile; look again and retry",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        self.invalidate_group(group).await;
        let after = self.members.get(&*self.storage, group).await?;
        let mut notify: Vec<UserId> = before.ids.clone();
        notify.extend(after.ids.iter().filter(|u| before.get(**u).is_none()));
        self.push_message(Recipients::Users(&notify), me, message)
            .await;
        Ok(group_reply(settings, after.ids.len()))
    }

    /// Pushes a stored message to these users' sessions, except the sender's own, and
    /// tells the hooks who was offline.
    pub(crate) async fn push_message(
        &self,
        to: Recipients<'_>,
        me: &SessionHandle,
        message: Message,
    ) {
        let skip = me.skip();
        let sender = message.sender;
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::Message { message },
        });
        let wants_offline = self.hooks.wants_offline_recipients();
        let mut offline = self.fan_out(to, skip, &out, wants_offline).await;
        offline.retain(|u| *u != sender);
        // The hook reads the message from the frame already built: no copy per message.
        if let Some(ServerFrame::Event {
            event: Event::Message { message },
        }) = out.frame()
        {
            self.hooks.on_message_stored(message, &offline).await;
        }
    }

    pub(super) async fn create_group(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::CreateGroup,
    ) -> ApiResult<reply::Group> {
        let request::CreateGroup {
            name,
            members,
            open,
        } = request;
        let name = validate::name("name", &name)?;
        let mut others: Vec<UserId> = members.iter().copied().filter(|&u| u != me.user).collect();
        others.sort();
        others.dedup();
        if others.len() + 1 > self.config.max_group_members {
            return Err(ApiError::too_large(format!(
                "a group has at most {} members",
                self.config.max_group_members
            )));
        }
        self.may_add(me.user, &others).await?;
        let mut all = vec![(me.user, Role::Owner)];
        all.extend(others.iter().map(|&u| (u, Role::Member)));
        let event = SystemEvent::GroupCreated {
            by: me.user,
            name: name.clone(),
            members: all.iter().map(|(u, _)| *u).collect(),
        };
        let (group, message) = self
            .storage
            .create_group(
                NewGroup {
                    name,
                    owner: me.user,
                    open,
                    created_at: Timestamp::now(),
                },
                all.clone(),
                Self::system(me, event),
            )
            .await?;
        let recipients: Vec<UserId> = all.iter().map(|(u, _)| *u).collect();
        self.push_message(Recipients::Users(&recipients), me, message)
            .await;
        Ok(group_reply(group, recipients.len()))
    }

    pub(super) async fn add_members(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::AddMembers,
    ) -> ApiResult<reply::Group> {
        let request::AddMembers { group, users } = request;
        let (before, _) = self.membership(me.user, group).await?;
        let mut new: Vec<UserId> = users
            .iter()
            .copied()
            .filter(|u| before.get(*u).is_none())
            .collect();
        new.sort();
        new.dedup();
        if new.is_empty() {
            return Err(ApiError::conflict("they are all members already"));
        }
        if before.ids.len() + new.len() > self.config.max_group_members {
            return Err(ApiError::too_large(format!(
                "a group has at most {} members",
                self.config.max_group_members
            )));
        }
        self.may_add(me.user, &new).await?;
        // Decided on a view in which they are not members and the group has room: two
        // additions at once cannot both add the same user or both take the last places.
        let change = GroupChange {
            add: new.iter().map(|&u| (u, Role::Member)).collect(),
            expect: new.iter().map(|&u| (u, None)).collect(),
            max_members: Some(self.config.max_group_members),
            ..GroupChange::default()
        };
        let event = SystemEvent::MembersAdded {
            by: me.user,
            users: new,
        };
        self.change_group(me, group, change, event, &before).await
    }

    pub(super) async fn join_group(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::JoinGroup,
    ) -> ApiResult<reply::Group> {
        let group = request.group;
        let before = match self.members.get(&*self.storage, group).await {
            Ok(g) => g,
            Err(StorageError::NotFound(_)) => return Err(ApiError::not_found("no such group")),
            Err(e) => return Err(e.into()),
        };
        if before.get(me.user).is_some() {
            return Err(ApiError::conflict("already a member"));
        }
        // A group nobody is in (its last member's account was deleted) has nobody to
        // run it: it is gone.
        if before.ids.is_empty() {
            return Err(ApiError::not_found("no such group"));
        }
        if !before.group.open {
            return Err(ApiError::forbidden("this group is invite-only"));
        }
        if before.ids.len() >= self.config.max_group_members {
            return Err(ApiError::too_large("the group is full"));
        }
        let change = GroupChange {
            add: vec![(me.user, Role::Member)],
            max_members: Some(self.config.max_group_members),
            ..GroupChange::default()
        };
        let event = SystemEvent::MemberJoined { user: me.user };
        self.change_group(me, group, change, event, &before).await
    }

    pub(super) async fn leave_group(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::LeaveGroup,
    ) -> ApiResult<reply::Group> {
        let group = request.group;
        let (before, member) = self.membership(me.user, group).await?;
        if member.role == Role::Owner {
            return Err(ApiError::conflict(
                "the owner cannot leave; transfer ownership first",
            ));
        }
        let change = GroupChange {
            remove: vec![me.user],
            ..GroupChange::default()
        };
        let event = SystemEvent::MemberLeft { user: me.user };
        self.change_group(me, group, change, event, &before).await
    }

    pub(super) async fn kick_member(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::KickMember,
    ) -> ApiResult<reply::Group> {
        let request::KickMember { group, user } = request;
        let (before, member) = self.membership(me.user, group).await?;
        let target = *before
            .get(user)
            .ok_or(ApiError::not_found("not a member of this group"))?;
        if user == me.user {
            return Err(ApiError::invalid("use leave_group to leave"));
        }
        if member.role < Role::Admin || member.role <= target.role {
            return Err(ApiError::forbidden(
                "only the owner, or an admin for plain members, can remove a member",
            ));
        }
        let change = GroupChange {
            remove: vec![user],
            expect: vec![(user, Some(target.role))],
            ..GroupChange::default()
        };
        let event = SystemEvent::MemberKicked { by: me.user, user };
        self.change_group(me, group, change, event, &before).await
    }

    pub(super) async fn set_role(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::SetRole,
    ) -> ApiResult<reply::Group> {
        let request::SetRole { group, user, role } = request;
        let (before, member) = self.membership(me.user, group).await?;
        if member.role != Role::Owner {
            return Err(ApiError::forbidden("only the owner can change roles"));
        }
        if role == Role::Owner {
            return Err(ApiError::invalid("use transfer_group to change the owner"));
        }
        let target = *before
            .get(user)
            .ok_or(ApiError::not_found("not a member of this group"))?;
        if target.role == Role::Owner {
            return Err(ApiError::invalid(
                "the owner's role changes only by transfer",
            ));
        }
        if target.role == role {
            return Err(ApiError::conflict("the member already has that role"));
        }
        let change = GroupChange {
            roles: vec![(user, role)],
            expect: vec![(user, Some(target.role))],
            ..GroupChange::default()
        };
        let event = SystemEvent::RoleChanged {
            by: me.user,
            user,
            role,
        };
        self.change_group(me, group, change, event, &before).await
    }

    pub(super) async fn rename_group(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::RenameGroup,
    ) -> ApiResult<reply::Group> {
        let request::RenameGroup { group, name } = request;
        let name = validate::name("name", &name)?;
        let (before, member) = self.membership(me.user, group).await?;
        if member.role < Role::Admin {
            return Err(ApiError::forbidden("only the owner or an admin can rename"));
        }
        let change = GroupChange {
            name: Some(name.clone()),
            ..GroupChange::default()
        };
        let event = SystemEvent::Renamed { by: me.user, name };
        self.change_group(me, group, change, event, &before).await
    }

    pub(super) async fn transfer_group(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::TransferGroup,
    ) -> ApiResult<reply::Group> {
        let request::TransferGroup { group, to } = request;
        let (before, member) = self.membership(me.user, group).await?;
        if member.role != Role::Owner {
            return Err(ApiError::forbidden("only the owner can transfer the group"));
        }
        if to == me.user {
            return Err(ApiError::invalid("you already own the group"));
        }
        let target = *before
            .get(to)
            .ok_or(ApiError::not_found("not a member of this group"))?;
        let change = GroupChange {
            roles: vec![(to, Role::Owner), (me.user, Role::Admin)],
            owner: Some(to),
            expect: vec![(to, Some(target.role))],
            ..GroupChange::default()
        };
        let event = SystemEvent::OwnerChanged { from: me.user, to };
        self.change_group(me, group, change, event, &before).await
    }

    pub(super) async fn group_info(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::GroupInfo,
    ) -> ApiResult<reply::Group> {
        let group = request.group;
        let (members, _) = self.membership(me.user, group).await?;
        Ok(group_reply(members.group.clone(), members.ids.len()))
    }

    pub(super) async fn group_members(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::GroupMembers,
    ) -> ApiResult<reply::Members> {
        let request::GroupMembers {
            group,
            after,
            limit,
        } = request;
        let (members, _) = self.membership(me.user, group).await?;
        let limit = limit.unwrap_or(200).clamp(1, 500) as usize;
        let mut page: Vec<Member> = members
            .members
            .values()
            .filter(|m| after.is_none_or(|a| m.user > a))
            .copied()
            .collect();
        page.sort_unstable_by_key(|m| m.user);
        let more = page.len() > limit;
        page.truncate(limit);
        Ok(reply::Members {
            members: page,
            more,
        })
    }

    pub(super) async fn my_groups(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        _: request::MyGroups,
    ) -> ApiResult<reply::Groups> {
        let mut groups = self.storage.user_groups(me.user).await?;
        groups.sort_by_key(|g| g.id);
        Ok(reply::Groups { groups })
    }
}

fn group_reply(group: Group, members: usize) -> reply::Group {
    reply::Group {
        group,
        member_count: members as u64,
    }
}
