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
