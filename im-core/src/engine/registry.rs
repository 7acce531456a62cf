//! The logged-in sessions of this node: by user, and by group ("rooms").
//!
//! A group message reaches this node's members through the group's *room*: the list of
//! this node's sessions whose users are members, built once from the cached membership
//! and kept up to date as sessions come and go. A delivery is then one pass over the
//! sessions that are here, a queue push each, instead of a lookup per member in the
//! node-wide map (measured with 10,000 members: the per-member walk was half of the
//! fan-out's time).
//!
//! A room belongs to one membership view ([`GroupMembers`], shared with the member
//! cache): a send decided on a newer view rebuilds it, so a room never reaches anyone
//! the sender's authorisation did not see as a member. Each user's entry lists the rooms
//! they are in, so a session that starts or ends joins or leaves them at once. Rooms are
//! bounded like the member cache: a full registry drops them all and rebuilds on demand.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::fanout::{Outgoing, Skip};
use super::membership::GroupMembers;
use super::session::SessionHandle;
use crate::model::{DeviceId, GroupId, Timestamp, UserId};
use crate::protocol::KickCode;

/// The sessions of this node.
#[derive(Debug)]
pub(crate) struct Registry {
    // A std lock: it is held only for map operations and queue pushes, never across an
    // await, and a delivery takes it once per message for all recipients.
    inner: RwLock<Inner>,
    max_rooms: usize,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<UserId, Entry>,
    rooms: HashMap<GroupId, Room>,
    sessions: usize,
}

/// One user: their sessions here, and the rooms they are a member of.
#[derive(Debug, Default)]
struct Entry {
    sessions: Vec<Arc<SessionHandle>>,
    rooms: Vec<GroupId>,
}

/// A group's sessions on this node.
#[derive(Debug)]
struct Room {
    /// The membership the room was built from.
    members: Arc<GroupMembers>,
    sessions: Vec<Arc<SessionHandle>>,
}

impl Registry {
    /// A registry keeping rooms for at most `max_rooms` groups.
    pub(crate) fn new(max_rooms: usize) -> Self {
        Registry {
            inner: RwLock::new(Inner::default()),
            max_rooms: max_rooms.max(1),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a session; returns the sessions of the same device it replaces (to be kicked).
    pub(crate) fn attach(&self, session: Arc<SessionHandle>) -> Vec<Arc<SessionHandle>> {
        let mut guard = self.write();
        let inner = &mut *guard;
        let entry = inner.users.entry(session.user).or_default();
        let (replaced, kept): (Vec<_>, Vec<_>) = entry
            .sessions
            .drain(..)
            .partition(|s| s.device == session.device);
        entry.sessions = kept;
        entry.sessions.push(session.clone());
        for group in &entry.rooms {
            if let Some(room) = inner.rooms.get_mut(group) {
                room.sessions
                    .retain(|s| !replaced.iter().any(|r| r.id == s.id));
                room.sessions.push(session.clone());
            }
        }
        inner.sessions = inner.sessions + 1 - replaced.len();
        replaced
    }

    /// Removes a session if it is still registered.
    pub(crate) fn detach(&self, user: UserId, session_id: u64) {
        let mut guard = self.write();
        let inner = &mut *guard;
        let Some(entry) = inner.users.get_mut(&user) else {
            return;
        };
        let before = entry.sessions.len();
        entry.sessions.retain(|s| s.id != session_id);
        if entry.sessions.len() == before {
            return;
        }
        inner.sessions -= 1;
        for group in &entry.rooms {
            if let Some(room) = inner.rooms.get_mut(group) {
                room.sessions.retain(|s| s.id != session_id);
            }
        }
        if entry.sessions.is_empty() && entry.rooms.is_empty() {
            inner.users.remove(&user);
        }
    }

    /// Delivers to the sessions of `users` here, except those `skip` leaves out; adds to
    /// `absent` the users with no session here, when asked.
    pub(crate) fn deliver(
        &self,
        users: &[UserId],
        skip: Skip<'_>,
        frame: &Outgoing,
        mut absent: Option<&mut Vec<UserId>>,
    ) {
        let inner = self.read();
        for user in users {
            match inner.users.get(user).filter(|e| !e.sessions.is_empty()) {
                Some(entry) => {
                    for s in &entry.sessions {
                        if !skip.skips(s) {
                            s.deliver(frame);
                        }
                    }
                }
                None => {
                    if let Some(absent) = absent.as_deref_mut() {
                        absent.push(*user);
                    }
                }
            }
        }
    }

    /// Delivers to the group's sessions here (its room, built or rebuilt for `members`
    /// if needed), except those `skip` leaves out; adds to `absent` the members with no
    /// session here, when asked.
    pub(crate) fn deliver_group(
        &self,
        members: &Arc<GroupMembers>,
        skip: Skip<'_>,
        frame: &Outgoing,
        absent: Option<&mut Vec<UserId>>,
    ) {
        let group = members.group.id;
        {
            let inner = self.read();
            if let Some(room) = inner.rooms.get(&group)
                && Arc::ptr_eq(&room.members, members)
            {
                Self::deliver_room(&inner, room, skip, frame, absent);
                return;
            }
        }
        let mut inner = self.write();
        inner.build_room(members, self.max_rooms);
        if let Some(room) = inner.rooms.get(&group) {
            Self::deliver_room(&inner, room, skip, frame, absent);
        }
    }

    fn deliver_room(
        inner: &Inner,
        room: &Room,
        skip: Skip<'_>,
        frame: &Outgoing,
        absent: Option<&mut Vec<UserId>>,
    ) {
        for s in &room.sessions {
            if !skip.skips(s) {
                s.deliver(frame);
            }
        }
        if let Some(absent) = absent {
            absent.extend(room.members.ids.iter().copied().filter(|u| {
                inner
                    .users
                    .get(u)
                    .is_none_or(|entry| entry.sessions.is_empty())
            }));
        }
    }

    /// Forgets a group's room (its membership changed); the next delivery rebuilds it.
    pub(crate) fn forget_room(&self, group: GroupId) {
        self.write().remove_room(group);
    }

    /// Like [`deliver`](Self::deliver), skipping a device instead of a session id
    /// (envelopes from other nodes name the sender's device), and only to `only`'s
    /// sessions if given. Whether any session got it.
    pub(crate) fn deliver_skip_device(
        &self,
        users: &[UserId],
        skip: Option<&(UserId, DeviceId)>,
        only: Option<&DeviceId>,
        frame: &Outgoing,
    ) -> bool {
        let inner = self.read();
        let mut delivered = false;
        for user in users {
            for s in inner.users.get(user).into_iter().flat_map(|e| &e.sessions) {
                if skip.is_none_or(|(u, d)| *u != s.user || *d != s.device)
                    && only.is_none_or(|d| *d == s.device)
                {
                    s.deliver(frame);
                    delivered = true;
                }
            }
        }
        delivered
    }

    /// Kicks a user's sessions: one device's, or all but `keep`'s; with `started_before`,
    /// only those that started no later.
    pub(crate) fn kick(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
        keep: Option<&DeviceId>,
        started_before: Option<Timestamp>,
        code: KickCode,
    ) {
        let inner = self.read();
        for s in inner.users.get(&user).into_iter().flat_map(|e| &e.sessions) {
            let hit = match device {
                Some(d) => &s.device == d,
                None => keep != Some(&s.device),
            };
            if hit && started_before.is_none_or(|t| s.since <= t) {
                s.kick(code);
            }
        }
    }

    /// Whether the user has any session here.
    pub(crate) fn has_user(&self, user: UserId) -> bool {
        self.read()
            .users
            .get(&user)
            .is_some_and(|e| !e.sessions.is_empty())
    }

    /// Whether a session of this device is registered.
    pub(crate) fn has_device(&self, user: UserId, device: &DeviceId) -> bool {
        self.read()
            .users
            .get(&user)
            .is_some_and(|e| e.sessions.iter().any(|s| &s.device == device))
    }

    /// Every session, for presence refresh.
    pub(crate) fn all(&self) -> Vec<Arc<SessionHandle>> {
        self.read()
            .users
            .values()
            .flat_map(|e| e.sessions.iter().cloned())
            .collect()
    }

    /// How many sessions there are.
    pub(crate) fn len(&self) -> usize {
        self.read().sessions
    }
}

impl Inner {
    /// (Re)builds the group's room for `members`.
    fn build_room(&mut self, members: &Arc<GroupMembers>, max_rooms: usize) {
        let group = members.group.id;
        if self
            .rooms
            .get(&group)
            .is_some_and(|r| Arc::ptr_eq(&r.members, members))
        {
            return;
        }
        self.remove_room(group);
        if self.rooms.len() >= max_rooms {
            // Crude but bounded, like the member cache: start over; hot rooms come back
            // on their next message.
            let groups: Vec<GroupId> = self.rooms.keys().copied().collect();
            for g in groups {
                self.remove_room(g);
            }
        }
        let mut sessions = Vec::new();
        for user in &members.ids {
            let entry = self.users.entry(*user).or_default();
            entry.rooms.push(group);
            sessions.extend(entry.sessions.iter().cloned());
        }
        self.rooms.insert(
            group,
            Room {
                members: members.clone(),
                sessions,
            },
        );
    }

    fn remove_room(&mut self, group: GroupId) {
        let Some(room) = self.rooms.remove(&group) else {
            return;
        };
        for user in &room.members.ids {
            if let Some(entry) = self.users.get_mut(user) {
                entry.rooms.retain(|g| *g != group);
                if entry.sessions.is_empty() && entry.rooms.is_empty() {
                    self.users.remove(user);
                }
            }
        }
    }
}
