//! Every refusal has its typed error, nothing panics, and nothing refused is stored.

mod common;

use im_core::protocol::reply;
use im_core::protocol::request;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use im_core::client::ClientError;
use im_core::model::{Body, ConversationId, GroupId, Role, Seq, UserId};
use im_core::protocol::{ErrorCode, Event, HistoryQuery, Reply, Request, ServerFrame};
use im_transport_tcp::{TcpConfig, TcpConnection, connect};

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    match r {
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("not a server error: {e:?}")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

async fn history_len(u: &User, c: ConversationId) -> usize {
    u.client
        .history(c, HistoryQuery::default())
        .await
        .unwrap()
        .0
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_unauthorized_and_say_the_same() {
    let server = start(test_config()).await;
    let alice = server.user("alice").await;
    let (c, _e) = server.connect().await;
    let wrong = c.login("alice", "not the password", "x").await.unwrap_err();
    let unknown = c.login("nobody", PASSWORD, "x").await.unwrap_err();
    let malformed = c.login("NO SUCH USER!", PASSWORD, "x").await.unwrap_err();
    for e in [&wrong, &unknown, &malformed] {
        assert_eq!(e.code(), Some(ErrorCode::Unauthorized), "{e:?}");
    }
    // Same message: nothing tells which usernames exist.
    assert_eq!(wrong.to_string(), unknown.to_string());
    // Registration errors.
    assert_eq!(
        code(c.register("alice", PASSWORD, "Alice 2").await),
        ErrorCode::Conflict
    );
    assert_eq!(
        code(c.register("ALICE", PASSWORD, "Alice 3").await),
        ErrorCode::Conflict
    );
    assert_eq!(
        code(c.register("a", PASSWORD, "A").await),
        ErrorCode::Invalid
    );
    assert_eq!(
        code(c.register("dave", "short", "Dave").await),
        ErrorCode::Invalid
    );
    assert_eq!(
        code(c.register("dave", PASSWORD, "  ").await),
        ErrorCode::Invalid
    );
    // Not logged in.
    let ab = ConversationId::direct(alice.id, UserId(999));
    assert_eq!(code(c.send_text(ab, "hi").await), ErrorCode::Unauthorized);
    assert_eq!(code(c.conversations().await), ErrorCode::Unauthorized);
    assert_eq!(code(c.resume("garbage").await), ErrorCode::Unauthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_replaced_and_expired_tokens_are_refused() {
    let server = start(test_config()).await;
    let alice = server.user("alice").await;
    let mut alice2 = server.device("alice", "alice-2").await;
    let token2 = alice2.session.token.clone().unwrap();

    // A tampered token (same selector, other secret) fails.
    let (c, _e) = server.connect().await;
    let mut forged: Vec<&str> = token2.splitn(3, '.').collect();
    let other_secret = "A".repeat(43);
    forged[1] = &other_secret;
    assert_eq!(
        code(c.resume(&forged.join(".")).await),
        ErrorCode::Unauthorized
    );

    // Revoking alice-2 from alice-1 kicks it and kills its token.
    alice
        .client
        .call(request::RevokeDevice {
            device: alice2.session.device.id.clone(),
        })
        .await
        .unwrap();
    match alice2.event().await {
        Event::Kicked { code, reason } => {
            assert_eq!(code, im_core::protocol::KickCode::Revoked);
            assert!(reason.contains("logged out"), "{reason}");
        }
        other => panic!("expected kicked, got {other:?}"),
    }
    assert!(
        alice2.events.next().await.is_none(),
        "the kicked session is closed"
    );
    assert_eq!(code(c.resume(&token2).await), ErrorCode::Unauthorized);
    let again = alice
        .client
        .call(request::RevokeDevice {
            device: alice2.session.device.id.clone(),
        })
        .await;
    assert_eq!(code(again), ErrorCode::NotFound);

    // Logging in again from the same device replaces the old session.
    let mut first = server.device("alice", "tablet").await;
    let _second = server.device("alice", "tablet").await;
    assert!(matches!(first.event().await, Event::Kicked { .. }));
    assert_eq!(
        code(c.resume(first.session.token.as_ref().unwrap()).await),
        ErrorCode::Unauthorized,
        "the replaced token is gone"
    );

    // Changing the password logs out every other device and the old password.
    let mut phone = server.device("alice", "phone").await;
    let phone_token = phone.session.token.clone().unwrap();
    let change = |old: &str, new: &str| request::ChangePassword {
        old_password: old.into(),
        new_password: new.into(),
    };
    assert_eq!(
        code(
            alice
                .client
                .call(change("wrong password", "new password 1"))
                .await
        ),
        ErrorCode::Forbidden
    );
    alice
        .client
        .call(change(PASSWORD, "new password 1"))
        .await
        .unwrap();
    assert!(matches!(phone.event().await, Event::Kicked { .. }));
    assert_eq!(code(c.resume(&phone_token).await), ErrorCode::Unauthorized);
    assert_eq!(
        code(c.login("alice", PASSWORD, "x").await),
        ErrorCode::Unauthorized
    );
    c.login("alice", "new password 1", "x").await.unwrap();
    // The device that changed it is still logged in.
    alice.client.conversations().await.unwrap();

    // Expiry: a server whose tokens live 300 ms.
    let short = start(test_config().with_token_ttl(Duration::from_millis(300))).await;
    let bob = short.user("bob").await;
    let token = bob.session.token.clone().unwrap();
    let (c, _e) = short.connect().await;
    c.resume(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (c, _e) = short.connect().await;
    assert_eq!(code(c.resume(&token).await), ErrorCode::Unauthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_needs_friendship_membership_and_no_block() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let dave = server.user("dave").await;

    // Not friends: refused and not stored.
    let ad = alice.direct(&dave);
    assert_eq!(
        code(alice.client.send_text(ad, "spam").await),
        ErrorCode::Forbidden
    );
    assert_eq!(history_len(&alice, ad).await, 0);
    assert!(dave.client.conversations().await.unwrap().is_empty());
    // A direct conversation with a user who does not exist.
    let ghost = ConversationId::direct(alice.id, UserId(4242));
    assert_eq!(
        code(alice.client.send_text(ghost, "boo").await),
        ErrorCode::NotFound
    );

    // Blocked either way: refused.
    befriend(&mut alice, &mut bob).await;
    let ab = alice.direct(&bob);
    alice
        .client
        .send_text(ab, "before the block")
        .await
        .unwrap();
    bob.client
        .call(request::Block { user: alice.id })
        .await
        .unwrap();
    assert_eq!(
        code(alice.client.send_text(ab, "blocked").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(bob.client.send_text(ab, "blocked").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(alice.client.request_friend(bob.id, "again?").await),
        ErrorCode::Forbidden
    );
    assert_eq!(history_len(&alice, ab).await, 1);
    bob.client
        .call(request::Unblock { user: alice.id })
        .await
        .unwrap();
    alice.client.send_text(ab, "after the block").await.unwrap();

    // Bodies: system messages, empty and oversized text are refused.
    let system = Body::System {
        event: im_core::model::SystemEvent::MemberLeft { user: bob.id },
    };
    assert_eq!(
        code(alice.client.send(ab, "s1", system).await),
        ErrorCode::Invalid
    );
    assert_eq!(
        code(alice.client.send_text(ab, "   ").await),
        ErrorCode::Invalid
    );
    let huge = "x".repeat(20_000);
    assert_eq!(
        code(alice.client.send_text(ab, &huge).await),
        ErrorCode::TooLarge
    );
    let empty_id = Body::Text { text: "x".into() };
    assert_eq!(
        code(alice.client.send(ab, "", empty_id).await),
        ErrorCode::Invalid
    );
    assert_eq!(history_len(&alice, ab).await, 2);

    // A group one has left.
    let group = alice.client.create_group("g", &[bob.id]).await.unwrap();
    let g = ConversationId::Group(group.id);
    bob.client
        .call(request::LeaveGroup { group: group.id })
        .await
        .unwrap();
    assert_eq!(
        code(bob.client.send_text(g, "still here?").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(bob.client.history(g, HistoryQuery::default()).await),
        ErrorCode::Forbidden
    );
    // Two system messages: created, left. Bob's attempt is not among them.
    assert_eq!(history_len(&alice, g).await, 2);
    // A group that does not exist.
    let nowhere = ConversationId::Group(GroupId(999));
    assert_eq!(
        code(alice.client.send_text(nowhere, "hi").await),
        ErrorCode::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_people_s_conversations_are_not_readable() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let eve = server.user("eve").await;
    befriend(&mut alice, &mut bob).await;
    let ab = alice.direct(&bob);
    alice.client.send_text(ab, "private").await.unwrap();
    let group = alice
        .client
        .create_group("secret", &[bob.id])
        .await
        .unwrap();
    let g = ConversationId::Group(group.id);

    assert_eq!(
        code(eve.client.history(ab, HistoryQuery::default()).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(eve.client.history(g, HistoryQuery::default()).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(eve.client.mark_read(ab, Seq(1)).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(eve.client.send_text(ab, "injected").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            eve.client
                .call(request::GroupInfo { group: group.id })
                .await
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            eve.client
                .call(request::JoinGroup { group: group.id })
                .await
        ),
        ErrorCode::Forbidden,
        "invite-only"
    );
    assert!(eve.client.conversations().await.unwrap().is_empty());
    assert_eq!(history_len(&alice, ab).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_roles_are_enforced() {
    let server = start(test_config()).await;
    let mut owner = server.user("owner").await;
    let mut admin = server.user("admin").await;
    let mut member = server.user("member").await;
    let mut other = server.user("other").await;
    for u in [&mut admin, &mut member, &mut other] {
        befriend(&mut owner, u).await;
    }
    let group = owner
        .client
        .create_group("roles", &[admin.id, member.id, other.id])
        .await
        .unwrap();
    let gid = group.id;
    let kick = |user| request::KickMember { group: gid, user };

    // Only the owner appoints admins.
    let promote = request::SetRole {
        group: gid,
        user: admin.id,
        role: Role::Admin,
    };
    assert_eq!(
        code(member.client.call(promote.clone()).await),
        ErrorCode::Forbidden
    );
    owner.client.call(promote).await.unwrap();

    // A plain member cannot kick; an admin can kick members but not the owner.
    assert_eq!(
        code(member.client.call(kick(other.id)).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(admin.client.call(kick(owner.id)).await),
        ErrorCode::Forbidden
    );
    admin.client.call(kick(other.id)).await.unwrap();
    let members = admin.client.group_members(gid).await.unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m.user != other.id));
    assert_eq!(
        code(other.client.group_members(gid).await),
        ErrorCode::Forbidden,
        "a removed member no longer sees the member list"
    );
    // The kicked member was told (the system message reaches them too).
    loop {
        let m = other.message().await;
        if let Body::System {
            event: im_core::model::SystemEvent::MemberKicked { user, .. },
        } = m.body
        {
            assert_eq!(user, other.id);
            break;
        }
    }
    assert_eq!(
        code(
            other
                .client
                .send_text(ConversationId::Group(gid), "hey")
                .await
        ),
        ErrorCode::Forbidden
    );

    // Renames need admin; the owner cannot leave; transfer hands over ownership.
    let rename = request::RenameGroup {
        group: gid,
        name: "renamed".into(),
    };
    assert_eq!(
        code(member.client.call(rename.clone()).await),
        ErrorCode::Forbidden
    );
    let renamed = admin.client.call(rename).await.unwrap();
    assert_eq!(renamed.group.name, "renamed");
    assert_eq!(
        code(owner.client.call(request::LeaveGroup { group: gid }).await),
        ErrorCode::Conflict
    );
    let transfer = request::TransferGroup {
        group: gid,
        to: member.id,
    };
    assert_eq!(
        code(admin.client.call(transfer.clone()).await),
        ErrorCode::Forbidden
    );
    let g = owner.client.call(transfer).await.unwrap();
    assert_eq!(g.group.owner, member.id);
    let members = owner.client.group_members(gid).await.unwrap();
    let role = |u: UserId| members.iter().find(|m| m.user == u).unwrap().role;
    assert_eq!(
        (role(member.id), role(owner.id)),
        (Role::Owner, Role::Admin)
    );
    owner
        .client
        .call(request::LeaveGroup { group: gid })
        .await
        .unwrap();
    match member
        .client
        .request(Request::MyGroups(request::MyGroups {}))
        .await
        .unwrap()
    {
        Reply::Groups(reply::Groups { groups }) => assert_eq!(groups.len(), 1),
        other => panic!("{other:?}"),
    }
}

async fn raw(server: &Server, tcp: &TcpConfig) -> TcpConnection {
    connect(server.addr, tcp).await.unwrap()
}

async fn exchange(conn: &mut TcpConnection, frame: &'static [u8]) -> ServerFrame {
    conn.send(Bytes::from_static(frame)).await.unwrap();
    let bytes = tokio::time::timeout(WAIT, conn.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn error_of(frame: ServerFrame) -> (Option<u64>, ErrorCode) {
    match frame {
        ServerFrame::Error { id, error } => (id, error.code),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_get_typed_errors() {
    let server = start(test_config().with_max_frame_bytes(4096)).await;
    let mut c = raw(&server, &TcpConfig::default()).await;

    // Before hello, only hello.
    assert_eq!(
        error_of(exchange(&mut c, br#"{"id":1,"type":"ping"}"#).await),
        (Some(1), ErrorCode::Invalid)
    );
    // A version this server does not speak.
    let e = exchange(&mut c, br#"{"id":2,"type":"hello","versions":[99]}"#).await;
    assert_eq!(error_of(e), (Some(2), ErrorCode::UnsupportedVersion));
    let hello = exchange(&mut c, br#"{"id":3,"type":"hello","versions":[1,99]}"#).await;
    assert!(matches!(
        hello,
        ServerFrame::Reply {
            id: 3,
            reply: Reply::Hello(reply::Hello { version: 1, .. })
        }
    ));

    // Not JSON at all: an error without an id. Unknown command, bad field: with the id.
    assert_eq!(
        error_of(exchange(&mut c, b"\x00\xffnot json").await),
        (None, ErrorCode::Invalid)
    );
    assert_eq!(
        error_of(exchange(&mut c, br#"{"id":4,"type":"fly"}"#).await),
        (Some(4), ErrorCode::Invalid)
    );
    let bad_conv = br#"{"id":5,"type":"send","conversation":"d:2:1","client_id":"a","body":{"type":"text","text":"x"}}"#;
    assert_eq!(
        error_of(exchange(&mut c, bad_conv).await),
        (Some(5), ErrorCode::Invalid)
    );
    let bad_device =
        br#"{"id":6,"type":"login","username":"a","password":"b","device":{"id":"has space"}}"#;
    assert_eq!(
        error_of(exchange(&mut c, bad_device).await),
        (Some(6), ErrorCode::Invalid)
    );
    // Still alive after all that.
    let pong = exchange(&mut c, br#"{"id":7,"type":"ping"}"#).await;
    assert!(matches!(
        pong,
        ServerFrame::Reply {
            id: 7,
            reply: Reply::Pong(reply::Pong {})
        }
    ));

    // A frame over the limit: too_large, then the server closes the connection.
    let big = TcpConfig::default().with_max_frame_bytes(1 << 20);
    let mut c = raw(&server, &big).await;
    exchange(&mut c, br#"{"id":1,"type":"hello","versions":[1]}"#).await;
    c.send(Bytes::from(vec![b' '; 10_000])).await.unwrap();
    let frame = tokio::time::timeout(WAIT, c.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let frame: ServerFrame = serde_json::from_slice(&frame).unwrap();
    assert_eq!(error_of(frame), (None, ErrorCode::TooLarge));
    let end = tokio::time::timeout(WAIT, c.next()).await.unwrap();
    assert!(end.is_none() || end.unwrap().is_err(), "connection closed");

    // The server is fine.
    let (client, _) = server.connect().await;
    client.register("after", PASSWORD, "After").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_replies_are_paged_or_refused_never_fatal() {
    // 8 KiB frames, 3 KiB bodies: a page of ten messages cannot fit in one frame.
    let config = test_config()
        .with_max_frame_bytes(8 * 1024)
        .with_max_body_bytes(3 * 1024);
    let server = start(config).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let ab = alice.direct(&bob);
    for i in 0..10 {
        let text = format!("{i}{}", "x".repeat(3000));
        alice.client.send_text(ab, &text).await.unwrap();
    }

    // Catching up: each page holds what fits, `more` says there is more, nothing is lost.
    let mut after = Seq(0);
    let mut pages = 0;
    let mut seen = Vec::new();
    loop {
        let query = HistoryQuery {
            after: Some(after),
            before: None,
            limit: Some(10),
        };
        let (page, more) = bob.client.history(ab, query).await.unwrap();
        assert!(
            !page.is_empty() && page.len() < 10,
            "page of {}",
            page.len()
        );
        pages += 1;
        after = page.last().unwrap().seq;
        seen.extend(page.iter().map(|m| m.seq.0));
        if !more {
            break;
        }
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    assert!(pages >= 4, "{pages} pages");
    // Scrolling back keeps the newest messages that fit.
    let (page, more) = bob
        .client
        .history(ab, HistoryQuery::default())
        .await
        .unwrap();
    assert!(more);
    assert_eq!(page.last().unwrap().seq, Seq(10));

    // A reply that cannot be cut into pages is refused with too_large; the connection lives.
    let many: Vec<UserId> = (0..200).map(|_| alice.id).chain([bob.id]).collect();
    for i in 0..60 {
        let name = format!("filler{i:02}");
        alice
            .client
            .register(&name, PASSWORD, &"F".repeat(64))
            .await
            .unwrap();
    }
    let everyone: Vec<UserId> = (1..=70).map(UserId).collect();
    let r = alice
        .client
        .request(Request::Users(request::Users { users: everyone }))
        .await;
    assert_eq!(code(r), ErrorCode::TooLarge);
    match alice
        .client
        .request(Request::Users(request::Users { users: many }))
        .await
        .unwrap()
    {
        Reply::Users(reply::Users { users }) => assert_eq!(users.len(), 2),
        other => panic!("{other:?}"),
    }

    // Group members come in pages.
    let mut ids = vec![bob.id];
    for i in 0..4 {
        let mut u = server.user(&format!("member{i}")).await;
        befriend(&mut alice, &mut u).await;
        ids.push(u.id);
    }
    let group = alice.client.create_group("paged", &ids).await.unwrap();
    let page = |after| {
        Request::GroupMembers(request::GroupMembers {
            group: group.id,
            after,
            limit: Some(2),
        })
    };
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        match alice.client.request(page(after)).await.unwrap() {
            Reply::Members(reply::Members { members, more }) => {
                assert!(members.len() <= 2);
                after = members.last().map(|m| m.user);
                listed.extend(members.iter().map(|m| m.user));
                if !more {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    let mut want = ids.clone();
    want.push(alice.id);
    want.sort();
    assert_eq!(listed, want);
}

fn frame(id: u64, request: Request) -> Bytes {
    serde_json::to_vec(&im_core::protocol::ClientFrame { id, request })
        .unwrap()
        .into()
}

/// A revoked session whose socket is stalled (so its writer is still flushing) must not
/// act any more: nothing it sends after the revocation is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_cannot_act_while_its_socket_drains() {
    use im_core::model::{DeviceId, Platform};
    use im_core::protocol::DeviceInfo;
    let config = test_config()
        .with_direct_policy(im_core::engine::DirectPolicy::Anyone)
        .with_write_timeout(Duration::from_secs(8));
    let server = start_with(config, TcpConfig::default().with_send_buffer_bytes(4096)).await;
    let bob = server.user("bob").await;
    let owner = server.user("alice").await;
    let conv = ConversationId::direct(owner.id, bob.id);
    for i in 0..40 {
        let body = Body::Text {
            text: "x".repeat(15_000),
        };
        owner
            .client
            .send(conv, &format!("big{i}"), body)
            .await
            .unwrap();
    }
    // The thief's connection: logs in as alice on device "stolen", then stops reading
    // while asking for large history pages, so the server's writer stalls.
    let small = TcpConfig::default().with_recv_buffer_bytes(4096);
    let mut thief = connect(server.addr, &small).await.unwrap();
    let hello = Request::Hello(request::Hello {
        versions: vec![1],
        client: "raw".into(),
        codec: None,
    });
    thief.send(frame(0, hello)).await.unwrap();
    thief.next().await.unwrap().unwrap();
    let login = Request::Login(request::Login {
        username: "alice".into(),
        password: PASSWORD.into(),
        device: DeviceInfo {
            id: DeviceId::new("stolen").unwrap(),
            name: String::new(),
            platform: Platform::Other,
        },
        proof: None,
    });
    thief.send(frame(1, login)).await.unwrap();
    thief.next().await.unwrap().unwrap();
    for i in 0..30 {
        let page = Request::History(request::History {
            conversation: conv,
            query: HistoryQuery {
                after: Some(Seq(0)),
                before: None,
                limit: Some(4),
            },
        });
        thief.send(frame(10 + i, page)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    owner
        .client
        .call(request::RevokeDevice {
            device: DeviceId::new("stolen").unwrap(),
        })
        .await
        .unwrap();
    for i in 0..5 {
        let send = Request::Send(request::Send {
            conversation: conv,
            client_id: format!("after-revoke-{i}"),
            body: Body::Text {
                text: "sent after revoke".into(),
            },
            reply_to: None,
            mentions: Vec::new(),
        });
        thief.send(frame(100 + i, send)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let query = HistoryQuery {
        after: Some(Seq(40)),
        before: None,
        limit: Some(50),
    };
    let (after, _) = owner.client.history(conv, query).await.unwrap();
    assert!(after.is_empty(), "stored after revocation: {after:?}");
}

/// Text that JSON escapes (control characters) is measured as encoded, so no push or
/// history page can outgrow a frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_measured_as_encoded() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let ab = alice.direct(&bob);
    // 3,000 bytes raw, 18,000 escaped (\u0001): over the 16 KiB default.
    let sneaky = "\u{1}".repeat(3000);
    assert_eq!(
        code(alice.client.send_text(ab, &sneaky).await),
        ErrorCode::TooLarge
    );
    assert_eq!(history_len(&alice, ab).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_transfers_at_once_leave_one_owner() {
    let server = start(test_config()).await;
    let mut owner = server.user("owner").await;
    let laptop = server.device("owner", "owner-2").await;
    let mut b = server.user("bea").await;
    let mut c = server.user("cai").await;
    befriend(&mut owner, &mut b).await;
    befriend(&mut owner, &mut c).await;
    for round in 0..8 {
        let group = owner
            .client
            .create_group(&format!("race {round}"), &[b.id, c.id])
            .await
            .unwrap();
        // Both devices see the group (and warm the membership view) before racing.
        owner.client.group_members(group.id).await.unwrap();
        laptop.client.group_members(group.id).await.unwrap();
        let to = |user| request::TransferGroup {
            group: group.id,
            to: user,
        };
        let (first, second) =
            tokio::join!(owner.client.call(to(b.id)), laptop.client.call(to(c.id)),);
        let applied = [&first, &second].iter().filter(|r| r.is_ok()).count();
        assert_eq!(applied, 1, "round {round}: {first:?} / {second:?}");
        for refused in [first, second].into_iter().filter_map(Result::err) {
            assert!(
                matches!(
                    refused.code(),
                    Some(ErrorCode::Conflict | ErrorCode::Forbidden)
                ),
                "{refused:?}"
            );
        }
        let members = owner.client.group_members(group.id).await.unwrap();
        let owners = members.iter().filter(|m| m.role == Role::Owner).count();
        assert_eq!(owners, 1, "round {round}: {members:?}");
    }
}
