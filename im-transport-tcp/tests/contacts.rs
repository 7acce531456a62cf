//! Contact flows not covered by the journey: declining, withdrawing, removing, the lists,
//! lookups, logout and open groups, with the pushes each one sends.

mod common;

use common::*;
use im_core::model::ConversationId;
use im_core::protocol::reply;
use im_core::protocol::request;
use im_core::protocol::{ErrorCode, Event, Reply, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decline_withdraw_remove_and_lists() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let carol = server.user("carol").await;

    // Lookup by name, case-insensitively; unknown and malformed names are not_found.
    match alice
        .client
        .request(Request::FindUser(request::FindUser {
            username: "BOB".into(),
        }))
        .await
        .unwrap()
    {
        Reply::User(reply::User { user }) => assert_eq!(user.id, bob.id),
        other => panic!("{other:?}"),
    }
    for name in ["nobody", "no such!"] {
        let r = alice
            .client
            .request(Request::FindUser(request::FindUser {
                username: name.into(),
            }))
            .await;
        assert_eq!(r.unwrap_err().code(), Some(ErrorCode::NotFound), "{name}");
    }

    // A request shows up on both sides' lists; declining tells the asker.
    alice.client.request_friend(bob.id, "hello").await.unwrap();
    assert!(matches!(bob.event().await, Event::FriendRequest { .. }));
    match bob
        .client
        .request(Request::FriendRequests(request::FriendRequests {}))
        .await
        .unwrap()
    {
        Reply::FriendRequests(reply::FriendRequests { incoming, outgoing }) => {
            assert_eq!((incoming.len(), outgoing.len()), (1, 0));
            assert_eq!(
                (incoming[0].from, incoming[0].note.as_str()),
                (alice.id, "hello")
            );
        }
        other => panic!("{other:?}"),
    }
    match alice
        .client
        .request(Request::FriendRequests(request::FriendRequests {}))
        .await
        .unwrap()
    {
        Reply::FriendRequests(reply::FriendRequests { incoming, outgoing }) => {
            assert_eq!((incoming.len(), outgoing.len()), (0, 1));
        }
        other => panic!("{other:?}"),
    }
    bob.client
        .call(request::DeclineFriend { user: alice.id })
        .await
        .unwrap();
    assert!(matches!(alice.event().await, Event::FriendRequestDeclined { user } if user == bob.id));
    let again = bob
        .client
        .call(request::DeclineFriend { user: alice.id })
        .await;
    assert_eq!(again.unwrap_err().code(), Some(ErrorCode::NotFound));
    let accept = bob.client.accept_friend(alice.id).await;
    assert_eq!(accept.unwrap_err().code(), Some(ErrorCode::NotFound));

    // The asker may withdraw its own request.
    alice.client.request_friend(bob.id, "").await.unwrap();
    assert!(matches!(bob.event().await, Event::FriendRequest { .. }));
    alice
        .client
        .call(request::DeclineFriend { user: bob.id })
        .await
        .unwrap();
    assert!(matches!(bob.event().await, Event::FriendRequestDeclined { user } if user == alice.id));

    // Asking someone who already asked you makes you friends at once.
    alice.client.request_friend(bob.id, "").await.unwrap();
    assert!(matches!(bob.event().await, Event::FriendRequest { .. }));
    bob.client.request_friend(alice.id, "").await.unwrap();
    assert!(matches!(alice.event().await, Event::FriendAdded { user } if user == bob.id));
    match alice
        .client
        .request(Request::Friends(request::Friends {}))
        .await
        .unwrap()
    {
        Reply::Friends(reply::Friends { friends }) => assert_eq!(friends[0].user, bob.id),
        other => panic!("{other:?}"),
    }
    let twice = alice.client.request_friend(bob.id, "").await;
    assert_eq!(twice.unwrap_err().code(), Some(ErrorCode::Conflict));

    // Removing ends it for both and tells the other; messages are then refused.
    bob.client
        .call(request::RemoveFriend { user: alice.id })
        .await
        .unwrap();
    assert!(matches!(alice.event().await, Event::FriendRemoved { user } if user == bob.id));
    let ab = ConversationId::direct(alice.id, bob.id);
    let refused = alice.client.send_text(ab, "still there?").await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::Forbidden));
    let gone = bob
        .client
        .call(request::RemoveFriend { user: alice.id })
        .await;
    assert_eq!(gone.unwrap_err().code(), Some(ErrorCode::NotFound));

    // Blocks are listed for the blocker only; self and unknown users are refused.
    alice
        .client
        .call(request::Block { user: carol.id })
        .await
        .unwrap();
    match alice
        .client
        .request(Request::BlockedUsers(request::BlockedUsers {}))
        .await
        .unwrap()
    {
        Reply::Blocked(reply::Blocked { users }) => assert_eq!(users, vec![carol.id]),
        other => panic!("{other:?}"),
    }
    match carol
        .client
        .request(Request::BlockedUsers(request::BlockedUsers {}))
        .await
        .unwrap()
    {
        Reply::Blocked(reply::Blocked { users }) => assert!(users.is_empty()),
        other => panic!("{other:?}"),
    }
    let me = alice.client.call(request::Block { user: alice.id }).await;
    assert_eq!(me.unwrap_err().code(), Some(ErrorCode::Invalid));
    let ghost = alice
        .client
        .call(request::Block {
            user: im_core::model::UserId(999),
        })
        .await;
    assert_eq!(ghost.unwrap_err().code(), Some(ErrorCode::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_groups_and_logout() {
    let server = start(test_config()).await;
    let owner = server.user("owner").await;
    let mut joiner = server.user("joiner").await;
    let group = owner
        .client
        .call(request::CreateGroup {
            name: "open house".into(),
            members: vec![],
            open: true,
        })
        .await
        .unwrap()
        .group;
    let joined = joiner
        .client
        .call(request::JoinGroup { group: group.id })
        .await
        .unwrap();
    assert_eq!(joined.group.name, "open house");
    let twice = joiner
        .client
        .call(request::JoinGroup { group: group.id })
        .await;
    assert_eq!(twice.unwrap_err().code(), Some(ErrorCode::Conflict));
    // A member who joined can chat at once; history starts at the join notice.
    let g = ConversationId::Group(group.id);
    owner.client.send_text(g, "welcome").await.unwrap();
    assert_eq!(text(&joiner.message().await), "welcome");
    let (page, _) = joiner.client.history(g, Default::default()).await.unwrap();
    assert_eq!(page.iter().map(|m| m.seq.0).collect::<Vec<_>>(), vec![2, 3]);

    // Logout revokes this device's token and leaves the connection logged out.
    let token = joiner.session.token.clone().unwrap();
    joiner.client.call(request::Logout {}).await.unwrap();
    let after = joiner.client.conversations().await;
    assert_eq!(after.unwrap_err().code(), Some(ErrorCode::Unauthorized));
    let resumed = joiner.client.resume(&token).await;
    assert_eq!(resumed.unwrap_err().code(), Some(ErrorCode::Unauthorized));
    // The same connection may log in again.
    joiner
        .client
        .login("joiner", PASSWORD, "joiner-1")
        .await
        .unwrap();
    assert_eq!(server.engine.session_count(), 2);
}
