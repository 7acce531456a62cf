//! A custom storage adapter: message bodies encrypted at rest.
//!
//! [`SealedStorage`] wraps any [`Storage`] (the SQL store, the memory store, yours) and
//! seals every body a user wrote before the inner store sees it, with XChaCha20-Poly1305
//! under a key the database never holds. Whoever reads the database, a backup or a
//! replica, sees ciphertext; whoever changes a sealed body, or moves it to another row,
//! makes reading that message fail instead of showing them something else.
//!
//! It is a complete adapter: it passes the storage conformance suite over the memory
//! store and over SQLite (`tests/conformance.rs`), which is how you prove your own.
//!
//! ```
//! use std::sync::Arc;
//! use custom_storage::{Keyring, SealedStorage};
//! use im_core::memory::MemoryStorage;
//! use im_core::Engine;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let keys = Keyring::new(1, [7; 32]); // in production: from a secret store
//! let storage = SealedStorage::new(MemoryStorage::new(), keys);
//! let engine = Engine::builder().storage(Arc::new(storage)).start().await.unwrap();
//! # engine.shutdown().await;
//! # });
//! ```
//!
//! # What is sealed
//! Text, image, file and custom bodies, and the `message_edited` event, which repeats the
//! edited text. The server's own records (group created, members added, renamed, recall
//! notices) stay readable: the store keeps the same facts in its own tables anyway.
//! Bodies stored before sealing was turned on are read as they are.
//!
//! Since the inner store never sees an image's or a file's url, it cannot say which
//! messages name an upload (`MessageStore::attachment_use` is left to its default,
//! `Unsupported`): a server then lets the members of the conversation a file was
//! uploaded for fetch it, recalled or not, and keeps every file.
//!
//! # Format
//! A sealed body is stored as `{"type":"custom","data":{"im_sealed":"…"}}`, where `…` is
//! base64url of `version (1) ‖ key id ‖ 24-byte random nonce ‖ ciphertext ‖ tag`. The
//! plaintext is the body's JSON. The associated data binds it to its row: the header, the
//! conversation, the sender, the sending device, the client id and the send time.
//!
//! # Keys
//! A [`Keyring`] seals with its current key and opens with any key it holds, so keys can
//! be rotated: add the new key as current, keep the old one with
//! [`Keyring::with_retired`] until nothing sealed under it is needed.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use im_core::model::{
    Body, ConversationId, DeviceId, Friend, FriendRequest, Group, GroupId, Member, Message, Pin,
    Reaction, Role, Seq, SystemEvent, Timestamp, User, UserId,
};
use im_core::storage::{
    AMENDED_AWAY, Amendment, Appended, ContactStore, ConversationState, Cursor, CursorQuery,
    DeviceRecord, DeviceStore, GroupChange, GroupStore, Invite, InviteStore, MessageRange,
    MessageStore, NewGroup, NewMessage, NewUser, PinStore, ProfileChange, ReactionStore,
    RequestOutcome, SearchQuery, SearchStore, Storage, StorageError, StorageResult, UserStore,
    indexed_text,
};

/// The field of a custom body that holds a sealed one.
const SEALED: &str = "im_sealed";
/// The format version, the first byte of every sealed body.
const VERSION: u8 = 1;
/// Version and key id.
const HEADER: usize = 2;
const NONCE: usize = 24;

/// The keys bodies are sealed and opened with.
#[derive(Clone)]
pub struct Keyring {
    current: u8,
    ciphers: BTreeMap<u8, XChaCha20Poly1305>,
}

impl Keyring {
    /// A keyring that seals with `key`, known as `id` in what it seals.
    pub fn new(id: u8, key: [u8; 32]) -> Keyring {
        let mut ciphers = BTreeMap::new();
        ciphers.insert(id, XChaCha20Poly1305::new(&Key::from(key)));
        Keyring {
            current: id,
            ciphers,
        }
    }

    /// Also opens bodies sealed under an earlier key (never seals with it). The current
    /// key keeps its id if `id` is the same.
    pub fn with_retired(mut self, id: u8, key: [u8; 32]) -> Keyring {
        if id != self.current {
            self.ciphers
                .insert(id, XChaCha20Poly1305::new(&Key::from(key)));
        }
        self
    }

    /// Reads a key written as 64 hex digits (what `openssl rand -hex 32` prints).
    pub fn parse_hex_key(hex: &str) -> Result<[u8; 32], KeyError> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(KeyError);
        }
        let mut key = [0u8; 32];
        for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| KeyError)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| KeyError)?;
        }
        Ok(key)
    }

    fn seal(&self, body: &Body, row: &Row<'_>) -> StorageResult<Body> {
        let cipher = &self.ciphers[&self.current];
        let plain = serde_json::to_vec(body)
            .map_err(|e| StorageError::Backend(format!("encoding a body to seal: {e}")))?;
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce)
            .map_err(|e| StorageError::Unavailable(format!("no randomness for a nonce: {e}")))?;
        let header = [VERSION, self.current];
        let aad = row.associated_data(&header);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| StorageError::Backend("sealing a body failed".into()))?;
        let mut out = Vec::with_capacity(HEADER + NONCE + sealed.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        let mut data = serde_json::Map::new();
        data.insert(SEALED.into(), URL_SAFE_NO_PAD.encode(out).into());
        Ok(Body::Custom { data: data.into() })
    }

    /// The body as it was written: opened if it is sealed, else as it is.
    fn open(&self, body: Body, row: &Row<'_>) -> StorageResult<Body> {
        let Some(text) = sealed_text(&body) else {
            return Ok(body);
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| unreadable("not base64"))?;
        if bytes.len() < HEADER + NONCE || bytes[0] != VERSION {
            return Err(unreadable("unknown format"));
        }
        let (header, rest) = bytes.split_at(HEADER);
        let (nonce, sealed) = rest.split_at(NONCE);
        let cipher = self.ciphers.get(&header[1]).ok_or_else(|| {
            StorageError::Backend(format!(
                "a message body is sealed under key {}, which the keyring does not hold",
                header[1]
            ))
        })?;
        let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| unreadable("short nonce"))?;
        let aad = row.associated_data(header);
        let plain = cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| unreadable("it fails authentication (wrong key, changed or moved)"))?;
        serde_json::from_slice(&plain).map_err(|_| unreadable("its plaintext is not a body"))
    }
}

impl fmt::Debug for Keyring {
    // Key ids only: keys never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("ids", &self.ciphers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A key that is not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sealing key must be 64 hex digits (32 bytes)")]
pub struct KeyError;

fn unreadable(why: &str) -> StorageError {
    StorageError::Backend(format!("a sealed message body cannot be opened: {why}"))
}

/// The sealed text of a body in the sealed format.
fn sealed_text(body: &Body) -> Option<&str> {
    let Body::Custom { data } = body else {
        return None;
    };
    let object = data.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get(SEALED)?.as_str()
}

/// Whether a body holds what a user wrote (and so is sealed).
fn is_private(body: &Body) -> bool {
    match body {
        Body::System { event } => matches!(event, SystemEvent::MessageEdited { .. }),
        _ => true,
    }
}

/// What a sealed body is bound to: the row it was written for.
struct Row<'a> {
    conversation: ConversationId,
    sender: UserId,
    device: &'a DeviceId,
    client_id: &'a str,
    sent_at: Timestamp,
}

impl<'a> Row<'a> {
    fn of_new(conversation: ConversationId, m: &'a NewMessage) -> Row<'a> {
        Row {
            conversation,
            sender: m.sender,
            device: &m.sender_device,
            client_id: &m.client_id,
            sent_at: m.sent_at,
        }
    }

    fn of_stored(m: &'a Message) -> Row<'a> {
        Row {
            conversation: m.conversation,
            sender: m.sender,
            device: &m.sender_device,
            client_id: &m.client_id,
            sent_at: m.sent_at,
        }
    }

    fn associated_data(&self, header: &[u8]) -> Vec<u8> {
        let conversation = self.conversation.to_string();
        let mut aad = Vec::with_capacity(64 + self.client_id.len());
        for part in [
            b"im-sealed".as_slice(),
            header,
            conversation.as_bytes(),
            &self.sender.0.to_be_bytes(),
            self.device.as_str().as_bytes(),
            self.client_id.as_bytes(),
            &self.sent_at.0.to_be_bytes(),
        ] {
            // Length-prefixed, so no two different rows give the same bytes.
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part);
        }
        aad
    }
}

/// A [`Storage`] that seals message bodies before `S` stores them and opens them as they
/// are read. Everything else passes through unchanged.
#[derive(Debug)]
pub struct SealedStorage<S> {
    inner: S,
    keys: Keyring,
}

impl<S: Storage> SealedStorage<S> {
    /// Wraps `inner`, sealing with `keys`.
    pub fn new(inner: S, keys: Keyring) -> SealedStorage<S> {
        SealedStorage { inner, keys }
    }

    /// The wrapped store, which sees only sealed bodies.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn seal_new(
        &self,
        conversation: ConversationId,
        mut m: NewMessage,
    ) -> StorageResult<NewMessage> {
        if is_private(&m.body) {
            m.body = self.keys.seal(&m.body, &Row::of_new(conversation, &m))?;
        }
        Ok(m)
    }

    fn open_message(&self, mut m: Message) -> StorageResult<Message> {
        let body = std::mem::replace(
            &mut m.body,
            Body::Text {
                text: String::new(),
            },
        );
        m.body = self.keys.open(body, &Row::of_stored(&m))?;
        Ok(m)
    }

    fn open_appended(&self, a: Appended) -> StorageResult<Appended> {
        Ok(Appended {
            message: self.open_message(a.message)?,
            duplicate: a.duplicate,
        })
    }
}

/// Pins are stored as they are: they name messages, and say nothing of them.
#[async_trait]
impl<S: Storage> PinStore for SealedStorage<S> {
    async fn pin(&self, conversation: ConversationId, pin: Pin, max: usize) -> StorageResult<bool> {
        self.inner.pin(conversation, pin, max).await
    }

    async fn unpin(&self, conversation: ConversationId, seq: Seq) -> StorageResult<bool> {
        self.inner.unpin(conversation, seq).await
    }

    async fn pins(&self, conversation: ConversationId) -> StorageResult<Vec<Pin>> {
        self.inner.pins(conversation).await
    }
}

/// Invites are stored as they are: an invite holds the hash of its code, never a word a
/// user wrote.
#[async_trait]
impl<S: Storage> InviteStore for SealedStorage<S> {
    async fn create_invite(&self, invite: Invite) -> StorageResult<()> {
        self.inner.create_invite(invite).await
    }

    async fn use_invite(&self, id: &str, now: Timestamp) -> StorageResult<bool> {
        self.inner.use_invite(id, now).await
    }

    async fn return_invite(&self, id: &str) -> StorageResult<()> {
        self.inner.return_invite(id).await
    }

    async fn invites(&self) -> StorageResult<Vec<Invite>> {
        self.inner.invites().await
    }

    async fn revoke_invite(&self, id: &str) -> StorageResult<bool> {
        self.inner.revoke_invite(id).await
    }
}

/// Search cannot use the database's index: it never sees the words. So it opens the
/// messages the user may read, a conversation at a time, newest first, and matches them
/// here; each conversation is read only until it has given a page of matches. That
/// costs a read of the user's history per search: fine for a small deployment, and the
/// price of a database that holds no plaintext (a blind index of keyed word hashes is
/// the next step for a large one).
#[async_trait]
impl<S: Storage> SearchStore for SealedStorage<S> {
    async fn search(&self, user: UserId, query: &SearchQuery) -> StorageResult<Vec<Message>> {
        const PAGE: u32 = 500;
        let mut found: Vec<Message> = Vec::new();
        for state in self.inner.conversations(user).await? {
            let conversation = state.conversation;
            if query.conversation.is_some_and(|c| c != conversation) {
                continue;
            }
            // Group members read from the seq they joined at.
            let after = match conversation.group() {
                Some(group) => match self.inner.member(group, user).await? {
                    Some(member) => Seq(member.joined_seq.0.saturating_sub(1)),
                    None => continue,
                },
                None => Seq::ZERO,
            };
            let mut matches = 0;
            let mut before = None;
            'pages: loop {
                let range = MessageRange {
                    after,
                    before,
                    limit: PAGE,
                    newest: true,
                    viewer: Some(user),
                };
                let page = self.inner.messages(conversation, range).await?;
                let Some(first) = page.first() else { break };
                before = Some(first.seq);
                let full = page.len() == PAGE as usize;
                for message in page.into_iter().rev() {
                    if query.before.is_some_and(|b| message.id >= b) {
                        continue;
                    }
                    let message = self.open_message(message)?;
                    if indexed_text(&message.body).is_some_and(|t| query.terms.matches(&t)) {
                        found.push(message);
                        matches += 1;
                        if matches == query.limit {
                            break 'pages;
                        }
                    }
                }
                if !full {
                    break;
                }
            }
        }
        found.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
        found.truncate(query.limit as usize);
        Ok(found)
    }
}

/// Reactions are stored as they are: an emoji says little, and the sealing is about
/// what messages say.
#[async_trait]
impl<S: Storage> ReactionStore for SealedStorage<S> {
    async fn react(
        &self,
        conversation: ConversationId,
        seq: Seq,
        user: UserId,
        emoji: Option<&str>,
    ) -> StorageResult<()> {
        self.inner.react(conversation, seq, user, emoji).await
    }

    async fn reactions(
        &self,
        conversation: ConversationId,
        after: Seq,
        until: Seq,
    ) -> StorageResult<Vec<Reaction>> {
        self.inner.reactions(conversation, after, until).await
    }
}

#[async_trait]
impl<S: Storage> MessageStore for SealedStorage<S> {
    async fn append(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> StorageResult<Appended> {
        let message = self.seal_new(conversation, message)?;
        let appended = self.inner.append(conversation, message).await?;
        self.open_appended(appended)
    }

    async fn append_many(
        &self,
        messages: Vec<(ConversationId, NewMessage)>,
    ) -> Vec<StorageResult<Appended>> {
        // Sealed here, appended together below (one commit on a batching store); a
        // message that cannot be sealed fails alone.
        let mut results: Vec<Option<StorageResult<Appended>>> = Vec::new();
        let mut sealed = Vec::new();
        for (conversation, message) in messages {
            match self.seal_new(conversation, message) {
                Ok(message) => {
                    results.push(None);
                    sealed.push((conversation, message));
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut stored = self.inner.append_many(sealed).await.into_iter();
        results
            .into_iter()
            .map(|slot| match slot {
                Some(failed) => failed,
                None => stored
                    .next()
                    .unwrap_or_else(|| Err(StorageError::Backend("a result went missing".into())))
                    .and_then(|appended| self.open_appended(appended)),
            })
            .collect()
    }

    async fn messages(
        &self,
        conversation: ConversationId,
        range: MessageRange,
    ) -> StorageResult<Vec<Message>> {
        let page = self.inner.messages(conversation, range).await?;
        page.into_iter().map(|m| self.open_message(m)).collect()
    }

    async fn last_seq(&self, conversation: ConversationId) -> StorageResult<Seq> {
        self.inner.last_seq(conversation).await
    }

    async fn set_read(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<Seq> {
        self.inner.set_read(user, conversation, seq).await
    }

    async fn set_delivered(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<Seq> {
        self.inner.set_delivered(user, conversation, seq).await
    }

    async fn cursors(
        &self,
        conversation: ConversationId,
        query: CursorQuery,
    ) -> StorageResult<Vec<Cursor>> {
        self.inner.cursors(conversation, query).await
    }

    async fn conversations(&self, user: UserId) -> StorageResult<Vec<ConversationState>> {
        let mut states = self.inner.conversations(user).await?;
        for state in &mut states {
            if let Some(last) = state.last_message.take() {
                state.last_message = Some(self.open_message(last)?);
            }
        }
        Ok(states)
    }

    async fn amend(
        &self,
        conversation: ConversationId,
        mut amendment: Amendment,
    ) -> StorageResult<Appended> {
        // The new body is bound to the row it replaces, which the amendment names only by
        // seq: read that row (its sender, device, client id and time never change).
        let range = MessageRange {
            after: Seq(amendment.target.0.saturating_sub(1)),
            before: Some(Seq(amendment.target.0.saturating_add(1))),
            limit: 1,
            newest: false,
            viewer: None,
        };
        let target = self.inner.messages(conversation, range).await?;
        let target = target
            .first()
            .filter(|m| m.seq == amendment.target)
            .ok_or(StorageError::NotFound("message"))?;
        let row = Row::of_stored(target);
        // A sealed `message_edited` event looks like a custom body to the inner store,
        // which refuses to amend the events it can see: refuse this one here. An event
        // stays an event, so checking outside the inner store's atomic step is safe; a
        // message being recalled meanwhile gets an unsealed notice the inner store sees.
        if sealed_text(&target.body).is_some()
            && matches!(
                self.keys.open(target.body.clone(), &row)?,
                Body::System { .. }
            )
        {
            return Err(StorageError::Conflict(AMENDED_AWAY));
        }
        if is_private(&amendment.body) {
            amendment.body = self.keys.seal(&amendment.body, &row)?;
        }
        amendment.event = self.seal_new(conversation, amendment.event)?;
        let appended = self.inner.amend(conversation, amendment).await?;
        self.open_appended(appended)
    }

    async fn hide(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<()> {
        self.inner.hide(user, conversation, seq).await
    }
}

#[async_trait]
impl<S: Storage> GroupStore for SealedStorage<S> {
    async fn create_group(
        &self,
        group: NewGroup,
        members: Vec<(UserId, Role)>,
        record: NewMessage,
    ) -> StorageResult<(Group, Message)> {
        // A body is bound to its conversation, and the group has no id yet. The engine
        // records a group's creation as a system event, which is not sealed.
        if is_private(&record.body) {
            return Err(StorageError::Unsupported(
                "sealed storage: a group's first record must be a system event",
            ));
        }
        let (group, record) = self.inner.create_group(group, members, record).await?;
        Ok((group, self.open_message(record)?))
    }

    async fn update_group(
        &self,
        group: GroupId,
        change: GroupChange,
        record: NewMessage,
    ) -> StorageResult<(Group, Message)> {
        let record = self.seal_new(ConversationId::Group(group), record)?;
        let (group, record) = self.inner.update_group(group, change, record).await?;
        Ok((group, self.open_message(record)?))
    }

    async fn group(&self, group: GroupId) -> StorageResult<Group> {
        self.inner.group(group).await
    }

    async fn members(&self, group: GroupId) -> StorageResult<Vec<Member>> {
        self.inner.members(group).await
    }

    async fn member(&self, group: GroupId, user: UserId) -> StorageResult<Option<Member>> {
        self.inner.member(group, user).await
    }

    async fn user_groups(&self, user: UserId) -> StorageResult<Vec<Group>> {
        self.inner.user_groups(user).await
    }
}

// Users, devices and contacts hold no message bodies: they pass straight through.

#[async_trait]
impl<S: Storage> UserStore for SealedStorage<S> {
    async fn create_user(&self, user: NewUser) -> StorageResult<User> {
        self.inner.create_user(user).await
    }
    async fn user(&self, id: UserId) -> StorageResult<User> {
        self.inner.user(id).await
    }
    async fn user_by_name(&self, username: &str) -> StorageResult<User> {
        self.inner.user_by_name(username).await
    }
    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        self.inner.users(ids).await
    }
    async fn password_hash(&self, id: UserId) -> StorageResult<String> {
        self.inner.password_hash(id).await
    }
    async fn set_password_hash(&self, id: UserId, hash: String) -> StorageResult<()> {
        self.inner.set_password_hash(id, hash).await
    }
    async fn set_disabled(&self, id: UserId, disabled: bool) -> StorageResult<bool> {
        self.inner.set_disabled(id, disabled).await
    }
    async fn is_disabled(&self, id: UserId) -> StorageResult<bool> {
        self.inner.is_disabled(id).await
    }
    async fn update_profile(&self, id: UserId, change: ProfileChange) -> StorageResult<User> {
        self.inner.update_profile(id, change).await
    }
    async fn set_last_seen(&self, id: UserId, at: Timestamp) -> StorageResult<()> {
        self.inner.set_last_seen(id, at).await
    }
    async fn set_last_seen_many(&self, seen: &[(UserId, Timestamp)]) -> StorageResult<()> {
        self.inner.set_last_seen_many(seen).await
    }
    async fn last_seen(&self, ids: &[UserId]) -> StorageResult<Vec<(UserId, Timestamp)>> {
        self.inner.last_seen(ids).await
    }
}

#[async_trait]
impl<S: Storage> DeviceStore for SealedStorage<S> {
    async fn put_device(&self, record: DeviceRecord) -> StorageResult<()> {
        self.inner.put_device(record).await
    }
    async fn device(&self, user: UserId, device: &DeviceId) -> StorageResult<DeviceRecord> {
        self.inner.device(user, device).await
    }
    async fn devices(&self, user: UserId) -> StorageResult<Vec<DeviceRecord>> {
        self.inner.devices(user).await
    }
    async fn delete_device(&self, user: UserId, device: &DeviceId) -> StorageResult<bool> {
        self.inner.delete_device(user, device).await
    }
    async fn delete_other_devices(
        &self,
        user: UserId,
        keep: &DeviceId,
    ) -> StorageResult<Vec<DeviceId>> {
        self.inner.delete_other_devices(user, keep).await
    }
}

#[async_trait]
impl<S: Storage> ContactStore for SealedStorage<S> {
    async fn put_friend_request(&self, request: FriendRequest) -> StorageResult<RequestOutcome> {
        self.inner.put_friend_request(request).await
    }
    async fn friend_requests(&self, user: UserId) -> StorageResult<Vec<FriendRequest>> {
        self.inner.friend_requests(user).await
    }
    async fn delete_friend_request(&self, from: UserId, to: UserId) -> StorageResult<bool> {
        self.inner.delete_friend_request(from, to).await
    }
    async fn accept_friend_request(
        &self,
        from: UserId,
        to: UserId,
        at: Timestamp,
    ) -> StorageResult<()> {
        self.inner.accept_friend_request(from, to, at).await
    }
    async fn friends(&self, user: UserId) -> StorageResult<Vec<Friend>> {
        self.inner.friends(user).await
    }
    async fn is_friend(&self, a: UserId, b: UserId) -> StorageResult<bool> {
        self.inner.is_friend(a, b).await
    }
    async fn remove_friend(&self, a: UserId, b: UserId) -> StorageResult<bool> {
        self.inner.remove_friend(a, b).await
    }
    async fn set_blocked(
        &self,
        user: UserId,
        target: UserId,
        blocked: bool,
    ) -> StorageResult<bool> {
        self.inner.set_blocked(user, target, blocked).await
    }
    async fn is_blocked(&self, user: UserId, target: UserId) -> StorageResult<bool> {
        self.inner.is_blocked(user, target).await
    }
    async fn blocked(&self, user: UserId) -> StorageResult<Vec<UserId>> {
        self.inner.blocked(user).await
    }
}
