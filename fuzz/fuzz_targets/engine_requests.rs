//! One engine (memory storage) driven by four users with an arbitrary sequence of
//! requests, some pipelined, some malformed, checking after each step:
//!
//! - nothing panics (libFuzzer aborts on a panic in any task, the engine's included);
//! - every request is answered exactly once, within 5 s, while its connection lives;
//! - no frame reaches a user carrying a message of a conversation they were never part
//!   of (each message text names its conversation: `⟦d:1:2⟧`), search results included;
//!
//! and at the end that every conversation's stored seqs run 1, 2, … with no gap.

#![no_main]

use im_core::protocol::request;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use im_core::auth::HashCost;
use im_core::engine::RateLimits;
use im_core::model::{Body, ConversationId, DeviceId, GroupId, Platform, Role, Seq, UserId};
use im_core::protocol::{ClientFrame, Codec, DeviceInfo, HistoryQuery, Request};
use im_core::storage::MessageRange;
use im_core::transport::{DuplexConnection, duplex};
use im_core::{Engine, EngineConfig};
use libfuzzer_sys::fuzz_target;

const USERS: usize = 4;
const PASSWORD: &str = "correct horse";
/// Opens every message text: the conversation it was sent to.
const MARK: char = '⟦';

#[derive(Arbitrary, Debug)]
struct Op {
    /// Which user sends it (modulo the number of users).
    actor: u8,
    /// Wait for the answer before the next step; otherwise it stays in flight.
    wait: bool,
    kind: Kind,
}

/// A request, with its targets as small indexes into what exists.
#[derive(Arbitrary, Debug)]
enum Kind {
    Send {
        conv: u8,
        retry: bool,
        mention: Option<u8>,
    },
    Recall {
        conv: u8,
        seq: u8,
    },
    Edit {
        conv: u8,
        seq: u8,
    },
    DeleteForMe {
        conv: u8,
        seq: u8,
    },
    History {
        conv: u8,
        after: Option<u8>,
        before: Option<u8>,
        limit: Option<u8>,
    },
    MarkRead {
        conv: u8,
        seq: u8,
    },
    Ack {
        conv: u8,
        seq: u8,
    },
    Receipts {
        conv: u8,
        seq: u8,
    },
    Typing {
        conv: u8,
        active: bool,
    },
    Conversations,
    React {
        conv: u8,
        seq: u8,
        remove: bool,
    },
    Pin {
        conv: u8,
        seq: u8,
    },
    Unpin {
        conv: u8,
        seq: u8,
    },
    Pins {
        conv: u8,
    },
    /// Looks for `d` (every direct message's text has it as a word), `g`, or a number.
    Search {
        conv: Option<u8>,
        word: u8,
    },
    RequestFriend {
        user: u8,
    },
    AcceptFriend {
        user: u8,
    },
    DeclineFriend {
        user: u8,
    },
    RemoveFriend {
        user: u8,
    },
    Block {
        user: u8,
    },
    Unblock {
        user: u8,
    },
    Friends,
    FriendRequests,
    CreateGroup {
        members: Vec<u8>,
        open: bool,
    },
    AddMembers {
        group: u8,
        users: Vec<u8>,
    },
    JoinGroup {
        group: u8,
    },
    LeaveGroup {
        group: u8,
    },
    KickMember {
        group: u8,
        user: u8,
    },
    SetRole {
        group: u8,
        user: u8,
        admin: bool,
    },
    RenameGroup {
        group: u8,
    },
    TransferGroup {
        group: u8,
        to: u8,
    },
    GroupMembers {
        group: u8,
    },
    MyGroups,
    Presence {
        users: Vec<u8>,
    },
    Devices,
    Logout,
    /// Logs in again on the actor's connection (refused while logged in).
    Login,
    /// A new connection for the actor: hello and login again.
    Reconnect,
    /// Arbitrary bytes as one frame.
    Raw(Vec<u8>),
}

/// One user's connection and what it has seen.
struct Peer {
    user: UserId,
    conn: Option<DuplexConnection>,
    /// Requests sent and not answered yet.
    pending: HashSet<u64>,
}

struct World {
    engine: Engine,
    peers: Vec<Peer>,
    groups: Vec<GroupId>,
    /// Everyone who was ever a member of each group (creator, added, joined).
    ever_members: HashMap<GroupId, BTreeSet<UserId>>,
    next_id: u64,
    sent: u64,
    /// Group creations sent.
    creates: u64,
}

impl World {
    async fn new() -> World {
        // Argon2's smallest memory cost: eight hashes an input, each in microseconds.
        let cost = HashCost {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        let config = EngineConfig::default()
            .with_hash_cost(cost)
            .with_rate_limits(RateLimits::unlimited());
        let engine = Engine::builder().config(config).start().await.unwrap();
        let mut world = World {
            engine,
            peers: Vec::new(),
            groups: Vec::new(),
            ever_members: HashMap::new(),
            next_id: 1,
            sent: 0,
            creates: 0,
        };
        for n in 0..USERS {
            world.peers.push(Peer {
                user: UserId(0),
                conn: None,
                pending: HashSet::new(),
            });
            world.connect(n).await;
            let name = format!("user{n}");
            let register = Request::Register(request::Register {
                username: name.clone(),
                password: PASSWORD.into(),
                display_name: name,
                avatar: None,
                proof: None,
                contact: None,
            });
            let reply = world.call(n, register).await.expect("register");
            world.peers[n].user = UserId(reply["user"]["id"].as_u64().expect("user id"));
            world.call(n, login(n)).await.expect("login");
        }
        // A start with something to see: users 0, 1 and 2 are friends and share a group
        // with a message in it, 0 and 1 have talked; user 3 knows nobody.
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let (ua, ub) = (world.peers[a].user, world.peers[b].user);
            let note = "hi".to_owned();
            world
                .call(
                    a,
                    Request::RequestFriend(request::RequestFriend { user: ub, note }),
                )
                .await
                .expect("request");
            world
                .call(b, Request::AcceptFriend(request::AcceptFriend { user: ua }))
                .await
                .expect("accept");
        }
        world
            .step(Op {
                actor: 0,
                wait: true,
                kind: Kind::CreateGroup {
                    members: vec![1, 2],
                    open: false,
                },
            })
            .await;
        assert_eq!(world.groups.len(), 1, "the first group");
        for conv in [0, 6] {
            world
                .step(Op {
                    actor: 0,
                    wait: true,
                    kind: Kind::Send {
                        conv,
                        retry: false,
                        mention: None,
                    },
                })
                .await;
        }
        world
    }

    fn user(&self, index: u8) -> UserId {
        self.peers[usize::from(index) % USERS].user
    }

    /// The conversation an index names: a direct chat of two users, a group, or one that
    /// does not exist.
    fn conversation(&self, index: u8) -> ConversationId {
        let pairs = USERS * (USERS - 1) / 2;
        let i = usize::from(index) % (pairs + self.groups.len() + 1);
        if i < pairs {
            let (mut a, mut n) = (0, i);
            while n >= USERS - 1 - a {
                n -= USERS - 1 - a;
                a += 1;
            }
            ConversationId::direct(self.peers[a].user, self.peers[a + 1 + n].user)
        } else if i < pairs + self.groups.len() {
            ConversationId::Group(self.groups[i - pairs])
        } else {
            ConversationId::Group(GroupId(9_999))
        }
    }

    fn group(&self, index: u8) -> GroupId {
        if self.groups.is_empty() || index == u8::MAX {
            return GroupId(9_999);
        }
        self.groups[usize::from(index) % self.groups.len()]
    }

    fn text(&mut self, conversation: ConversationId) -> Body {
        self.sent += 1;
        Body::Text {
            text: format!("{MARK}{conversation}⟧ {}", self.sent),
        }
    }

    fn request(&mut self, kind: Kind) -> Option<Request> {
        let seq = |s: u8| Seq(u64::from(s));
        Some(match kind {
            Kind::Send {
                conv,
                retry,
                mention,
            } => {
                let conversation = self.conversation(conv);
                let client_id = if retry {
                    "again".into()
                } else {
                    format!("c{}", self.sent)
                };
                Request::Send(request::Send {
                    conversation,
                    client_id,
                    body: self.text(conversation),
                    reply_to: None,
                    mentions: mention.map(|u| self.user(u)).into_iter().collect(),
                })
            }
            Kind::Recall { conv, seq: s } => Request::Recall(request::Recall {
                conversation: self.conversation(conv),
                seq: seq(s),
                client_id: format!("r{}", self.next_id),
            }),
            Kind::Edit { conv, seq: s } => {
                let conversation = self.conversation(conv);
                Request::Edit(request::Edit {
                    conversation,
                    seq: seq(s),
                    client_id: format!("e{}", self.next_id),
                    body: self.text(conversation),
                })
            }
            Kind::DeleteForMe { conv, seq: s } => Request::DeleteForMe(request::DeleteForMe {
                conversation: self.conversation(conv),
                seq: seq(s),
            }),
            Kind::History {
                conv,
                after,
                before,
                limit,
            } => Request::History(request::History {
                conversation: self.conversation(conv),
                query: HistoryQuery {
                    after: after.map(seq),
                    before: before.map(seq),
                    limit: limit.map(u32::from),
                },
            }),
            Kind::MarkRead { conv, seq: s } => Request::MarkRead(request::MarkRead {
                conversation: self.conversation(conv),
                seq: seq(s),
            }),
            Kind::Ack { conv, seq: s } => Request::Ack(request::Ack {
                conversation: self.conversation(conv),
                seq: seq(s),
            }),
            Kind::Receipts { conv, seq: s } => Request::Receipts(request::Receipts {
                conversation: self.conversation(conv),
                seq: seq(s),
                after: None,
                limit: None,
            }),
            Kind::Typing { conv, active } => Request::Typing(request::Typing {
                conversation: self.conversation(conv),
                active,
            }),
            Kind::Conversations => Request::Conversations(request::Conversations {}),
            Kind::React {
                conv,
                seq: s,
                remove,
            } => Request::React(request::React {
                conversation: self.conversation(conv),
                seq: seq(s),
                emoji: (!remove).then(|| "👍".to_owned()),
            }),
            Kind::Pin { conv, seq: s } => Request::Pin(request::Pin {
                conversation: self.conversation(conv),
                seq: seq(s),
            }),
            Kind::Unpin { conv, seq: s } => Request::Unpin(request::Unpin {
                conversation: self.conversation(conv),
                seq: seq(s),
            }),
            Kind::Pins { conv } => Request::Pins(request::Pins {
                conversation: self.conversation(conv),
            }),
            Kind::Search { conv, word } => Request::Search(request::Search {
                query: match word % 4 {
                    0 => "d".to_owned(),
                    1 => "g".to_owned(),
                    _ => (word / 4).to_string(),
                },
                conversation: conv.map(|c| self.conversation(c)),
                before: None,
                limit: None,
            }),
            Kind::RequestFriend { user } => Request::RequestFriend(request::RequestFriend {
                user: self.user(user),
                note: "hi".into(),
            }),
            Kind::AcceptFriend { user } => Request::AcceptFriend(request::AcceptFriend {
                user: self.user(user),
            }),
            Kind::DeclineFriend { user } => Request::DeclineFriend(request::DeclineFriend {
                user: self.user(user),
            }),
            Kind::RemoveFriend { user } => Request::RemoveFriend(request::RemoveFriend {
                user: self.user(user),
            }),
            Kind::Block { user } => Request::Block(request::Block {
                user: self.user(user),
            }),
            Kind::Unblock { user } => Request::Unblock(request::Unblock {
                user: self.user(user),
            }),
            Kind::Friends => Request::Friends(request::Friends {}),
            Kind::FriendRequests => Request::FriendRequests(request::FriendRequests {}),
            Kind::CreateGroup { members, open } => Request::CreateGroup(request::CreateGroup {
                name: "g".into(),
                members: members.into_iter().take(8).map(|u| self.user(u)).collect(),
                open,
            }),
            Kind::AddMembers { group, users } => Request::AddMembers(request::AddMembers {
                group: self.group(group),
                users: users.into_iter().take(8).map(|u| self.user(u)).collect(),
            }),
            Kind::JoinGroup { group } => Request::JoinGroup(request::JoinGroup {
                group: self.group(group),
            }),
            Kind::LeaveGroup { group } => Request::LeaveGroup(request::LeaveGroup {
                group: self.group(group),
            }),
            Kind::KickMember { group, user } => Request::KickMember(request::KickMember {
                group: self.group(group),
                user: self.user(user),
            }),
            Kind::SetRole { group, user, admin } => Request::SetRole(request::SetRole {
                group: self.group(group),
                user: self.user(user),
                role: if admin { Role::Admin } else { Role::Member },
            }),
            Kind::RenameGroup { group } => Request::RenameGroup(request::RenameGroup {
                group: self.group(group),
                name: "renamed".into(),
            }),
            Kind::TransferGroup { group, to } => Request::TransferGroup(request::TransferGroup {
                group: self.group(group),
                to: self.user(to),
            }),
            Kind::GroupMembers { group } => Request::GroupMembers(request::GroupMembers {
                group: self.group(group),
                after: None,
                limit: None,
            }),
            Kind::MyGroups => Request::MyGroups(request::MyGroups {}),
            Kind::Presence { users } => Request::Presence(request::Presence {
                users: users.into_iter().take(8).map(|u| self.user(u)).collect(),
            }),
            Kind::Devices => Request::Devices(request::Devices {}),
            Kind::Logout => Request::Logout(request::Logout {}),
            Kind::Login | Kind::Reconnect | Kind::Raw(_) => return None,
        })
    }

    /// Opens a new connection for user `n` and says hello on it.
    async fn connect(&mut self, n: usize) {
        let (server, client) = duplex(256);
        let engine = self.engine.clone();
        tokio::spawn(async move { engine.serve_connection(server).await });
        let peer = &mut self.peers[n];
        peer.conn = Some(client);
        peer.pending.clear();
        let hello = Request::Hello(request::Hello {
            versions: vec![1],
            client: "fuzz".into(),
            codec: None,
        });
        self.call(n, hello).await.expect("hello");
    }

    /// Sends a request and waits for its answer: the reply's body, or `None` for an error.
    async fn call(&mut self, n: usize, request: Request) -> Option<serde_json::Value> {
        let id = self.send(n, request).await?;
        self.answer(n, id).await
    }

    async fn send(&mut self, n: usize, request: Request) -> Option<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = Codec::Json.encode(&ClientFrame { id, request }).unwrap();
        self.send_bytes(n, frame).await?;
        self.peers[n].pending.insert(id);
        Some(id)
    }

    async fn send_bytes(&mut self, n: usize, frame: Bytes) -> Option<()> {
        let conn = self.peers[n].conn.as_mut()?;
        if conn.send(frame).await.is_err() {
            self.peers[n].conn = None;
            return None;
        }
        Some(())
    }

    /// Reads user `n`'s frames until the answer to `id` arrives.
    async fn answer(&mut self, n: usize, id: u64) -> Option<serde_json::Value> {
        loop {
            let frame = self.next_frame(n, Some(Duration::from_secs(5))).await?;
            if frame.get("id").and_then(|v| v.as_u64()) == Some(id) {
                return (frame["type"] == "reply").then(|| frame["reply"].clone());
            }
        }
    }

    /// The next frame user `n` receives, checked; `None` when the connection closed (or,
    /// with no deadline, when nothing is ready).
    async fn next_frame(
        &mut self,
        n: usize,
        deadline: Option<Duration>,
    ) -> Option<serde_json::Value> {
        let conn = self.peers[n].conn.as_mut()?;
        let next = match deadline {
            Some(wait) => match tokio::time::timeout(wait, conn.next()).await {
                Ok(next) => next,
                Err(_) => panic!(
                    "user {n}: requests {:?} unanswered after {wait:?}",
                    self.peers[n].pending
                ),
            },
            None => futures::FutureExt::now_or_never(conn.next())?,
        };
        let Some(Ok(bytes)) = next else {
            // Closed (kicked, logged out elsewhere, a malformed frame): what was in flight
            // is not answered, and that is allowed.
            self.peers[n].conn = None;
            self.peers[n].pending.clear();
            return None;
        };
        self.check_private(n, &bytes);
        let frame: serde_json::Value =
            serde_json::from_slice(&bytes).expect("the server sent a frame that is not JSON");
        if let Some(id) = frame.get("id").and_then(|v| v.as_u64())
            && !self.peers[n].pending.remove(&id)
        {
            panic!("user {n}: request {id} answered twice (or never asked): {frame}");
        }
        self.learn(&frame);
        Some(frame)
    }

    /// No frame to user `n` names a conversation they were never part of.
    fn check_private(&self, n: usize, bytes: &[u8]) {
        let me = self.peers[n].user;
        let text = String::from_utf8_lossy(bytes);
        for (at, _) in text.match_indices(MARK) {
            let rest = &text[at + MARK.len_utf8()..];
            let Some(end) = rest.find('⟧') else {
                continue;
            };
            let conversation: ConversationId = rest[..end].parse().expect("a marked text");
            let allowed = match conversation {
                ConversationId::Direct(a, b) => me == a || me == b,
                ConversationId::Group(g) => {
                    self.ever_members.get(&g).is_some_and(|m| m.contains(&me))
                }
            };
            assert!(
                allowed,
                "user {n} ({me}) was sent a message of {conversation}: {text}"
            );
        }
    }

    /// Keeps track of the groups created, from the replies seen.
    fn learn(&mut self, frame: &serde_json::Value) {
        if frame["type"] == "reply" && frame["reply"]["type"] == "group" {
            let g = GroupId(frame["reply"]["group"]["id"].as_u64().unwrap());
            if !self.groups.contains(&g) {
                self.groups.push(g);
            }
        }
    }

    /// Reads everything ready on every connection.
    async fn drain(&mut self) {
        for n in 0..USERS {
            while self.next_frame(n, None).await.is_some() {}
        }
    }

    async fn step(&mut self, op: Op) {
        let n = usize::from(op.actor) % USERS;
        if self.peers[n].conn.is_none() || matches!(op.kind, Kind::Reconnect) {
            self.connect(n).await;
            self.call(n, login(n)).await;
            return;
        }
        // Whoever creates or is added to a group counts as a member from the request on:
        // a push may arrive before the reply.
        match &op.kind {
            Kind::CreateGroup { members, .. } => self.expect_members(None, n, members),
            Kind::AddMembers { group, users } => self.expect_members(Some(*group), n, users),
            Kind::JoinGroup { group } => self.expect_members(Some(*group), n, &[]),
            _ => {}
        }
        let id = match op.kind {
            Kind::Login => self.send(n, login(n)).await,
            Kind::Raw(bytes) => {
                if String::from_utf8_lossy(&bytes).contains(MARK) {
                    return;
                }
                self.send_bytes(n, Bytes::from(bytes)).await;
                None
            }
            kind => match self.request(kind) {
                Some(request) => self.send(n, request).await,
                None => None,
            },
        };
        if let (Some(id), true) = (id, op.wait) {
            self.answer(n, id).await;
        }
        self.drain().await;
    }

    /// Records the actor and `users` as members of a group (all groups, for a group to be
    /// created) before the request goes out.
    fn expect_members(&mut self, group: Option<u8>, n: usize, users: &[u8]) {
        let mut who: Vec<UserId> = users.iter().map(|&u| self.user(u)).collect();
        who.push(self.peers[n].user);
        // A new group's id is not known yet: memory storage numbers groups 1, 2, … in
        // the order they are created, so it is past the newest known one and at most the
        // number of creates sent (some may still be in flight).
        let groups: Vec<GroupId> = match group {
            Some(g) => vec![self.group(g)],
            None => {
                self.creates += 1;
                let known = self.groups.iter().map(|g| g.0).max().unwrap_or(0);
                (known + 1..=self.creates).map(GroupId).collect()
            }
        };
        for g in groups {
            self.ever_members
                .entry(g)
                .or_default()
                .extend(who.iter().copied());
        }
    }

    /// Answers everything in flight, then checks every conversation's seqs are gapless.
    async fn finish(mut self) {
        for n in 0..USERS {
            let pending: Vec<u64> = self.peers[n].pending.iter().copied().collect();
            for id in pending {
                if self.peers[n].pending.contains(&id) {
                    self.answer(n, id).await;
                }
            }
        }
        let storage = self.engine.storage().clone();
        let pairs = USERS * (USERS - 1) / 2;
        for i in 0..(pairs + self.groups.len()) {
            let conversation = self.conversation(i as u8);
            let range = MessageRange {
                after: Seq::ZERO,
                before: None,
                limit: 10_000,
                newest: false,
                viewer: None,
            };
            let messages = storage.messages(conversation, range).await.unwrap();
            for (i, m) in messages.iter().enumerate() {
                assert_eq!(
                    m.seq,
                    Seq(i as u64 + 1),
                    "{conversation}: a gap in the seqs"
                );
            }
            let last = storage.last_seq(conversation).await.unwrap();
            assert_eq!(last, Seq(messages.len() as u64), "{conversation}: last_seq");
        }
        // With its clients gone, the engine stops promptly and leaves nothing running in
        // the runtime the next input reuses.
        for peer in &mut self.peers {
            peer.conn = None;
        }
        let stopped = tokio::time::timeout(Duration::from_secs(5), self.engine.shutdown()).await;
        assert!(stopped.is_ok(), "the engine did not shut down within 5 s");
    }
}

fn login(n: usize) -> Request {
    Request::Login(request::Login {
        username: format!("user{n}"),
        password: PASSWORD.into(),
        device: DeviceInfo {
            id: DeviceId::new("fuzz").unwrap(),
            name: String::new(),
            platform: Platform::Desktop,
        },
        proof: None,
    })
}

fuzz_target!(|ops: Vec<Op>| {
    // One runtime for every input (a new one per input spends most of the time starting
    // threads); each input gets a new engine.
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    runtime.block_on(async {
        let mut world = World::new().await;
        for op in ops.into_iter().take(64) {
            world.step(op).await;
        }
        world.finish().await;
    });
});
