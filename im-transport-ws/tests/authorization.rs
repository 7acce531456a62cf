//! Issue 13's authorization matrix: request types × the people and tokens that must be
//! refused (a stranger, a blocked user, a former member, a plain member doing an admin's
//! job, a revoked token, an expired token, another user's device id, conversation ids
//! not in canonical form), each with the error code `docs/protocol.md` gives it, run over
//! WebSocket and over HTTP. Meanwhile everyone keeps a WebSocket open, and at the end no
//! frame pushed to the outsiders, and no error, carries a word of the private messages.

mod common;

use im_core::protocol::reply;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Api, PASSWORD, WAIT, start, test_config};
use futures::{SinkExt, StreamExt};
use im_core::Engine;
use im_core::protocol::{Reply, Request};
use im_core::transport::PeerInfo;
use im_transport_ws::routes::{Handler, ROUTES};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Texts only their two users (the direct one) or the group's current members may see.
const DIRECT_MARKER: &str = "MARKER-direct-5b1f0c";
const GROUP_MARKER: &str = "MARKER-group-9e27d4";
const MARKERS: [&str; 2] = [DIRECT_MARKER, GROUP_MARKER];

/// Who makes a request: a user on their own device, or a token that no longer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    /// Owner of the group; friends with bob, dave, erin and frank; has blocked dave.
    Alice,
    /// Alice's friend, a plain member of the group.
    Bob,
    /// A stranger: nobody's friend, never a member.
    Carol,
    /// Alice's friend, blocked by her.
    Dave,
    /// Alice's and dave's friend, who was in the group and left it. (Frank, alice's
    /// friend and a plain member, only ever appears as the target of others' requests.)
    Erin,
    /// Alice's token for a device she revoked.
    RevokedToken,
    /// Alice's token for a device whose token expired.
    ExpiredToken,
}

impl Actor {
    /// Whether this actor may see neither private message.
    fn is_outsider(self) -> bool {
        matches!(self, Actor::Carol | Actor::Dave | Actor::Erin)
    }
}

/// What a row must get back.
#[derive(Debug, Clone)]
enum Expect {
    /// An error with this code (and over HTTP the status that goes with it).
    Error(&'static str),
    /// This reply exactly: an answer that must not reveal anything.
    Reply(Value),
}

/// One row of the matrix: who sends what, and what they must get.
#[derive(Debug, Clone)]
struct Row {
    actor: Actor,
    request: Value,
    expect: Expect,
}

fn refused(actor: Actor, request: Value, code: &'static str) -> Row {
    Row {
        actor,
        request,
        expect: Expect::Error(code),
    }
}

/// The HTTP status `docs/protocol.md` gives an error code.
fn documented_status(code: &str) -> StatusCode {
    match code {
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "forbidden" => StatusCode::FORBIDDEN,
        "not_found" => StatusCode::NOT_FOUND,
        "conflict" => StatusCode::CONFLICT,
        "invalid" => StatusCode::UNPROCESSABLE_ENTITY,
        other => panic!("no status for {other} in this test"),
    }
}

fn text(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// Every request that names a conversation, on `conversation`'s message `seq`.
fn conversation_requests(conversation: &str, seq: u64) -> Vec<Value> {
    let c = conversation;
    vec![
        json!({"type": "send", "conversation": c, "client_id": "intruder-1", "body": text("intruding")}),
        json!({"type": "history", "conversation": c, "after": 0, "limit": 50}),
        json!({"type": "mark_read", "conversation": c, "seq": seq}),
        json!({"type": "ack", "conversation": c, "seq": seq}),
        json!({"type": "receipts", "conversation": c, "seq": seq}),
        json!({"type": "typing", "conversation": c, "active": true}),
        json!({"type": "recall", "conversation": c, "seq": seq, "client_id": "intruder-2"}),
        json!({"type": "edit", "conversation": c, "seq": seq, "client_id": "intruder-3", "body": text("rewritten")}),
        json!({"type": "delete_for_me", "conversation": c, "seq": seq}),
        json!({"type": "react", "conversation": c, "seq": seq, "emoji": "👀"}),
        json!({"type": "forward", "conversation": c, "seq": seq, "to": c, "client_id": "intruder-4"}),
        json!({"type": "pin", "conversation": c, "seq": seq}),
        json!({"type": "unpin", "conversation": c, "seq": seq}),
        json!({"type": "pins", "conversation": c}),
        json!({"type": "search", "query": "intruding", "conversation": c}),
    ]
}

/// Every group command on group `g`, as a non-member would try it; `add` is the user
/// they try to add.
fn group_requests(g: u64, them: &World, add: u64) -> Vec<Value> {
    vec![
        json!({"type": "group_info", "group": g}),
        json!({"type": "group_members", "group": g}),
        json!({"type": "join_group", "group": g}),
        json!({"type": "leave_group", "group": g}),
        json!({"type": "add_members", "group": g, "users": [add]}),
        json!({"type": "kick_member", "group": g, "user": them.frank}),
        json!({"type": "set_role", "group": g, "user": them.frank, "role": "admin"}),
        json!({"type": "rename_group", "group": g, "name": "taken over"}),
        json!({"type": "transfer_group", "group": g, "to": them.frank}),
    ]
}

fn offer() -> Value {
    json!({"type": "offer", "sdp": "v=0", "video": false})
}

/// One request of every type that needs a login, each one alice may make: with a
/// token that no longer counts, every one of them is `unauthorized`.
fn every_authenticated_request(w: &World) -> Vec<Value> {
    let g = w.group;
    let mut requests = vec![
        json!({"type": "devices"}),
        json!({"type": "revoke_device", "device": "alice-phone"}),
        json!({"type": "change_password", "old_password": PASSWORD, "new_password": "another password"}),
        json!({"type": "update_profile", "display_name": "Renamed"}),
        json!({"type": "find_user", "username": "bob"}),
        json!({"type": "users", "users": [w.bob]}),
        json!({"type": "request_friend", "user": w.carol}),
        json!({"type": "accept_friend", "user": w.carol}),
        json!({"type": "decline_friend", "user": w.carol}),
        json!({"type": "remove_friend", "user": w.bob}),
        json!({"type": "block", "user": w.carol}),
        json!({"type": "unblock", "user": w.dave}),
        json!({"type": "friends"}),
        json!({"type": "friend_requests"}),
        json!({"type": "blocked_users"}),
        json!({"type": "create_group", "name": "another"}),
        json!({"type": "add_members", "group": g, "users": [w.erin]}),
        json!({"type": "join_group", "group": g}),
        json!({"type": "leave_group", "group": g}),
        json!({"type": "kick_member", "group": g, "user": w.frank}),
        json!({"type": "set_role", "group": g, "user": w.bob, "role": "admin"}),
        json!({"type": "rename_group", "group": g, "name": "renamed"}),
        json!({"type": "transfer_group", "group": g, "to": w.bob}),
        json!({"type": "group_info", "group": g}),
        json!({"type": "group_members", "group": g}),
        json!({"type": "my_groups"}),
        json!({"type": "conversations"}),
        json!({"type": "signal", "to": w.bob, "call_id": "call-1", "signal": offer()}),
        json!({"type": "presence", "users": [w.bob]}),
    ];
    requests.extend(conversation_requests(&w.direct, w.direct_seq));
    requests.push(json!({"type": "logout"}));
    requests
}

/// The matrix.
fn rows(w: &World) -> Vec<Row> {
    use Actor::*;
    let mut rows = Vec::new();
    let g = w.group;
    let group = format!("g:{g}");

    // A stranger, on the direct chat of two others and on a group they are not in.
    for request in conversation_requests(&w.direct, w.direct_seq) {
        rows.push(refused(Carol, request, "forbidden"));
    }
    for request in conversation_requests(&group, w.group_seq) {
        rows.push(refused(Carol, request, "forbidden"));
    }
    // `join_group` is `forbidden` for an invite-only group, the others for a non-member.
    for request in group_requests(g, w, w.bob) {
        rows.push(refused(Carol, request, "forbidden"));
    }
    rows.push(refused(
        Carol,
        json!({"type": "signal", "to": w.alice, "call_id": "call-2", "signal": offer()}),
        "forbidden",
    ));

    // A former member: the group is closed to her as to a stranger. She adds dave, her
    // friend and no member, so only her own membership can refuse it.
    for request in conversation_requests(&group, w.group_seq) {
        rows.push(refused(Erin, request, "forbidden"));
    }
    for request in group_requests(g, w, w.dave) {
        rows.push(refused(Erin, request, "forbidden"));
    }
    // Bob and erin shared only the group: no call between them any more.
    rows.push(refused(
        Erin,
        json!({"type": "signal", "to": w.bob, "call_id": "call-3", "signal": offer()}),
        "forbidden",
    ));

    // A plain member doing what only the owner or an admin may. (`add_members` is open to
    // any member, but only of the caller's own friends: carol is not bob's.)
    for request in [
        json!({"type": "kick_member", "group": g, "user": w.frank}),
        json!({"type": "kick_member", "group": g, "user": w.alice}),
        json!({"type": "set_role", "group": g, "user": w.frank, "role": "admin"}),
        json!({"type": "set_role", "group": g, "user": w.bob, "role": "admin"}),
        json!({"type": "rename_group", "group": g, "name": "bob's now"}),
        json!({"type": "transfer_group", "group": g, "to": w.bob}),
        json!({"type": "add_members", "group": g, "users": [w.carol]}),
        // Alice's group message: an owner's, which a plain member may neither recall
        // nor edit.
        json!({"type": "recall", "conversation": group, "seq": w.group_seq}),
        json!({"type": "edit", "conversation": group, "seq": w.group_seq, "body": text("bob wrote this")}),
    ] {
        rows.push(refused(Bob, request, "forbidden"));
    }
    // The other party's message in a direct chat: not the sender.
    rows.push(refused(
        Bob,
        json!({"type": "recall", "conversation": w.direct, "seq": w.direct_seq}),
        "forbidden",
    ));
    rows.push(refused(
        Bob,
        json!({"type": "edit", "conversation": w.direct, "seq": w.direct_seq, "body": text("alice never said this")}),
        "forbidden",
    ));
    // Another user's device id: bob has no device of that name.
    rows.push(refused(
        Bob,
        json!({"type": "revoke_device", "device": "alice-phone"}),
        "not_found",
    ));

    // A block stops messages, typing, calls, friend requests and group additions, both
    // ways, though the two are still friends; and dave may no longer edit what he sent.
    for request in [
        json!({"type": "send", "conversation": w.blocked, "client_id": "dave-2", "body": text("let me in")}),
        json!({"type": "typing", "conversation": w.blocked, "active": true}),
        json!({"type": "edit", "conversation": w.blocked, "seq": w.blocked_seq, "body": text("edited after the block")}),
        json!({"type": "signal", "to": w.alice, "call_id": "call-4", "signal": offer()}),
        json!({"type": "request_friend", "user": w.alice}),
    ] {
        rows.push(refused(Dave, request, "forbidden"));
    }
    for request in [
        json!({"type": "send", "conversation": w.blocked, "client_id": "alice-2", "body": text("hi dave")}),
        json!({"type": "typing", "conversation": w.blocked, "active": true}),
        json!({"type": "signal", "to": w.dave, "call_id": "call-5", "signal": offer()}),
        json!({"type": "add_members", "group": g, "users": [w.dave]}),
    ] {
        rows.push(refused(Alice, request, "forbidden"));
    }

    // Things that do not exist.
    let nobody = 999_999;
    rows.push(refused(
        Carol,
        json!({"type": "send", "conversation": format!("d:{}:{nobody}", w.carol), "client_id": "carol-1", "body": text("hello?")}),
        "not_found",
    ));
    rows.push(refused(
        Carol,
        json!({"type": "group_info", "group": nobody}),
        "not_found",
    ));
    rows.push(refused(
        Carol,
        json!({"type": "history", "conversation": format!("g:{nobody}")}),
        "not_found",
    ));
    rows.push(refused(
        Bob,
        json!({"type": "recall", "conversation": w.direct, "seq": nobody}),
        "not_found",
    ));
    rows.push(refused(
        Bob,
        json!({"type": "react", "conversation": w.direct, "seq": nobody, "emoji": "👍"}),
        "not_found",
    ));

    // Other spellings of real conversation ids, by someone who may use the real one.
    let (a, b) = (w.alice, w.bob);
    for spelling in [
        format!("d:0{a}:{b}"),
        format!("d:+{a}:{b}"),
        format!("d:{a}:0{b}"),
        format!("d:{b}:{a}"),
        format!("d:{a}:{a}"),
        format!("g:0{g}"),
        format!("g:+{g}"),
    ] {
        for request in conversation_requests(&spelling, 1) {
            rows.push(refused(Alice, request, "invalid"));
        }
    }

    // Tokens that no longer count: every request that needs a login.
    for actor in [RevokedToken, ExpiredToken] {
        for request in every_authenticated_request(w) {
            rows.push(refused(actor, request, "unauthorized"));
        }
    }

    // Answers that succeed but must show an outsider nothing of others.
    let quiet = |actor, request, reply| Row {
        actor,
        request,
        expect: Expect::Reply(reply),
    };
    rows.push(quiet(
        Carol,
        json!({"type": "conversations"}),
        json!({"type": "conversations", "conversations": []}),
    ));
    rows.push(quiet(
        Erin,
        json!({"type": "conversations"}),
        json!({"type": "conversations", "conversations": []}),
    ));
    rows.push(quiet(
        Carol,
        json!({"type": "my_groups"}),
        json!({"type": "groups", "groups": []}),
    ));
    rows.push(quiet(
        Erin,
        json!({"type": "my_groups"}),
        json!({"type": "groups", "groups": []}),
    ));
    rows.push(quiet(
        Carol,
        json!({"type": "presence", "users": [w.alice, w.bob]}),
        json!({"type": "presence", "users": []}),
    ));
    rows.push(quiet(
        Erin,
        json!({"type": "presence", "users": [w.bob]}),
        json!({"type": "presence", "users": []}),
    ));
    rows
}

/// A raw JSON WebSocket client that keeps every frame it reads.
struct Ws {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    /// Every text frame read, replies and pushes alike.
    seen: Vec<String>,
}

impl Ws {
    /// Connects and says `hello`, which must come first.
    async fn open(url: &str) -> Ws {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut ws = Ws {
            socket,
            next_id: 1,
            seen: Vec::new(),
        };
        let hello = ws
            .request(json!({"type": "hello", "versions": [1], "client": "authorization-test"}))
            .await;
        assert_eq!(hello["type"], "reply", "hello: {hello}");
        ws
    }

    /// Connects and logs in as `username` on the device `ws`.
    async fn login(url: &str, username: &str) -> Ws {
        let mut ws = Ws::open(url).await;
        let login = ws
            .request(json!({"type": "login", "username": username, "password": PASSWORD, "device": {"id": "ws"}}))
            .await;
        assert_eq!(login["type"], "reply", "{username}'s login: {login}");
        ws
    }

    /// Sends `request` with a fresh id and returns the frame answering it, a `reply` or
    /// an `error`.
    async fn request(&mut self, mut request: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = id.into();
        self.socket
            .send(WsMessage::text(request.to_string()))
            .await
            .unwrap();
        self.read_until(|frame| frame["id"] == id).await
    }

    /// Reads frames until one matches; every frame read is kept.
    async fn read_until(&mut self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("the server answers in time")
                .expect("the socket stays open")
                .expect("the socket reads");
            let WsMessage::Text(text) = frame else {
                continue;
            };
            self.seen.push(text.to_string());
            let frame: Value = serde_json::from_str(&text).unwrap();
            if done(&frame) {
                return frame;
            }
        }
    }

    /// Reads what was pushed until nothing more comes for a moment.
    async fn drain(&mut self) {
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(Duration::from_millis(300), self.socket.next()).await
        {
            if let WsMessage::Text(text) = frame {
                self.seen.push(text.to_string());
            }
        }
    }
}

/// The HTTP form of a protocol request: the route that runs its `type`, with the path
/// and query parameters taken out of its fields and the rest as the JSON body.
fn http_form(request: &Value) -> (Method, String, Option<Value>) {
    let kind = request["type"].as_str().unwrap();
    let route = ROUTES
        .iter()
        .find(|r| matches!(r.handler, Handler::Command(k) if k == kind))
        .unwrap_or_else(|| panic!("no HTTP route runs {kind}"));
    let mut fields = request.as_object().unwrap().clone();
    fields.remove("type");
    let mut path = route.path.to_owned();
    let mut query = Vec::new();
    for (name, _) in route.params {
        let Some(value) = fields.remove(*name) else {
            continue;
        };
        let value = match value {
            Value::String(s) => s,
            Value::Array(items) => items
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        let slot = format!("{{{name}}}");
        if path.contains(&slot) {
            path = path.replace(&slot, &value);
        } else {
            query.push(format!("{name}={value}"));
        }
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    assert!(
        route.body || fields.is_empty(),
        "{kind}: {fields:?} has no place on {} {}",
        route.method,
        route.path
    );
    let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
    (method, path, route.body.then_some(Value::Object(fields)))
}

/// Everything the matrix needs to name.
struct World {
    alice: u64,
    bob: u64,
    carol: u64,
    dave: u64,
    erin: u64,
    frank: u64,
    group: u64,
    /// Alice and bob's chat, and the seq of alice's message in it.
    direct: String,
    direct_seq: u64,
    /// The seq of alice's message in the group, sent after erin left.
    group_seq: u64,
    /// Alice and dave's chat, and the seq of dave's message from before the block.
    blocked: String,
    blocked_seq: u64,
    /// HTTP tokens, by actor.
    tokens: Vec<(Actor, String)>,
    /// Alice's token for her phone, which bob tries to revoke by name.
    alice_phone: String,
}

impl World {
    fn token(&self, actor: Actor) -> &str {
        &self
            .tokens
            .iter()
            .find(|(a, _)| *a == actor)
            .expect("every actor has a token")
            .1
    }
}

fn direct_id(a: u64, b: u64) -> String {
    format!("d:{}:{}", a.min(b), a.max(b))
}

async fn ok(api: &Api, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let answer = api.call(method.clone(), path, Some(token), body).await;
    assert!(
        answer.status.is_success(),
        "setup: {method} {path}: {answer:?}"
    );
    answer.body
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The whole matrix, each row over a WebSocket (on the actor's own open connection) and
/// over HTTP (with the actor's token), answers exactly as `docs/protocol.md` says: the
/// error code of each refusal (and its HTTP status), or a reply that shows nothing. The
/// outsiders' connections, open throughout, never receive a private message, no error
/// quotes one, and nothing the refused requests tried changed anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_the_documented_one_over_websocket_and_http() {
    let server = start().await;
    let api = server.api();
    let url = server.ws_url();

    // An expired token: a second node on the same storage, whose tokens live two
    // seconds, logs alice in; the server under test then sees the stored expiry pass.
    // Done first, so the wait overlaps the rest of the setup.
    let (alice, alice_token) = api.user("alice").await;
    let short_lived = Engine::builder()
        .storage(Arc::clone(server.engine.storage()))
        .config(test_config().with_token_ttl(Duration::from_secs(2)))
        .start()
        .await
        .unwrap();
    let login: Request = serde_json::from_value(json!({"type": "login", "username": "alice", "password": PASSWORD, "device": {"id": "expiring"}})).unwrap();
    let peer = PeerInfo {
        addr: None,
        transport: "test",
    };
    let Ok(Reply::Session(reply::Session {
        token: Some(expired_token),
        device,
        ..
    })) = short_lived.execute(&peer, None, login).await
    else {
        panic!("the short-lived login failed");
    };
    let expires_at = device.expires_at.0 as u64;
    ok(&api, Method::GET, "/v1/friends", &expired_token, None).await;

    // The people.
    let (bob, bob_token) = api.user("bob").await;
    let (carol, carol_token) = api.user("carol").await;
    let (dave, dave_token) = api.user("dave").await;
    let (erin, erin_token) = api.user("erin").await;
    let (frank, frank_token) = api.user("frank").await;
    for (id, token) in [
        (bob, &bob_token),
        (dave, &dave_token),
        (erin, &erin_token),
        (frank, &frank_token),
    ] {
        api.befriend((alice, &alice_token), (id, token)).await;
    }
    api.befriend((erin, &erin_token), (dave, &dave_token)).await;
    let created = ok(
        &api,
        Method::POST,
        "/v1/groups",
        &alice_token,
        Some(json!({"name": "team", "members": [bob, erin, frank]})),
    )
    .await;
    let group = created["group"]["id"].as_u64().unwrap();
    ok(
        &api,
        Method::POST,
        &format!("/v1/groups/{group}/leave"),
        &erin_token,
        None,
    )
    .await;
    let blocked = direct_id(alice, dave);
    let sent = ok(
        &api,
        Method::POST,
        &format!("/v1/conversations/{blocked}/messages"),
        &dave_token,
        Some(json!({"client_id": "dave-1", "body": text("hi alice, it's dave")})),
    )
    .await;
    let blocked_seq = sent["seq"].as_u64().unwrap();
    ok(
        &api,
        Method::PUT,
        &format!("/v1/blocked/{dave}"),
        &alice_token,
        None,
    )
    .await;

    // A revoked token, whose device was also online: its session is kicked.
    let revoked_token = api
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(
                json!({"username": "alice", "password": PASSWORD, "device": {"id": "old-laptop"}}),
            ),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut old_laptop = Ws::open(&url).await;
    let resumed = old_laptop
        .request(json!({"type": "resume", "token": revoked_token}))
        .await;
    assert_eq!(resumed["type"], "reply", "{resumed}");
    ok(
        &api,
        Method::DELETE,
        "/v1/devices/old-laptop",
        &alice_token,
        None,
    )
    .await;
    let kicked = old_laptop
        .read_until(|f| f["event"]["type"] == "kicked")
        .await;
    assert_eq!(kicked["event"]["code"], "revoked", "{kicked}");

    // Alice's phone, which bob will name.
    let alice_phone = api
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(
                json!({"username": "alice", "password": PASSWORD, "device": {"id": "alice-phone"}}),
            ),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Everyone's connection is open before the private messages are sent. The two
    // dead tokens are refused at `resume`, and their connections stay logged out.
    let mut sockets = Vec::new();
    for (actor, name) in [
        (Actor::Alice, "alice"),
        (Actor::Bob, "bob"),
        (Actor::Carol, "carol"),
        (Actor::Dave, "dave"),
        (Actor::Erin, "erin"),
    ] {
        sockets.push((actor, Ws::login(&url, name).await));
    }
    let wait = Duration::from_millis(expires_at.saturating_sub(now_ms()) + 50);
    tokio::time::sleep(wait).await;
    for (actor, token) in [
        (Actor::RevokedToken, &revoked_token),
        (Actor::ExpiredToken, &expired_token),
    ] {
        let mut ws = Ws::open(&url).await;
        let resumed = ws.request(json!({"type": "resume", "token": token})).await;
        assert_eq!(
            resumed["error"]["code"], "unauthorized",
            "{actor:?}: resume answered {resumed}"
        );
        sockets.push((actor, ws));
    }

    let direct = direct_id(alice, bob);
    let sent = ok(
        &api,
        Method::POST,
        &format!("/v1/conversations/{direct}/messages"),
        &alice_token,
        Some(json!({"client_id": "alice-1", "body": text(DIRECT_MARKER)})),
    )
    .await;
    let direct_seq = sent["seq"].as_u64().unwrap();
    let sent = ok(
        &api,
        Method::POST,
        &format!("/v1/conversations/g:{group}/messages"),
        &alice_token,
        Some(json!({"client_id": "alice-2", "body": text(GROUP_MARKER)})),
    )
    .await;
    let group_seq = sent["seq"].as_u64().unwrap();

    let world = World {
        alice,
        bob,
        carol,
        dave,
        erin,
        frank,
        group,
        direct,
        direct_seq,
        group_seq,
        blocked,
        blocked_seq,
        tokens: vec![
            (Actor::Alice, alice_token.clone()),
            (Actor::Bob, bob_token.clone()),
            (Actor::Carol, carol_token),
            (Actor::Dave, dave_token),
            (Actor::Erin, erin_token),
            (Actor::RevokedToken, revoked_token),
            (Actor::ExpiredToken, expired_token),
        ],
        alice_phone,
    };

    // The dead tokens are tried with every request that needs a login.
    let every_command: BTreeSet<&str> = ROUTES
        .iter()
        .filter_map(|r| match r.handler {
            Handler::Command(kind) if r.auth => Some(kind),
            _ => None,
        })
        .collect();
    let dead_token_requests = every_authenticated_request(&world);
    let tried: BTreeSet<&str> = dead_token_requests
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    let untried: Vec<_> = every_command.difference(&tried).collect();
    assert!(
        untried.is_empty(),
        "not tried with a dead token: {untried:?}"
    );

    // The matrix. Failures are gathered, so one run shows every row that is wrong.
    let rows = rows(&world);
    let mut failures = Vec::new();
    let mut runs = 0;
    for row in &rows {
        let kind = row.request["type"].as_str().unwrap();
        let ws = &mut sockets
            .iter_mut()
            .find(|(a, _)| *a == row.actor)
            .expect("every actor has a socket")
            .1;
        let frame = ws.request(row.request.clone()).await;
        let (method, path, body) = http_form(&row.request);
        let answer = api
            .call(method.clone(), &path, Some(world.token(row.actor)), body)
            .await;
        runs += 2;

        let name =
            |transport: &str| format!("{:?} {kind} over {transport}: {}", row.actor, row.request);
        match &row.expect {
            Expect::Error(code) => {
                if frame["type"] != "error" || frame["error"]["code"] != *code {
                    failures.push(format!(
                        "{}\n    expected {code}, got {frame}",
                        name("WebSocket")
                    ));
                }
                if answer.status != documented_status(code) || answer.code() != *code {
                    failures.push(format!(
                        "{}\n    expected {code} ({}), got {} {}",
                        name(&format!("HTTP {method} {path}")),
                        documented_status(code),
                        answer.status,
                        answer.body
                    ));
                }
            }
            Expect::Reply(reply) => {
                if frame["reply"] != *reply {
                    failures.push(format!(
                        "{}\n    expected {reply}, got {frame}",
                        name("WebSocket")
                    ));
                }
                if answer.status != StatusCode::OK || answer.body != *reply {
                    failures.push(format!(
                        "{}\n    expected 200 {reply}, got {} {}",
                        name(&format!("HTTP {method} {path}")),
                        answer.status,
                        answer.body
                    ));
                }
            }
        }
        // No refusal quotes a private message, whoever asked; no answer to an outsider
        // carries one at all.
        let bodies = [frame.to_string(), answer.body.to_string()];
        let quoted = matches!(row.expect, Expect::Error(_)) || row.actor.is_outsider();
        for marker in MARKERS {
            if quoted && bodies.iter().any(|b| b.contains(marker)) {
                failures.push(format!(
                    "{} answered with {marker}: {} / {}",
                    name("either transport"),
                    bodies[0],
                    bodies[1]
                ));
            }
        }
    }

    // What was pushed meanwhile: the members got the private messages (the check can
    // see them), the outsiders never did.
    for (_, ws) in &mut sockets {
        ws.drain().await;
    }
    for (actor, ws) in &sockets {
        let carried = |marker: &str| ws.seen.iter().any(|f| f.contains(marker));
        match actor {
            Actor::Alice | Actor::Bob => {
                for marker in MARKERS {
                    assert!(carried(marker), "{actor:?} never got {marker} pushed");
                }
            }
            _ => {
                for marker in MARKERS {
                    if carried(marker) {
                        let frame = ws.seen.iter().find(|f| f.contains(marker));
                        failures.push(format!(
                            "{actor:?}'s connection received {marker}: {frame:?}"
                        ));
                    }
                }
            }
        }
    }

    // Nothing the refused requests tried took effect: the group, its members, alice's
    // messages and alice's phone are as they were.
    let info = ok(
        &api,
        Method::GET,
        &format!("/v1/groups/{group}"),
        &alice_token,
        None,
    )
    .await;
    assert_eq!(info["group"]["name"], "team", "{info}");
    assert_eq!(info["group"]["owner"], alice, "{info}");
    let members = ok(
        &api,
        Method::GET,
        &format!("/v1/groups/{group}/members"),
        &alice_token,
        None,
    )
    .await;
    let roles: Vec<(u64, &str)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user"].as_u64().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [(alice, "owner"), (bob, "member"), (frank, "member")],
        "{members}"
    );
    for (conversation, seq, marker) in [
        (&world.direct, direct_seq, DIRECT_MARKER),
        (&format!("g:{group}"), group_seq, GROUP_MARKER),
    ] {
        let history = ok(
            &api,
            Method::GET,
            &format!("/v1/conversations/{conversation}/messages?after=0"),
            &bob_token,
            None,
        )
        .await;
        let messages = history["messages"].as_array().unwrap();
        let last = messages.last().unwrap();
        assert_eq!(
            (last["seq"].as_u64(), &last["body"]),
            (Some(seq), &text(marker)),
            "{conversation} changed: {history}"
        );
    }
    let devices = ok(&api, Method::GET, "/v1/devices", &world.alice_phone, None).await;
    assert!(
        devices.to_string().contains("alice-phone"),
        "alice's phone was revoked: {devices}"
    );

    assert!(
        failures.is_empty(),
        "{} of {runs} runs ({} rows × WebSocket and HTTP) differ from docs/protocol.md:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    println!(
        "{} rows × 2 transports = {runs} runs, all as documented",
        rows.len()
    );
}
