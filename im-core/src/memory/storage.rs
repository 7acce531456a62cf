use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::model::{
    ConversationId, DeviceId, Friend, FriendRequest, Group, GroupId, Member, Message, MessageId,
    Pin, Reaction, Role, Seq, Timestamp, User, UserId,
};
use crate::storage::{
    ACCOUNT_DISABLED, AMENDED_AWAY, Amendment, Appended, ContactStore, ConversationState, Cursor,
    CursorQuery, DeviceRecord, DeviceStore, GROUP_FULL, GroupChange, GroupStore, Invite,
    InviteStore, MessageRange, MessageStore, NewGroup, NewMessage, NewUser, PINS_FULL, PinStore,
    ProfileChange, ReactionStore, RequestOutcome, SearchQuery, SearchStore, StorageError,
    StorageResult, UserStore, indexed_text,
};

/// Storage in this process's memory. Complete (it passes `storage_conformance!`) and
/// fast; everything is lost when the process exits.
///
/// One mutex guards all state: every operation is a few map lookups, so the lock is held
/// for well under a microsecond, and multi-record operations (accepting a friend request,
/// a membership change with its system message) are trivially atomic.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_user: u64,
    users: HashMap<UserId, (User, String)>,
    by_name: HashMap<String, UserId>,
    disabled: HashSet<UserId>,
    devices: HashMap<UserId, BTreeMap<DeviceId, DeviceRecord>>,
    requests: BTreeMap<(UserId, UserId), FriendRequest>,
    friends: HashMap<UserId, BTreeMap<UserId, Timestamp>>,
    blocks: HashSet<(UserId, UserId)>,
    next_group: u64,
    groups: HashMap<GroupId, GroupEntry>,
    user_groups: HashMap<UserId, BTreeSet<GroupId>>,
    next_message: u64,
    timelines: HashMap<ConversationId, Timeline>,
    user_direct: HashMap<UserId, BTreeSet<ConversationId>>,
    /// Receipt cursors by conversation, then user (ordered, for paged listing).
    cursors: HashMap<ConversationId, BTreeMap<UserId, Cursor>>,
    hidden: HashMap<(UserId, ConversationId), BTreeSet<Seq>>,
    /// The newest seq that mentions each user, by conversation and user.
    mentions: HashMap<(ConversationId, UserId), Seq>,
    /// Pins by conversation, then seq.
    pins: HashMap<ConversationId, BTreeMap<Seq, Pin>>,
    /// Reactions by conversation, then (seq, user).
    reactions: HashMap<ConversationId, BTreeMap<(Seq, UserId), String>>,
    last_seen: HashMap<UserId, Timestamp>,
    /// Invite codes by id.
    invites: HashMap<String, Invite>,
    /// Where live messages name each attachment url (`Body::attachment`).
    attachments: HashMap<String, BTreeSet<(ConversationId, Seq)>>,
}

#[derive(Debug)]
struct GroupEntry {
    group: Group,
    members: BTreeMap<UserId, Member>,
}

#[derive(Debug, Default)]
struct Timeline {
    /// `messages[i]` has seq `i + 1`.
    messages: Vec<Message>,
    /// Idempotency keys to positions in `messages`.
    keys: HashMap<(UserId, DeviceId, String), usize>,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change (every
        // operation validates before it writes), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// `Conflict` ([`ACCOUNT_DISABLED`]) when one of `users` is a disabled account.
    fn refuse_disabled(&self, users: &[UserId]) -> StorageResult<()> {
        if users.iter().any(|u| self.disabled.contains(u)) {
            return Err(StorageError::Conflict(ACCOUNT_DISABLED));
        }
        Ok(())
    }

    fn append(&mut self, conversation: ConversationId, m: NewMessage) -> Appended {
        let timeline = self.timelines.entry(conversation).or_default();
        let key = (m.sender, m.sender_device.clone(), m.client_id.clone());
        if !m.client_id.is_empty()
            && let Some(&i) = timeline.keys.get(&key)
        {
            return Appended {
                message: timeline.messages[i].clone(),
                duplicate: true,
            };
        }
        self.next_message += 1;
        let seq = Seq(timeline.messages.len() as u64 + 1);
        let message = m.stored(MessageId(self.next_message), conversation, seq);
        if !message.client_id.is_empty() {
            timeline.keys.insert(key, timeline.messages.len());
        }
        timeline.messages.push(message.clone());
        if let Some(url) = message.body.attachment() {
            self.attachments
                .entry(url.to_owned())
                .or_default()
                .insert((conversation, message.seq));
        }
        self.set_read(message.sender, conversation, message.seq);
        for &user in &message.mentions {
            let mark = self.mentions.entry((conversation, user)).or_default();
            *mark = (*mark).max(message.seq);
        }
        if let ConversationId::Direct(a, b) = conversation
            && message.seq == Seq(1)
        {
            self.user_direct.entry(a).or_default().insert(conversation);
            self.user_direct.entry(b).or_default().insert(conversation);
        }
        Appended {
            message,
            duplicate: false,
        }
    }

    fn cursor(&mut self, user: UserId, conversation: ConversationId) -> &mut Cursor {
        self.cursors
            .entry(conversation)
            .or_default()
            .entry(user)
            .or_insert(Cursor {
                user,
                ..Cursor::default()
            })
    }

    fn cursor_of(&self, user: UserId, conversation: ConversationId) -> Cursor {
        self.cursors
            .get(&conversation)
            .and_then(|c| c.get(&user))
            .copied()
            .unwrap_or(Cursor {
                user,
                ..Cursor::default()
            })
    }

    fn set_read(&mut self, user: UserId, conversation: ConversationId, seq: Seq) -> Seq {
        let cursor = self.cursor(user, conversation);
        cursor.read = cursor.read.max(seq);
        cursor.delivered = cursor.delivered.max(cursor.read);
        cursor.read
    }

    fn last_seq(&self, conversation: ConversationId) -> Seq {
        self.timelines
            .get(&conversation)
            .map_or(Seq::ZERO, |t| Seq(t.messages.len() as u64))
    }
}

#[async_trait]
impl UserStore for MemoryStorage {
    async fn create_user(&self, user: NewUser) -> StorageResult<User> {
        let mut s = self.lock();
        if s.by_name.contains_key(&user.username) {
            return Err(StorageError::Conflict("username taken"));
        }
        s.next_user += 1;
        let record = User {
            id: UserId(s.next_user),
            username: user.username,
            display_name: user.display_name,
            avatar: user.avatar,
            created_at: user.created_at,
        };
        s.by_name.insert(record.username.clone(), record.id);
        s.users
            .insert(record.id, (record.clone(), user.password_hash));
        Ok(record)
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> StorageResult<bool> {
        let mut s = self.lock();
        if !s.users.contains_key(&id) {
            return Err(StorageError::NotFound("user"));
        }
        Ok(if disabled {
            s.disabled.insert(id)
        } else {
            s.disabled.remove(&id)
        })
    }

    async fn is_disabled(&self, id: UserId) -> StorageResult<bool> {
        let s = self.lock();
        if !s.users.contains_key(&id) {
            return Err(StorageError::NotFound("user"));
        }
        Ok(s.disabled.contains(&id))
    }

    async fn update_profile(&self, id: UserId, change: ProfileChange) -> StorageResult<User> {
        let mut s = self.lock();
        let (user, _) = s.users.get_mut(&id).ok_or(StorageError::NotFound("user"))?;
        if let Some(name) = change.display_name {
            user.display_name = name;
        }
        if let Some(avatar) = change.avatar {
            user.avatar = avatar;
        }
        Ok(user.clone())
    }

    async fn user(&self, id: UserId) -> StorageResult<User> {
        self.lock()
            .users
            .get(&id)
            .map(|(u, _)| u.clone())
            .ok_or(StorageError::NotFound("user"))
    }

    async fn user_by_name(&self, username: &str) -> StorageResult<User> {
        let s = self.lock();
        s.by_name
            .get(username)
            .and_then(|id| s.users.get(id))
            .map(|(u, _)| u.clone())
            .ok_or(StorageError::NotFound("user"))
    }

    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        let s = self.lock();
        let unique: BTreeSet<_> = ids.iter().collect();
        Ok(unique
            .into_iter()
            .filter_map(|id| s.users.get(id).map(|(u, _)| u.clone()))
            .collect())
    }

    async fn password_hash(&self, id: UserId) -> StorageResult<String> {
        self.lock()
            .users
            .get(&id)
            .map(|(_, h)| h.clone())
            .ok_or(StorageError::NotFound("user"))
    }

    async fn set_password_hash(&self, id: UserId, hash: String) -> StorageResult<()> {
        match self.lock().users.get_mut(&id) {
            Some((_, h)) => {
                *h = hash;
                Ok(())
            }
            None => Err(StorageError::NotFound("user")),
        }
    }

    async fn set_last_seen(&self, id: UserId, at: Timestamp) -> StorageResult<()> {
        let mut s = self.lock();
        if !s.users.contains_key(&id) {
            return Err(StorageError::NotFound("user"));
        }
        let seen = s.last_seen.entry(id).or_insert(at);
        *seen = (*seen).max(at);
        Ok(())
    }

    async fn last_seen(&self, ids: &[UserId]) -> StorageResult<Vec<(UserId, Timestamp)>> {
        let s = self.lock();
        let unique: BTreeSet<_> = ids.iter().collect();
        Ok(unique
            .into_iter()
            .filter_map(|id| s.last_seen.get(id).map(|at| (*id, *at)))
            .collect())
    }
}

#[async_trait]
impl DeviceStore for MemoryStorage {
    async fn put_device(&self, record: DeviceRecord) -> StorageResult<()> {
        self.lock()
            .devices
            .entry(record.user)
            .or_default()
            .insert(record.device.id.clone(), record);
        Ok(())
    }

    async fn device(&self, user: UserId, device: &DeviceId) -> StorageResult<DeviceRecord> {
        self.lock()
            .devices
            .get(&user)
            .and_then(|d| d.get(device))
            .cloned()
            .ok_or(StorageError::NotFound("device"))
    }

    async fn devices(&self, user: UserId) -> StorageResult<Vec<DeviceRecord>> {
        Ok(self
            .lock()
            .devices
            .get(&user)
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn delete_device(&self, user: UserId, device: &DeviceId) -> StorageResult<bool> {
        Ok(self
            .lock()
            .devices
            .get_mut(&user)
            .is_some_and(|d| d.remove(device).is_some()))
    }

    async fn delete_other_devices(
        &self,
        user: UserId,
        keep: &DeviceId,
    ) -> StorageResult<Vec<DeviceId>> {
        let mut s = self.lock();
        let Some(devices) = s.devices.get_mut(&user) else {
            return Ok(Vec::new());
        };
        let gone: Vec<DeviceId> = devices.keys().filter(|d| *d != keep).cloned().collect();
        for d in &gone {
            devices.remove(d);
        }
        Ok(gone)
    }
}

#[async_trait]
impl ContactStore for MemoryStorage {
    async fn put_friend_request(&self, request: FriendRequest) -> StorageResult<RequestOutcome> {
        let mut s = self.lock();
        let (from, to) = (request.from, request.to);
        s.refuse_disabled(&[from, to])?;
        if s.blocks.contains(&(from, to)) || s.blocks.contains(&(to, from)) {
            return Ok(RequestOutcome::Blocked);
        }
        if s.friends.get(&from).is_some_and(|f| f.contains_key(&to)) {
            return Ok(RequestOutcome::AlreadyFriends);
        }
        if s.requests.remove(&(to, from)).is_some() {
            s.requests.remove(&(from, to));
            s.friends
                .entry(from)
                .or_default()
                .insert(to, request.created_at);
            s.friends
                .entry(to)
                .or_default()
                .insert(from, request.created_at);
            return Ok(RequestOutcome::Accepted);
        }
        s.requests.insert((from, to), request);
        Ok(RequestOutcome::Pending)
    }

    async fn friend_requests(&self, user: UserId) -> StorageResult<Vec<FriendRequest>> {
        Ok(self
            .lock()
            .requests
            .values()
            .filter(|r| r.from == user || r.to == user)
            .cloned()
            .collect())
    }

    async fn delete_friend_request(&self, from: UserId, to: UserId) -> StorageResult<bool> {
        Ok(self.lock().requests.remove(&(from, to)).is_some())
    }

    async fn accept_friend_request(
        &self,
        from: UserId,
        to: UserId,
        at: Timestamp,
    ) -> StorageResult<()> {
        let mut s = self.lock();
        if !s.requests.contains_key(&(from, to)) {
            return Err(StorageError::NotFound("friend request"));
        }
        s.refuse_disabled(&[from, to])?;
        s.requests.remove(&(from, to));
        s.requests.remove(&(to, from));
        s.friends.entry(from).or_default().entry(to).or_insert(at);
        s.friends.entry(to).or_default().entry(from).or_insert(at);
        Ok(())
    }

    async fn friends(&self, user: UserId) -> StorageResult<Vec<Friend>> {
        Ok(self
            .lock()
            .friends
            .get(&user)
            .map(|f| {
                f.iter()
                    .map(|(&user, &since)| Friend { user, since })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn is_friend(&self, a: UserId, b: UserId) -> StorageResult<bool> {
        Ok(self
            .lock()
            .friends
            .get(&a)
            .is_some_and(|f| f.contains_key(&b)))
    }

    async fn remove_friend(&self, a: UserId, b: UserId) -> StorageResult<bool> {
        let mut s = self.lock();
        let existed = s
            .friends
            .get_mut(&a)
            .is_some_and(|f| f.remove(&b).is_some());
        if let Some(f) = s.friends.get_mut(&b) {
            f.remove(&a);
        }
        Ok(existed)
    }

    async fn set_blocked(
        &self,
        user: UserId,
        target: UserId,
        blocked: bool,
    ) -> StorageResult<bool> {
        let mut s = self.lock();
        if blocked {
            s.requests.remove(&(user, target));
            s.requests.remove(&(target, user));
            Ok(s.blocks.insert((user, target)))
        } else {
            Ok(s.blocks.remove(&(user, target)))
        }
    }

    async fn is_blocked(&self, user: UserId, target: UserId) -> StorageResult<bool> {
        Ok(self.lock().blocks.contains(&(user, target)))
    }

    async fn blocked(&self, user: UserId) -> StorageResult<Vec<UserId>> {
        let mut out: Vec<UserId> = self
            .lock()
            .blocks
            .iter()
            .filter(|(u, _)| *u == user)
            .map(|(_, t)| *t)
            .collect();
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl GroupStore for MemoryStorage {
    async fn create_group(
        &self,
        group: NewGroup,
        members: Vec<(UserId, Role)>,
        record: NewMessage,
    ) -> StorageResult<(Group, Message)> {
        let mut s = self.lock();
        let firsts: Vec<UserId> = members.iter().map(|(u, _)| *u).collect();
        s.refuse_disabled(&firsts)?;
        s.next_group += 1;
        let id = GroupId(s.next_group);
        let conversation = ConversationId::Group(id);
        let message = s.append(conversation, record).message;
        let group = Group {
            id,
            name: group.name,
            owner: group.owner,
            open: group.open,
            created_at: group.created_at,
        };
        let mut entry = GroupEntry {
            group: group.clone(),
            members: BTreeMap::new(),
        };
        for (user, role) in members {
            entry.members.insert(
                user,
                Member {
                    user,
                    role,
                    joined_seq: message.seq,
                },
            );
            s.user_groups.entry(user).or_default().insert(id);
            s.set_read(user, conversation, message.seq);
        }
        s.groups.insert(id, entry);
        Ok((group, message))
    }

    async fn update_group(
        &self,
        group: GroupId,
        change: GroupChange,
        record: NewMessage,
    ) -> StorageResult<(Group, Message)> {
        let mut s = self.lock();
        let Some(current) = s.groups.get(&group) else {
            return Err(StorageError::NotFound("group"));
        };
        let stale = change
            .expect
            .iter()
            .any(|(user, role)| current.members.get(user).map(|m| m.role) != *role);
        if stale {
            return Err(StorageError::Conflict("the group changed meanwhile"));
        }
        let added: Vec<UserId> = change.add.iter().map(|(u, _)| *u).collect();
        s.refuse_disabled(&added)?;
        let Some(current) = s.groups.get(&group) else {
            return Err(StorageError::NotFound("group"));
        };
        if let Some(max) = change.max_members {
            let mut after: BTreeSet<UserId> = current.members.keys().copied().collect();
            after.extend(change.add.iter().map(|(u, _)| *u));
            for u in &change.remove {
                after.remove(u);
            }
            if after.len() > max {
                return Err(StorageError::Conflict(GROUP_FULL));
            }
        }
        let conversation = ConversationId::Group(group);
        let message = s.append(conversation, record).message;
        let State {
            groups,
            user_groups,
            ..
        } = &mut *s;
        let entry = groups
            .get_mut(&group)
            .ok_or(StorageError::NotFound("group"))?;
        let mut added = Vec::new();
        for (user, role) in change.add {
            if let std::collections::btree_map::Entry::Vacant(slot) = entry.members.entry(user) {
                slot.insert(Member {
                    user,
                    role,
                    joined_seq: message.seq,
                });
                user_groups.entry(user).or_default().insert(group);
                added.push(user);
            }
        }
        for user in change.remove {
            if entry.members.remove(&user).is_some()
                && let Some(g) = user_groups.get_mut(&user)
            {
                g.remove(&group);
            }
        }
        for (user, role) in change.roles {
            if let Some(m) = entry.members.get_mut(&user) {
                m.role = role;
            }
        }
        if let Some(name) = change.name {
            entry.group.name = name;
        }
        if let Some(owner) = change.owner {
            entry.group.owner = owner;
        }
        let updated = entry.group.clone();
        for user in added {
            s.set_read(user, conversation, message.seq);
        }
        Ok((updated, message))
    }

    async fn group(&self, group: GroupId) -> StorageResult<Group> {
        self.lock()
            .groups
            .get(&group)
            .map(|g| g.group.clone())
            .ok_or(StorageError::NotFound("group"))
    }

    async fn members(&self, group: GroupId) -> StorageResult<Vec<Member>> {
        self.lock()
            .groups
            .get(&group)
            .map(|g| g.members.values().copied().collect())
            .ok_or(StorageError::NotFound("group"))
    }

    async fn member(&self, group: GroupId, user: UserId) -> StorageResult<Option<Member>> {
        Ok(self
            .lock()
            .groups
            .get(&group)
            .and_then(|g| g.members.get(&user).copied()))
    }

    async fn user_groups(&self, user: UserId) -> StorageResult<Vec<Group>> {
        let s = self.lock();
        Ok(s.user_groups
            .get(&user)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| s.groups.get(id).map(|g| g.group.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
#[async_trait]
impl PinStore for MemoryStorage {
    async fn pin(&self, conversation: ConversationId, pin: Pin, max: usize) -> StorageResult<bool> {
        let mut s = self.lock();
        let pins = s.pins.entry(conversation).or_default();
        if pins.contains_key(&pin.seq) {
            return Ok(false);
        }
        if pins.len() >= max {
            return Err(StorageError::Conflict(PINS_FULL));
        }
        pins.insert(pin.seq, pin);
        Ok(true)
    }

    async fn unpin(&self, conversation: ConversationId, seq: Seq) -> StorageResult<bool> {
        let mut s = self.lock();
        Ok(s.pins
            .get_mut(&conversation)
            .is_some_and(|pins| pins.remove(&seq).is_some()))
    }

    async fn pins(&self, conversation: ConversationId) -> StorageResult<Vec<Pin>> {
        let s = self.lock();
        let mut pins: Vec<Pin> = s
            .pins
            .get(&conversation)
            .map(|p| p.values().copied().collect())
            .unwrap_or_default();
        pins.sort_by(|a, b| b.at.cmp(&a.at).then(b.seq.cmp(&a.seq)));
        Ok(pins)
    }
}

#[async_trait]
impl InviteStore for MemoryStorage {
    async fn create_invite(&self, invite: Invite) -> StorageResult<()> {
        let mut s = self.lock();
        if s.invites.contains_key(&invite.id) {
            return Err(StorageError::Conflict("an invite with this id exists"));
        }
        s.invites.insert(invite.id.clone(), invite);
        Ok(())
    }

    async fn use_invite(&self, id: &str, now: Timestamp) -> StorageResult<bool> {
        let mut s = self.lock();
        Ok(match s.invites.get_mut(id) {
            Some(invite) if invite.uses_left > 0 && now < invite.expires_at => {
                invite.uses_left -= 1;
                true
            }
            _ => false,
        })
    }

    async fn return_invite(&self, id: &str) -> StorageResult<()> {
        if let Some(invite) = self.lock().invites.get_mut(id) {
            invite.uses_left = invite.uses_left.saturating_add(1);
        }
        Ok(())
    }

    async fn invites(&self) -> StorageResult<Vec<Invite>> {
        let mut all: Vec<Invite> = self.lock().invites.values().cloned().collect();
        all.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(all)
    }

    async fn revoke_invite(&self, id: &str) -> StorageResult<bool> {
        Ok(self.lock().invites.remove(id).is_some())
    }
}

#[async_trait]
impl SearchStore for MemoryStorage {
    async fn search(&self, user: UserId, query: &SearchQuery) -> StorageResult<Vec<Message>> {
        let s = self.lock();
        // Each readable conversation with the first seq `user` may read there.
        let direct = s
            .user_direct
            .get(&user)
            .into_iter()
            .flatten()
            .map(|c| (*c, Seq(1)));
        let groups = s
            .user_groups
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|g| {
                let joined = s.groups.get(g)?.members.get(&user)?.joined_seq;
                Some((ConversationId::Group(*g), joined))
            });
        let mut found: Vec<&Message> = Vec::new();
        for (conversation, from) in direct.chain(groups) {
            if query.conversation.is_some_and(|c| c != conversation) {
                continue;
            }
            let Some(timeline) = s.timelines.get(&conversation) else {
                continue;
            };
            let hidden = s.hidden.get(&(user, conversation));
            found.extend(timeline.messages.iter().filter(|m| {
                m.seq >= from
                    && query.before.is_none_or(|before| m.id < before)
                    && hidden.is_none_or(|h| !h.contains(&m.seq))
                    && indexed_text(&m.body).is_some_and(|text| query.terms.matches(&text))
            }));
        }
        found.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
        Ok(found
            .into_iter()
            .take(query.limit as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl ReactionStore for MemoryStorage {
    async fn react(
        &self,
        conversation: ConversationId,
        seq: Seq,
        user: UserId,
        emoji: Option<&str>,
    ) -> StorageResult<()> {
        let mut s = self.lock();
        let reactions = s.reactions.entry(conversation).or_default();
        match emoji {
            Some(emoji) => {
                reactions.insert((seq, user), emoji.to_owned());
            }
            None => {
                reactions.remove(&(seq, user));
            }
        }
        Ok(())
    }

    async fn reactions(
        &self,
        conversation: ConversationId,
        after: Seq,
        until: Seq,
    ) -> StorageResult<Vec<Reaction>> {
        let s = self.lock();
        let Some(reactions) = s.reactions.get(&conversation) else {
            return Ok(Vec::new());
        };
        if until <= after {
            return Ok(Vec::new());
        }
        let from = Bound::Excluded((after, UserId(u64::MAX)));
        let to = Bound::Included((until, UserId(u64::MAX)));
        Ok(reactions
            .range((from, to))
            .map(|(&(seq, user), emoji)| Reaction {
                seq,
                user,
                emoji: emoji.clone(),
            })
            .collect())
    }
}

#[async_trait]
impl MessageStore for MemoryStorage {
    async fn append(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> StorageResult<Appended> {
        Ok(self.lock().append(conversation, message))
    }

    async fn messages(
        &self,
        conversation: ConversationId,
        range: MessageRange,
    ) -> StorageResult<Vec<Message>> {
        let s = self.lock();
        let Some(t) = s.timelines.get(&conversation) else {
            return Ok(Vec::new());
        };
        // Seq n lives at index n - 1, so seqs in (after, before) are indexes after..before-1.
        let len = t.messages.len();
        let start = usize::try_from(range.after.0)
            .unwrap_or(usize::MAX)
            .min(len);
        let end = range
            .before
            .map_or(len, |b| {
                usize::try_from(b.0.saturating_sub(1)).unwrap_or(usize::MAX)
            })
            .min(len);
        if end <= start {
            return Ok(Vec::new());
        }
        let limit = range.limit as usize;
        let hidden = range.viewer.and_then(|v| s.hidden.get(&(v, conversation)));
        let visible = |m: &&Message| hidden.is_none_or(|h| !h.contains(&m.seq));
        let in_range = &t.messages[start..end];
        Ok(if range.newest {
            let mut page: Vec<Message> = in_range
                .iter()
                .rev()
                .filter(visible)
                .take(limit)
                .cloned()
                .collect();
            page.reverse();
            page
        } else {
            in_range
                .iter()
                .filter(visible)
                .take(limit)
                .cloned()
                .collect()
        })
    }

    async fn last_seq(&self, conversation: ConversationId) -> StorageResult<Seq> {
        Ok(self.lock().last_seq(conversation))
    }

    async fn set_read(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<Seq> {
        Ok(self.lock().set_read(user, conversation, seq))
    }

    async fn set_delivered(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<Seq> {
        let mut s = self.lock();
        let cursor = s.cursor(user, conversation);
        cursor.delivered = cursor.delivered.max(seq);
        Ok(cursor.delivered)
    }

    async fn cursors(
        &self,
        conversation: ConversationId,
        query: CursorQuery,
    ) -> StorageResult<Vec<Cursor>> {
        let s = self.lock();
        let Some(cursors) = s.cursors.get(&conversation) else {
            return Ok(Vec::new());
        };
        let from = query.after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(cursors
            .range((from, Bound::Unbounded))
            .map(|(_, c)| *c)
            .filter(|c| c.delivered >= query.at_least)
            .take(query.limit as usize)
            .collect())
    }

    async fn amend(
        &self,
        conversation: ConversationId,
        amendment: Amendment,
    ) -> StorageResult<Appended> {
        let mut s = self.lock();
        let index = usize::try_from(amendment.target.0.wrapping_sub(1)).unwrap_or(usize::MAX);
        let exists = s
            .timelines
            .get(&conversation)
            .is_some_and(|t| index < t.messages.len());
        if !exists {
            return Err(StorageError::NotFound("message"));
        }
        let timeline = &s.timelines[&conversation];
        let event = &amendment.event;
        let retry = !event.client_id.is_empty()
            && timeline.keys.contains_key(&(
                event.sender,
                event.sender_device.clone(),
                event.client_id.clone(),
            ));
        if !retry
            && matches!(
                timeline.messages[index].body,
                crate::model::Body::System { .. }
            )
        {
            return Err(StorageError::Conflict(AMENDED_AWAY));
        }
        let appended = s.append(conversation, amendment.event);
        if !appended.duplicate
            && let Some(target) = s
                .timelines
                .get_mut(&conversation)
                .and_then(|t| t.messages.get_mut(index))
        {
            let before = std::mem::replace(&mut target.body, amendment.body);
            target.edited_at = Some(appended.message.sent_at);
            let now = target.body.attachment().map(str::to_owned);
            let at = (conversation, amendment.target);
            if let Some(url) = before.attachment()
                && let Some(uses) = s.attachments.get_mut(url)
            {
                uses.remove(&at);
                if uses.is_empty() {
                    s.attachments.remove(url);
                }
            }
            if let Some(url) = now {
                s.attachments.entry(url).or_default().insert(at);
            }
        }
        Ok(appended)
    }

    async fn attachment_use(
        &self,
        url: &str,
        conversation: Option<ConversationId>,
    ) -> StorageResult<Option<(ConversationId, Seq)>> {
        let s = self.lock();
        let Some(uses) = s.attachments.get(url) else {
            return Ok(None);
        };
        Ok(match conversation {
            Some(c) => uses
                .range((c, Seq::ZERO)..=(c, Seq(u64::MAX)))
                .next_back()
                .copied(),
            None => uses.iter().next().copied(),
        })
    }

    async fn hide(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<()> {
        self.lock()
            .hidden
            .entry((user, conversation))
            .or_default()
            .insert(seq);
        Ok(())
    }

    async fn conversations(&self, user: UserId) -> StorageResult<Vec<ConversationState>> {
        let s = self.lock();
        let direct = s.user_direct.get(&user).into_iter().flatten().copied();
        let groups = s
            .user_groups
            .get(&user)
            .into_iter()
            .flatten()
            .map(|&g| ConversationId::Group(g));
        Ok(direct
            .chain(groups)
            .map(|conversation| {
                let last = s
                    .timelines
                    .get(&conversation)
                    .and_then(|t| t.messages.last());
                let mine = s.cursor_of(user, conversation);
                let peer = conversation
                    .peer_of(user)
                    .map(|peer| s.cursor_of(peer, conversation))
                    .unwrap_or_default();
                ConversationState {
                    conversation,
                    last_seq: last.map_or(Seq::ZERO, |m| m.seq),
                    read_seq: mine.read,
                    delivered_seq: mine.delivered,
                    peer,
                    last_message: last.cloned(),
                    mention_seq: s
                        .mentions
                        .get(&(conversation, user))
                        .copied()
                        .unwrap_or_default(),
                }
            })
            .collect())
    }
}
