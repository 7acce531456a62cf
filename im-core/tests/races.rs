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
