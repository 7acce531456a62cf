//! Two users or two devices sending state-changing requests at the same moment, through
//! the engine: the outcome is the documented one whichever is handled first. (Storage's
//! side of each race is a conformance scenario, run on every backend.)

use im_core::auth::HashCost;
use im_core::client::{Client, ClientError};
use im_core::model::UserId;
use im_core::protocol::ErrorCode;
use im_core::transport::duplex;
use im_core::{Engine, EngineConfig};

async fn engine() -> Engine {
    let config = EngineConfig::default().with_hash_cost(HashCost::CHEAPEST);
    Engine::builder().config(config).start().await.unwrap()
}

async fn client(engine: &Engine) -> Client {
    let (server_end, client_end) = duplex(64);
    tokio::spawn({
        let engine = engine.clone();
        async move { engine.serve_connection(server_end).await }
    });
    Client::connect(client_end).await.unwrap().0
}

/// A registered, logged-in user on a connection of their own.
async fn user(engine: &Engine, name: &str) -> (Client, UserId) {
    let c = client(engine).await;
    let id = c.register(name, "correct horse", name).await.unwrap().id;
    c.login(name, "correct horse", "phone").await.unwrap();
    (c, id)
}

/// Two users who send each other a friend request at the same moment are friends, with
/// no request left either way (protocol.md: a request to someone who already asked
/// accepts theirs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friend_requests_crossing_at_once_make_friends() {
    let engine = engine().await;
    for n in 0..20 {
        let (alice, a) = user(&engine, &format!("alice{n}")).await;
        let (bob, b) = user(&engine, &format!("bob{n}")).await;
        let (ab, ba) = tokio::join!(alice.request_friend(b, "hi"), bob.request_friend(a, "hi"));
        ab.unwrap();
        ba.unwrap();
        let friends = alice.friends().await.unwrap();
        assert_eq!(
            friends.iter().map(|f| f.user).collect::<Vec<_>>(),
            vec![b],
            "pair {n}"
        );
        assert_eq!(bob.friends().await.unwrap().len(), 1, "pair {n}");
        let (incoming, outgoing) = alice.friend_requests().await.unwrap();
        assert!(incoming.is_empty() && outgoing.is_empty(), "pair {n}");
        let (incoming, outgoing) = bob.friend_requests().await.unwrap();
        assert!(incoming.is_empty() && outgoing.is_empty(), "pair {n}");
    }
    engine.shutdown().await;
}

/// A request accepted by its receiver while the receiver's other device sends one back:
/// friends either way; the call that came second is told they already are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_and_a_request_back_at_once_make_friends() {
    let engine = engine().await;
    for n in 0..20 {
        let (alice, a) = user(&engine, &format!("alice{n}")).await;
        let (bob, b) = user(&engine, &format!("bob{n}")).await;
        let bob_laptop = client(&engine).await;
        bob_laptop
            .login(&format!("bob{n}"), "correct horse", "laptop")
            .await
            .unwrap();
        alice.request_friend(b, "hi").await.unwrap();
        let (accept, back) = tokio::join!(bob.accept_friend(a), bob_laptop.request_friend(a, "hi"));
        for result in [accept, back] {
            match result {
                Ok(()) => {}
                Err(ClientError::Server(e)) if e.code == ErrorCode::Conflict => {}
                Err(e) => panic!("pair {n}: {e:?}"),
            }
        }
        assert_eq!(alice.friends().await.unwrap().len(), 1, "pair {n}");
        let (incoming, outgoing) = bob.friend_requests().await.unwrap();
        assert!(incoming.is_empty() && outgoing.is_empty(), "pair {n}");
    }
    engine.shutdown().await;
}

/// Two devices of the sender recalling one message at the same moment: one recall is
/// stored, the other is told `conflict`, and the timeline holds one `message_recalled`
/// per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_recalls_of_one_message_at_once_store_one() {
    use im_core::model::{Body, ConversationId, SystemEvent};
    use im_core::protocol::HistoryQuery;

    let engine = engine().await;
    let (phone, a) = user(&engine, "alice").await;
    let (bob, b) = user(&engine, "bob").await;
    let laptop = client(&engine).await;
    laptop
        .login("alice", "correct horse", "laptop")
        .await
        .unwrap();
    phone.request_friend(b, "hi").await.unwrap();
    bob.accept_friend(a).await.unwrap();
    let conversation = ConversationId::direct(a, b);
    const MESSAGES: usize = 20;
    for n in 0..MESSAGES {
        let seq = phone
            .send_text(conversation, &format!("oops {n}"))
            .await
            .unwrap()
            .seq;
        let (one, other) = tokio::join!(
            phone.recall(conversation, seq),
            laptop.recall(conversation, seq)
        );
        let conflicts = [one, other]
            .into_iter()
            .filter(|r| match r {
                Ok(_) => false,
                Err(ClientError::Server(e)) if e.code == ErrorCode::Conflict => true,
                Err(e) => panic!("message {n}: {e:?}"),
            })
            .count();
        assert_eq!(conflicts, 1, "message {n}: one recall stored, one refused");
    }
    let (history, _) = bob
        .history(
            conversation,
            HistoryQuery {
                limit: Some(100),
                ..HistoryQuery::default()
            },
        )
        .await
        .unwrap();
    let recalls = history
        .iter()
        .filter(|m| {
            matches!(
                m.body,
                Body::System {
                    event: SystemEvent::MessageRecalled { .. }
                }
            )
        })
        .count();
    // The recalled messages themselves read as recalled too: 2 per message.
    assert_eq!(recalls, 2 * MESSAGES, "{history:#?}");
    engine.shutdown().await;
}

/// Two devices of a group's owner adding people at the same moment: the same user is
/// added once (the other device is told `conflict`, and the timeline records one
/// `members_added`), and two additions that each fit cannot together pass the member
/// limit (the second is `too_large`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_adds_at_once_add_once_and_keep_the_limit() {
    use im_core::engine::DirectPolicy;
    use im_core::model::{Body, ConversationId, SystemEvent};
    use im_core::protocol::HistoryQuery;

    let config = EngineConfig::default()
        .with_hash_cost(HashCost::CHEAPEST)
        .with_direct_policy(DirectPolicy::Anyone)
        .with_max_group_members(3);
    let engine = Engine::builder().config(config).start().await.unwrap();
    let (phone, _) = user(&engine, "owner").await;
    let laptop = client(&engine).await;
    laptop
        .login("owner", "correct horse", "laptop")
        .await
        .unwrap();
    let mut people = Vec::new();
    for n in 0..40 {
        people.push(user(&engine, &format!("person{n}")).await.1);
    }
    for round in 0..10 {
        let four = &people[round * 4..round * 4 + 4];
        // The same user from both devices.
        let group = phone.create_group("same", &[]).await.unwrap().id;
        let (one, other) = tokio::join!(
            phone.add_members(group, &four[..1]),
            laptop.add_members(group, &four[..1])
        );
        let refused: Vec<ErrorCode> = [one, other]
            .into_iter()
            .filter_map(|r| match r {
                Ok(_) => None,
                Err(ClientError::Server(e)) => Some(e.code),
                Err(e) => panic!("round {round}: {e:?}"),
            })
            .collect();
        assert_eq!(refused, vec![ErrorCode::Conflict], "round {round}");
        let (history, _) = phone
            .history(ConversationId::Group(group), HistoryQuery::default())
            .await
            .unwrap();
        let added = history
            .iter()
            .filter(|m| {
                matches!(
                    m.body,
                    Body::System {
                        event: SystemEvent::MembersAdded { .. }
                    }
                )
            })
            .count();
        assert_eq!(added, 1, "round {round}: {history:#?}");

        // Two pairs at once into a group with room for two.
        let group = phone.create_group("limited", &[]).await.unwrap().id;
        let (one, other) = tokio::join!(
            phone.add_members(group, &four[..2]),
            laptop.add_members(group, &four[2..])
        );
        let refused: Vec<ErrorCode> = [one, other]
            .into_iter()
            .filter_map(|r| match r {
                Ok(_) => None,
                Err(ClientError::Server(e)) => Some(e.code),
                Err(e) => panic!("round {round}: {e:?}"),
            })
            .collect();
        assert_eq!(refused, vec![ErrorCode::TooLarge], "round {round}");
        let members = phone.group_members(group).await.unwrap();
        assert_eq!(members.len(), 3, "round {round}");
    }
    engine.shutdown().await;
}

/// How many of `results` succeeded; every failure must be one of `allowed`.
fn successes<T: std::fmt::Debug>(
    results: Vec<Result<T, ClientError>>,
    allowed: &[ErrorCode],
    what: &str,
) -> usize {
    results
        .into_iter()
        .filter(|r| match r {
            Ok(_) => true,
            Err(ClientError::Server(e)) if allowed.contains(&e.code) => false,
            Err(e) => panic!("{what}: {e:?}"),
        })
        .count()
}

/// How many system messages of `kind` a group's timeline holds.
async fn events(
    client: &Client,
    group: im_core::model::GroupId,
    kind: fn(&im_core::model::SystemEvent) -> bool,
) -> usize {
    use im_core::model::{Body, ConversationId};
    use im_core::protocol::HistoryQuery;
    let (history, _) = client
        .history(ConversationId::Group(group), HistoryQuery::default())
        .await
        .unwrap();
    history
        .iter()
        .filter(|m| matches!(&m.body, Body::System { event } if kind(event)))
        .count()
}

/// Group changes sent at once by two devices, or by two members: kicking the same
/// member, setting a member's role both ways, the same user joining an open group from
/// two devices, two members leaving. Each applies once, the timeline records it once,
/// and the other request is refused with the documented error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_changes_at_once_apply_once() {
    use im_core::model::{Role, SystemEvent};
    use im_core::protocol::Request;

    let engine = engine().await;
    let (phone, owner) = user(&engine, "owner").await;
    let laptop = client(&engine).await;
    laptop
        .login("owner", "correct horse", "laptop")
        .await
        .unwrap();
    for round in 0..8 {
        let (member, m) = user(&engine, &format!("member{round}")).await;
        let member_laptop = client(&engine).await;
        member_laptop
            .login(&format!("member{round}"), "correct horse", "laptop")
            .await
            .unwrap();
        member.request_friend(owner, "hi").await.unwrap();
        phone.accept_friend(m).await.unwrap();

        // Kicking the same member from two devices.
        let group = phone.create_group("kick", &[m]).await.unwrap().id;
        let kick = || Request::KickMember { group, user: m };
        let (one, other) = tokio::join!(phone.group_request(kick()), laptop.group_request(kick()));
        let applied = successes(
            vec![one, other],
            &[ErrorCode::Conflict, ErrorCode::NotFound],
            "kick",
        );
        assert_eq!(applied, 1, "round {round}: kicks applied");
        let kicked = events(&phone, group, |e| {
            matches!(e, SystemEvent::MemberKicked { .. })
        })
        .await;
        assert_eq!(kicked, 1, "round {round}: member_kicked recorded");

        // Making a member an admin from one device while the other makes them a plain
        // member again: both may apply, one after the other, never on a stale view.
        let group = phone.create_group("roles", &[m]).await.unwrap().id;
        let role = |role| Request::SetRole {
            group,
            user: m,
            role,
        };
        let (one, other) = tokio::join!(
            phone.group_request(role(Role::Admin)),
            laptop.group_request(role(Role::Member))
        );
        let applied = successes(vec![one, other], &[ErrorCode::Conflict], "set_role");
        assert!(applied >= 1, "round {round}: no role change applied");
        let changed = events(&phone, group, |e| {
            matches!(e, SystemEvent::RoleChanged { .. })
        })
        .await;
        assert_eq!(changed, applied, "round {round}: one record per change");

        // Joining an open group from two devices of the same user.
        let open = phone
            .request(Request::CreateGroup {
                name: "open".into(),
                members: Vec::new(),
                open: true,
            })
            .await
            .unwrap();
        let im_core::protocol::Reply::Group { group: open, .. } = open else {
            panic!("create_group replied {open:?}");
        };
        let join = || Request::JoinGroup { group: open.id };
        let (one, other) = tokio::join!(
            member.group_request(join()),
            member_laptop.group_request(join())
        );
        let applied = successes(vec![one, other], &[ErrorCode::Conflict], "join");
        assert_eq!(applied, 1, "round {round}: joins applied");
        let joined = events(&phone, open.id, |e| {
            matches!(e, SystemEvent::MemberJoined { .. })
        })
        .await;
        assert_eq!(joined, 1, "round {round}: member_joined recorded");

        // Leaving from two devices at once.
        let leave = || Request::LeaveGroup { group: open.id };
        let (one, other) = tokio::join!(
            member.group_request(leave()),
            member_laptop.group_request(leave())
        );
        let applied = successes(
            vec![one, other],
            &[
                ErrorCode::Conflict,
                ErrorCode::NotFound,
                ErrorCode::Forbidden,
            ],
            "leave",
        );
        assert_eq!(applied, 1, "round {round}: leaves applied");
        let left = events(&phone, open.id, |e| {
            matches!(e, SystemEvent::MemberLeft { .. })
        })
        .await;
        assert_eq!(left, 1, "round {round}: member_left recorded");
    }
    engine.shutdown().await;
}

/// Two devices revoking the same third device at once: one revokes it, the other is
/// told `not_found`; the revoked device's session is closed either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_revokes_of_one_device_at_once_revoke_once() {
    use im_core::model::DeviceId;

    // Eleven logins of one account in a second: past the default per-account limit.
    let config = EngineConfig::default()
        .with_hash_cost(HashCost::CHEAPEST)
        .with_rate_limits(im_core::engine::RateLimits::unlimited());
    let engine = Engine::builder().config(config).start().await.unwrap();
    let (phone, _) = user(&engine, "alice").await;
    let laptop = client(&engine).await;
    laptop
        .login("alice", "correct horse", "laptop")
        .await
        .unwrap();
    for round in 0..10 {
        let tablet = client(&engine).await;
        let name = format!("tablet{round}");
        tablet.login("alice", "correct horse", &name).await.unwrap();
        let device = DeviceId::new(name).unwrap();
        let (one, other) =
            tokio::join!(phone.revoke_device(&device), laptop.revoke_device(&device));
        let applied = successes(vec![one, other], &[ErrorCode::NotFound], "revoke");
        assert_eq!(applied, 1, "round {round}: revokes applied");
        let refused = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match tablet.friends().await {
                    Err(_) => break,
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            }
        })
        .await;
        assert!(
            refused.is_ok(),
            "round {round}: the revoked tablet still acts"
        );
    }
    engine.shutdown().await;
}

/// Two devices editing one message at the same moment: both edits are stored, one after
/// the other, and the message reads as the edit with the higher seq — never as the
/// earlier one over the later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edits_at_once_leave_the_later_text() {
    use im_core::model::{Body, ConversationId, SystemEvent};
    use im_core::protocol::HistoryQuery;

    let engine = engine().await;
    let (phone, a) = user(&engine, "alice").await;
    let (bob, b) = user(&engine, "bob").await;
    let laptop = client(&engine).await;
    laptop
        .login("alice", "correct horse", "laptop")
        .await
        .unwrap();
    phone.request_friend(b, "hi").await.unwrap();
    bob.accept_friend(a).await.unwrap();
    let conversation = ConversationId::direct(a, b);
    let text = |t: &str| Body::Text { text: t.to_owned() };
    for n in 0..20 {
        let seq = phone
            .send_text(conversation, &format!("draft {n}"))
            .await
            .unwrap()
            .seq;
        let (one, other) = tokio::join!(
            phone.edit(conversation, seq, text(&format!("phone {n}"))),
            laptop.edit(conversation, seq, text(&format!("laptop {n}")))
        );
        let (one, other) = (one.unwrap(), other.unwrap());
        let later = if one.seq > other.seq {
            format!("phone {n}")
        } else {
            format!("laptop {n}")
        };
        let (history, _) = bob
            .history(
                conversation,
                HistoryQuery {
                    after: Some(im_core::model::Seq(seq.0 - 1)),
                    limit: Some(3),
                    ..HistoryQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(history[0].body, text(&later), "message {n}");
        let edits = history[1..]
            .iter()
            .filter(|m| {
                matches!(
                    m.body,
                    Body::System {
                        event: SystemEvent::MessageEdited { .. }
                    }
                )
            })
            .count();
        assert_eq!(edits, 2, "message {n}: both edits recorded");
    }
    engine.shutdown().await;
}
