//! The client's typed helpers for lookups, contacts, groups and logging out, over an
//! in-process connection.

use im_core::auth::HashCost;
use im_core::client::{Client, ClientError};
use im_core::protocol::ErrorCode;
use im_core::transport::duplex;
use im_core::{Engine, EngineConfig};

async fn client(engine: &Engine) -> Client {
    let (server_end, client_end) = duplex(64);
    tokio::spawn({
        let engine = engine.clone();
        async move { engine.serve_connection(server_end).await }
    });
    Client::connect(client_end).await.unwrap().0
}

#[tokio::test]
async fn helpers_return_what_the_server_replies() {
    let config = EngineConfig::default().with_hash_cost(HashCost::CHEAPEST);
    let engine = Engine::builder().config(config).start().await.unwrap();
    let alice = client(&engine).await;
    let bob = client(&engine).await;
    let a = alice
        .register("alice", "correct horse", "Alice")
        .await
        .unwrap();
    let b = bob.register("bob", "correct horse", "Bob").await.unwrap();
    alice.login("alice", "correct horse", "one").await.unwrap();
    bob.login("bob", "correct horse", "one").await.unwrap();

    assert_eq!(alice.find_user("bob").await.unwrap().id, b.id);
    let users = alice.users(&[a.id, b.id]).await.unwrap();
    assert_eq!(users.len(), 2);

    alice.request_friend(b.id, "hi").await.unwrap();
    let (incoming, outgoing) = bob.friend_requests().await.unwrap();
    assert_eq!((incoming.len(), outgoing.len()), (1, 0));
    assert_eq!(incoming[0].from, a.id);
    bob.accept_friend(a.id).await.unwrap();
    assert_eq!(alice.friends().await.unwrap()[0].user, b.id);

    let group = alice.create_group("pair", &[b.id]).await.unwrap();
    assert_eq!(bob.my_groups().await.unwrap()[0].id, group.id);

    // A second device of alice's, revoked from the first; then the first logs out.
    let other = client(&engine).await;
    other.login("alice", "correct horse", "two").await.unwrap();
    alice
        .revoke_device(&im_core::model::DeviceId::new("two").unwrap())
        .await
        .unwrap();
    alice.logout().await.unwrap();
    match alice.friends().await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::Unauthorized),
        other => panic!("a logged-out client got {other:?}"),
    }
    engine.shutdown().await;
}
