//! A client for any transport: request/response correlation, typed helpers, and the
//! stream of pushed events.
//!
//! [`Client::connect`] takes any framed byte connection (a TCP or WebSocket client
//! connection from a transport crate, or an in-process [`duplex`](crate::transport::duplex)
//! end), exchanges `hello`, and returns the client and its [`Events`]. A background task
//! owns the connection: it writes requests in batches, matches replies to requests by id,
//! and forwards events. Events are buffered up to [`ClientConfig::event_buffer`]; when the
//! app falls that far behind, further events are dropped and, once there is room again,
//! one [`Event::Resync`] is delivered, just as the server does for a slow connection.
//! Replies are always read, so the app can `sync` from its event loop.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::model::{
    Body, ConversationId, DeviceId, Friend, FriendRequest, Group, GroupId, Member, Message,
    Platform, Seq, User, UserId,
};
use crate::protocol::{
    ClientFrame, Codec, CodecError, Command, ConversationSummary, DeviceInfo, ErrorBody, ErrorCode,
    Event, HistoryQuery, PROTOCOL_VERSION, PresenceStatus, ReactionSummary, Receipt, Reply,
    Request, ServerFrame, Signal, request,
};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The codec to ask for after `hello`.
    pub codec: Codec,
    /// How long to wait for a reply. Default 30 s.
    pub request_timeout: Duration,
    /// Events buffered for the app; past this they are dropped and a `resync` follows.
    /// Default 1024.
    pub event_buffer: usize,
    /// Sent in `hello`, for the server's logs.
    pub name: String,
    /// Send `ping` at a third of the server's idle timeout, so an idle but healthy
    /// connection stays open. Default true.
    pub keepalive: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            codec: Codec::Json,
            request_timeout: Duration::from_secs(30),
            event_buffer: 1024,
            name: concat!("im-core-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            keepalive: true,
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused the request.
    #[error("server error {0}")]
    Server(ErrorBody),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// No reply within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// A frame could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The server answered with a reply of the wrong type.
    #[error("unexpected reply to {0}")]
    UnexpectedReply(&'static str),
}

impl ClientError {
    /// The server's error code, if the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(body) => Some(body.code),
            _ => None,
        }
    }
}

/// A logged-in session, as `login` and `resume` return it.
pub use crate::protocol::reply::Session;

/// The server's acknowledgement of a sent message: it is durable.
pub use crate::protocol::reply::Sent;

/// The requests waiting for their answer; `None` once the connection has ended, so that
/// a request made as it ends fails at once instead of waiting out its timeout (deciding
/// that under the same lock as the insert).
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Result<Reply, ErrorBody>>>>>>;

/// A connected client. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    out: mpsc::Sender<Bytes>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    codec: Codec,
    timeout: Duration,
}

/// The events the server pushes, in order. Ends when the connection closes.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event, or `None` once the connection has closed.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// The id used for `hello`; requests count up from 1.
const HELLO_ID: u64 = 0;

/// The id of keep-alive pings; their replies match no request and are dropped.
const PING_ID: u64 = u64::MAX;

/// Pings until every `Client` clone is gone or the connection closed. Holds only a weak
/// handle, so it never keeps a dropped client's connection open.
async fn keepalive(out: mpsc::WeakSender<Bytes>, ping: Bytes, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(out) = out.upgrade() else { return };
        if out.send(ping.clone()).await.is_err() {
            return;
        }
    }
}

impl Client {
    /// Connects over `io` with default settings.
    pub async fn connect<C, E>(io: C) -> Result<(Client, Events), ClientError>
    where
        C: Stream<Item = Result<Bytes, E>> + Sink<Bytes> + Send + Unpin + 'static,
        E: fmt::Display + Send + 'static,
        <C as Sink<Bytes>>::Error: fmt::Display,
    {
        Self::connect_with(io, ClientConfig::default()).await
    }

    /// Connects over `io`: starts the connection task and exchanges `hello`.
    pub async fn connect_with<C, E>(
        io: C,
        config: ClientConfig,
    ) -> Result<(Client, Events), ClientError>
    where
        C: Stream<Item = Result<Bytes, E>> + Sink<Bytes> + Send + Unpin + 'static,
        E: fmt::Display + Send + 'static,
        <C as Sink<Bytes>>::Error: fmt::Display,
    {
        let (out_tx, out_rx) = mpsc::channel(256);
        let (event_tx, event_rx) = mpsc::channel(config.event_buffer.max(1));
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        tokio::spawn(drive(io, out_rx, event_tx, pending.clone(), config.codec));

        // Hello goes out in JSON; everything after the reply in the negotiated codec.
        let hello = Client {
            out: out_tx,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
            codec: Codec::Json,
            timeout: config.request_timeout,
        };
        let request = request::Hello {
            versions: vec![PROTOCOL_VERSION],
            client: config.name,
            codec: (config.codec != Codec::Json).then_some(config.codec),
        };
        let idle_timeout_ms = match hello.request_with_id(HELLO_ID, request.into()).await? {
            Reply::Hello(hello) => hello.idle_timeout_ms,
            _ => return Err(ClientError::UnexpectedReply("hello")),
        };
        let client = Client {
            codec: config.codec,
            ..hello
        };
        if config.keepalive {
            let every = Duration::from_millis(idle_timeout_ms / 3).max(Duration::from_millis(50));
            let ping = client.codec.encode(&ClientFrame {
                id: PING_ID,
                request: request::Ping {}.into(),
            })?;
            tokio::spawn(keepalive(client.out.downgrade(), ping, every));
        }
        Ok((client, Events { rx: event_rx }))
    }

    /// Sends any command and waits for its typed reply.
    ///
    /// ```no_run
    /// # async fn demo(client: im_core::client::Client) -> Result<(), im_core::client::ClientError> {
    /// use im_core::protocol::request;
    /// let friends = client.call(request::Friends {}).await?.friends;
    /// # Ok(()) }
    /// ```
    pub async fn call<C: Command>(&self, command: C) -> Result<C::Output, ClientError> {
        let reply = self.request(command.into()).await?;
        C::Output::try_from(reply).map_err(|_| ClientError::UnexpectedReply(C::NAME))
    }

    /// Sends any request and waits for its reply, untyped.
    pub async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.request_with_id(id, request).await
    }

    async fn request_with_id(&self, id: u64, request: Request) -> Result<Reply, ClientError> {
        let bytes = self.codec.encode(&ClientFrame { id, request })?;
        let (tx, rx) = oneshot::channel();
        match self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(waiting) => waiting.insert(id, tx),
            None => return Err(ClientError::Closed),
        };
        if self.out.send(bytes).await.is_err() {
            self.forget(id);
            return Err(ClientError::Closed);
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(error))) => Err(ClientError::Server(error)),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.forget(id);
                Err(ClientError::Timeout)
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Some(waiting) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            waiting.remove(&id);
        }
    }

    /// Whether the connection is still open.
    pub fn is_connected(&self) -> bool {
        !self.out.is_closed()
    }

    /// Creates an account.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        display_name: &str,
    ) -> Result<User, ClientError> {
        let register = request::Register {
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: display_name.to_owned(),
            avatar: None,
            proof: None,
            contact: None,
        };
        Ok(self.call(register).await?.user)
    }

    /// Asks the server to send a verification code to an e-mail address or phone
    /// number, for a registration that needs one (`call` a [`request::Register`] with
    /// `proof` and `contact` then).
    pub async fn send_code(&self, contact: &str) -> Result<(), ClientError> {
        self.call(request::SendCode {
            contact: contact.to_owned(),
        })
        .await?;
        Ok(())
    }

    /// Logs in from a device with the given id (platform `other`, named after the id).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device_id: &str,
    ) -> Result<Session, ClientError> {
        let id = DeviceId::new(device_id)
            .map_err(|e| ClientError::Server(ErrorBody::new(ErrorCode::Invalid, e.to_string())))?;
        self.login_with(
            username,
            password,
            DeviceInfo {
                id,
                name: device_id.to_owned(),
                platform: Platform::Other,
            },
        )
        .await
    }

    /// Logs in from a described device.
    pub async fn login_with(
        &self,
        username: &str,
        password: &str,
        device: DeviceInfo,
    ) -> Result<Session, ClientError> {
        self.call(request::Login {
            username: username.to_owned(),
            password: password.to_owned(),
            device,
            proof: None,
        })
        .await
    }

    /// Logs in with a device token.
    pub async fn resume(&self, token: &str) -> Result<Session, ClientError> {
        self.call(request::Resume {
            token: token.to_owned(),
        })
        .await
    }

    /// Sends a message with an explicit client id (reuse it to retry safely).
    pub async fn send(
        &self,
        conversation: ConversationId,
        client_id: &str,
        body: Body,
    ) -> Result<Sent, ClientError> {
        self.call(request::Send {
            conversation,
            client_id: client_id.to_owned(),
            body,
            reply_to: None,
            mentions: Vec::new(),
        })
        .await
    }

    /// Sends a text message with a fresh random client id.
    pub async fn send_text(
        &self,
        conversation: ConversationId,
        text: &str,
    ) -> Result<Sent, ClientError> {
        let body = Body::Text {
            text: text.to_owned(),
        };
        self.send(conversation, &new_client_id(), body).await
    }

    /// Reacts to message `seq` with `emoji` (replacing this user's reaction to it), or
    /// takes the reaction back with `None`. Returns the message's reactions after it.
    pub async fn react(
        &self,
        conversation: ConversationId,
        seq: Seq,
        emoji: Option<&str>,
    ) -> Result<Vec<ReactionSummary>, ClientError> {
        let emoji = emoji.map(str::to_owned);
        let now = self
            .call(request::React {
                conversation,
                seq,
                emoji,
            })
            .await?;
        Ok(now.reactions)
    }

    /// Sends a text message that replies to (quotes) message `reply_to` of the same
    /// conversation, with a fresh random client id.
    pub async fn reply_text(
        &self,
        conversation: ConversationId,
        reply_to: Seq,
        text: &str,
    ) -> Result<Sent, ClientError> {
        self.call(request::Send {
            conversation,
            client_id: new_client_id(),
            body: Body::Text {
                text: text.to_owned(),
            },
            reply_to: Some(reply_to),
            mentions: Vec::new(),
        })
        .await
    }

    /// Recalls a message (one's own within the recall window; as a group owner or admin,
    /// a lower member's at any time). Returns the stored `message_recalled` event.
    pub async fn recall(
        &self,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<Sent, ClientError> {
        self.call(request::Recall {
            conversation,
            seq,
            client_id: new_client_id(),
        })
        .await
    }

    /// Replaces the body of one's own message. Returns the stored `message_edited` event.
    pub async fn edit(
        &self,
        conversation: ConversationId,
        seq: Seq,
        body: Body,
    ) -> Result<Sent, ClientError> {
        self.call(request::Edit {
            conversation,
            seq,
            client_id: new_client_id(),
            body,
        })
        .await
    }

    /// Hides a message from this user's history on all their devices.
    pub async fn delete_for_me(
        &self,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<(), ClientError> {
        self.call(request::DeleteForMe { conversation, seq })
            .await
            .map(drop)
    }

    /// Says this user is typing (`active`) or stopped, in a conversation.
    pub async fn typing(
        &self,
        conversation: ConversationId,
        active: bool,
    ) -> Result<(), ClientError> {
        self.call(request::Typing {
            conversation,
            active,
        })
        .await
        .map(drop)
    }

    /// Moves the delivered cursor; returns its new position.
    pub async fn ack(&self, conversation: ConversationId, seq: Seq) -> Result<Seq, ClientError> {
        let ack = request::Ack { conversation, seq };
        Ok(self.call(ack).await?.delivered_seq)
    }

    /// Moves the read cursor; returns its new position.
    pub async fn mark_read(
        &self,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<Seq, ClientError> {
        let read = request::MarkRead { conversation, seq };
        Ok(self.call(read).await?.read_seq)
    }

    /// A page of who received and read message `seq` (members past `after`).
    pub async fn receipts(
        &self,
        conversation: ConversationId,
        seq: Seq,
        after: Option<UserId>,
    ) -> Result<(Vec<Receipt>, bool), ClientError> {
        let page = self
            .call(request::Receipts {
                conversation,
                seq,
                after,
                limit: None,
            })
            .await?;
        Ok((page.receipts, page.more))
    }

    /// Relays a call signal to `to` (one device, or all when `device` is `None`);
    /// returns whether a device of theirs was online.
    pub async fn signal(
        &self,
        to: UserId,
        device: Option<DeviceId>,
        call_id: &str,
        signal: Signal,
    ) -> Result<bool, ClientError> {
        let signal = request::Signal {
            to,
            device,
            call_id: call_id.to_owned(),
            signal,
        };
        Ok(self.call(signal).await?.online)
    }

    /// Online status and last seen of some friends.
    pub async fn presence(&self, users: &[UserId]) -> Result<Vec<PresenceStatus>, ClientError> {
        let users = users.to_vec();
        Ok(self.call(request::Presence { users }).await?.users)
    }

    /// Lists conversations with their seqs and unread counts.
    pub async fn conversations(&self) -> Result<Vec<ConversationSummary>, ClientError> {
        Ok(self.call(request::Conversations {}).await?.conversations)
    }

    /// Reads a page of history; the flag says whether more lies in that direction.
    pub async fn history(
        &self,
        conversation: ConversationId,
        query: HistoryQuery,
    ) -> Result<(Vec<Message>, bool), ClientError> {
        let page = self
            .call(request::History {
                conversation,
                query,
            })
            .await?;
        Ok((page.messages, page.more))
    }

    /// Catches up: every message after the seqs in `seen` (0 for conversations not in
    /// it), oldest first per conversation, and advances `seen` past them.
    pub async fn sync(
        &self,
        seen: &mut HashMap<ConversationId, Seq>,
    ) -> Result<Vec<Message>, ClientError> {
        let mut missed = Vec::new();
        for summary in self.conversations().await? {
            let from = seen
                .get(&summary.conversation)
                .copied()
                .unwrap_or(Seq::ZERO);
            let mut after = from;
            while after < summary.last_seq {
                let query = HistoryQuery {
                    after: Some(after),
                    before: None,
                    limit: Some(200),
                };
                let (page, more) = self.history(summary.conversation, query).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                missed.extend(page);
                if !more {
                    break;
                }
            }
            if after > from {
                seen.insert(summary.conversation, after);
            }
        }
        Ok(missed)
    }

    /// Asks `user` to be friends.
    pub async fn request_friend(&self, user: UserId, note: &str) -> Result<(), ClientError> {
        let note = note.to_owned();
        self.call(request::RequestFriend { user, note })
            .await
            .map(drop)
    }

    /// Accepts `user`'s friend request.
    pub async fn accept_friend(&self, user: UserId) -> Result<(), ClientError> {
        self.call(request::AcceptFriend { user }).await.map(drop)
    }

    /// The user with this username.
    pub async fn find_user(&self, username: &str) -> Result<User, ClientError> {
        let username = username.to_owned();
        Ok(self.call(request::FindUser { username }).await?.user)
    }

    /// Profiles of these users (those that exist).
    pub async fn users(&self, users: &[UserId]) -> Result<Vec<User>, ClientError> {
        let users = users.to_vec();
        Ok(self.call(request::Users { users }).await?.users)
    }

    /// This user's friends.
    pub async fn friends(&self) -> Result<Vec<Friend>, ClientError> {
        Ok(self.call(request::Friends {}).await?.friends)
    }

    /// Friend requests to this user (`incoming`) and from them (`outgoing`).
    pub async fn friend_requests(
        &self,
    ) -> Result<(Vec<FriendRequest>, Vec<FriendRequest>), ClientError> {
        let requests = self.call(request::FriendRequests {}).await?;
        Ok((requests.incoming, requests.outgoing))
    }

    /// The groups this user is in.
    pub async fn my_groups(&self) -> Result<Vec<Group>, ClientError> {
        Ok(self.call(request::MyGroups {}).await?.groups)
    }

    /// Logs this device out: its token stops working and the session ends.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.call(request::Logout {}).await.map(drop)
    }

    /// Logs another of this user's devices out (this one: like [`logout`](Self::logout)).
    pub async fn revoke_device(&self, device: &DeviceId) -> Result<(), ClientError> {
        let device = device.clone();
        self.call(request::RevokeDevice { device }).await.map(drop)
    }

    /// Creates a group with first members.
    pub async fn create_group(&self, name: &str, members: &[UserId]) -> Result<Group, ClientError> {
        let create = request::CreateGroup {
            name: name.to_owned(),
            members: members.to_vec(),
            open: false,
        };
        Ok(self.call(create).await?.group)
    }

    /// Adds users to a group.
    pub async fn add_members(
        &self,
        group: GroupId,
        users: &[UserId],
    ) -> Result<Group, ClientError> {
        let users = users.to_vec();
        Ok(self.call(request::AddMembers { group, users }).await?.group)
    }

    /// Every member of a group, paging through `group_members`.
    pub async fn group_members(&self, group: GroupId) -> Result<Vec<Member>, ClientError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .call(request::GroupMembers {
                    group,
                    after,
                    limit: Some(500),
                })
                .await?;
            after = page.members.last().map(|m| m.user);
            all.extend(page.members);
            if !page.more || after.is_none() {
                return Ok(all);
            }
        }
    }
}

/// A fresh client message id: 32 hex digits, the first 12 the time in milliseconds and
/// the other 20 random (80 bits), like a UUIDv7. Ids that start with the time keep the
/// store's unique index on them ordered, which makes appends several times faster on a
/// disk-backed store than fully random ids do; any unique string works, though.
pub fn new_client_id() -> String {
    let mut random = [0u8; 10];
    // Without OS randomness, fall back to a process-wide counter: still unique here.
    if getrandom::fill(&mut random).is_err() {
        static FALLBACK: AtomicU64 = AtomicU64::new(1);
        return format!("c{}", FALLBACK.fetch_add(1, Ordering::Relaxed));
    }
    let millis = crate::model::Timestamp::now().0.max(0) as u64 & 0xffff_ffff_ffff;
    let mut id = format!("{millis:012x}");
    for b in random {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// Owns the connection: writes queued requests in batches, routes what arrives.
async fn drive<C, E>(
    io: C,
    mut out: mpsc::Receiver<Bytes>,
    events: mpsc::Sender<Event>,
    pending: Pending,
    codec: Codec,
) where
    C: Stream<Item = Result<Bytes, E>> + Sink<Bytes> + Send + Unpin + 'static,
    E: fmt::Display + Send + 'static,
    <C as Sink<Bytes>>::Error: fmt::Display,
{
    let (mut sink, mut stream) = io.split();
    let writer = async {
        let mut batch = Vec::with_capacity(64);
        while out.recv_many(&mut batch, 64).await > 0 {
            for frame in batch.drain(..) {
                if sink.feed(frame).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    };
    let reader = async {
        // Until the hello reply, frames are JSON.
        let mut current = Codec::Json;
        // Events were dropped because the app's buffer was full: owe it a `resync`.
        let mut lagged = false;
        loop {
            let item = if lagged {
                // Waiting for room must not stop replies from being read.
                tokio::select! {
                    item = stream.next() => item,
                    permit = events.reserve() => {
                        if let Ok(permit) = permit {
                            permit.send(Event::Resync {
                                reason: "client event buffer overflowed".to_owned(),
                            });
                        }
                        lagged = false;
                        continue;
                    }
                }
            } else {
                stream.next().await
            };
            let Some(Ok(bytes)) = item else { break };
            let frame: ServerFrame = match current.decode(&bytes) {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable frame from the server");
                    continue;
                }
            };
            match frame {
                ServerFrame::Reply { id, reply } => {
                    if id == HELLO_ID && matches!(reply, Reply::Hello(_)) {
                        current = codec;
                    }
                    resolve(&pending, id, Ok(reply));
                }
                ServerFrame::Error {
                    id: Some(id),
                    error,
                } => resolve(&pending, id, Err(error)),
                ServerFrame::Error { id: None, error } => {
                    tracing::warn!(%error, "connection error from the server");
                }
                // Never wait for the app here: replies behind this event must still be
                // read. A full buffer drops events (they are in storage) and owes a resync.
                ServerFrame::Event { event } => match events.try_send(event) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => lagged = true,
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                },
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    // Fail whatever is still waiting, and whatever is asked from now on.
    *pending.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

fn resolve(pending: &Pending, id: u64, result: Result<Reply, ErrorBody>) {
    let waiter = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
        .and_then(|waiting| waiting.remove(&id));
    if let Some(tx) = waiter {
        let _ = tx.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::new_client_id;

    #[test]
    fn client_ids_are_unique_hex_and_start_with_the_time() {
        let first = new_client_id();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let ids: Vec<String> = (0..1000).map(|_| new_client_id()).collect();
        assert!(ids.iter().all(|id| id.len() == 32));
        assert!(
            ids.iter()
                .all(|id| id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        // Later ids sort after earlier ones by their time prefix.
        assert!(
            ids.iter().all(|id| id[..12] > first[..12]),
            "{first} {}",
            ids[0]
        );
        assert!(ids.windows(2).all(|w| w[0][..12] <= w[1][..12]));
        let millis = u64::from_str_radix(&first[..12], 16).unwrap() as i64;
        let now = crate::model::Timestamp::now().0;
        assert!((now - millis).abs() < 60_000, "{millis} vs {now}");
    }
}
