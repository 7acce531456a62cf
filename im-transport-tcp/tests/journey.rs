//! The whole path of a user over real TCP sockets: register, log in, befriend, chat
//! directly and in a group, go offline, come back and catch up, with a second device.

mod common;

use im_core::protocol::reply;
use im_core::protocol::request;
use std::collections::HashMap;
use std::time::Duration;

use common::*;
use im_core::model::{Body, ConversationId, Role, Seq, SystemEvent};
use im_core::protocol::{Event, HistoryQuery, Reply, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_befriend_chat_group_offline_sync() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    // Alice's second device.
    let mut alice2 = server.device("alice", "alice-2").await;

    befriend(&mut alice, &mut bob).await;
    // Bob accepted, so each of alice's devices is told.
    assert!(matches!(alice2.event().await, Event::FriendAdded { user } if user == bob.id));

    // Direct chat both ways.
    let ab = alice.direct(&bob);
    let sent = alice.client.send_text(ab, "hi bob").await.unwrap();
    assert_eq!((sent.seq, sent.duplicate), (Seq(1), false));
    let got = bob.message().await;
    assert_eq!(
        (got.seq, text(&got), got.sender),
        (Seq(1), "hi bob", alice.id)
    );
    // The sender's other device receives the sender's own message; the sending session
    // got the reply instead of a push.
    let mine = alice2.message().await;
    assert_eq!((mine.seq, text(&mine)), (Seq(1), "hi bob"));
    let sent = bob.client.send_text(ab, "hi alice").await.unwrap();
    assert_eq!(sent.seq, Seq(2));
    assert_eq!(text(&alice.message().await), "hi alice");
    assert_eq!(text(&alice2.message().await), "hi alice");
    alice.quiet(100).await;

    // Group: create with bob, add carol (a friend of alice's), chat.
    befriend(&mut carol, &mut alice).await;
    // Every device of alice's hears of the request, and of its acceptance elsewhere.
    assert!(
        matches!(alice2.event().await, Event::FriendRequest { request } if request.from == carol.id)
    );
    assert!(matches!(alice2.event().await, Event::FriendAdded { user } if user == carol.id));
    let group = alice.client.create_group("team", &[bob.id]).await.unwrap();
    let members = alice.client.group_members(group.id).await.unwrap();
    assert_eq!(members.len(), 2);
    let owner = members.iter().find(|m| m.user == alice.id).unwrap();
    assert_eq!(owner.role, Role::Owner);
    let g = ConversationId::Group(group.id);
    let created = bob.message().await;
    assert_eq!(created.conversation, g);
    assert!(matches!(
        created.body,
        Body::System {
            event: SystemEvent::GroupCreated { .. }
        }
    ));
    alice2.message().await;

    alice
        .client
        .add_members(group.id, &[carol.id])
        .await
        .unwrap();
    assert_eq!(carol.client.group_members(group.id).await.unwrap().len(), 3);
    let added = carol.message().await;
    assert_eq!(added.seq, Seq(2));
    assert!(matches!(
        &added.body,
        Body::System { event: SystemEvent::MembersAdded { users, .. } } if users == &vec![carol.id]
    ));
    bob.message().await;
    alice2.message().await;

    let sent = carol.client.send_text(g, "hello team").await.unwrap();
    assert_eq!(sent.seq, Seq(3));
    for u in [&mut alice, &mut bob, &mut alice2] {
        let m = u.message().await;
        assert_eq!((m.conversation, m.seq, text(&m)), (g, Seq(3), "hello team"));
    }
    // Carol joined at seq 2: history before that is not hers.
    let (page, more) = carol
        .client
        .history(g, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.iter().map(|m| m.seq.0).collect::<Vec<_>>(), vec![2, 3]);
    assert!(!more);

    // Bob goes offline; messages arrive meanwhile.
    let token = bob.session.token.clone().unwrap();
    let mut seen = HashMap::from([(ab, Seq(2)), (g, Seq(3))]);
    drop(bob);
    // Wait until the server has noticed, so the messages below cannot be pushed to him.
    for _ in 0..100 {
        if server.engine.session_count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.engine.session_count(), 3);
    for i in 0..3 {
        alice
            .client
            .send_text(ab, &format!("missed {i}"))
            .await
            .unwrap();
    }
    carol.client.send_text(g, "missed in group").await.unwrap();
    alice.client.send_text(g, "also missed").await.unwrap();

    // He comes back with his token and syncs exactly what he missed.
    let (client, _events) = server.connect().await;
    let session = client.resume(&token).await.unwrap();
    assert_eq!(session.user.username, "bob");
    assert!(session.token.is_none());
    let missed = client.sync(&mut seen).await.unwrap();
    let got: Vec<(ConversationId, u64, &str)> = missed
        .iter()
        .map(|m| (m.conversation, m.seq.0, text(m)))
        .collect();
    let mut want = vec![
        (ab, 3, "missed 0"),
        (ab, 4, "missed 1"),
        (ab, 5, "missed 2"),
        (g, 4, "missed in group"),
        (g, 5, "also missed"),
    ];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(got_sorted, want);
    assert_eq!(seen[&ab], Seq(5));
    assert_eq!(seen[&g], Seq(5));
    // A second sync finds nothing new.
    assert!(client.sync(&mut seen).await.unwrap().is_empty());

    // Unread counts: bob read up to 2 in the direct chat (his own message), 1 in the group.
    let list = client.conversations().await.unwrap();
    let direct = list.iter().find(|c| c.conversation == ab).unwrap();
    assert_eq!(
        (direct.last_seq, direct.read_seq, direct.unread),
        (Seq(5), Seq(2), 3)
    );
    assert_eq!(client.mark_read(ab, Seq(99)).await.unwrap(), Seq(5));
    assert_eq!(
        client.mark_read(ab, Seq(1)).await.unwrap(),
        Seq(5),
        "cursors never move back"
    );

    // Retrying a send with the same client id stores it once.
    let body = Body::Text {
        text: "only once".into(),
    };
    let first = client.send(ab, "retry-1", body.clone()).await.unwrap();
    let again = client.send(ab, "retry-1", body.clone()).await.unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!((first.seq, first.message_id), (again.seq, again.message_id));
    let (page, _) = client
        .history(
            ab,
            HistoryQuery {
                after: Some(Seq(5)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1, "a retry must not store a second copy");
    // Alice was pushed the message exactly once (other pushes are still queued ahead).
    let mut pushes = 0;
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(300), alice.events.next()).await
    {
        if matches!(&event, Event::Message { message } if text(message) == "only once") {
            pushes += 1;
        }
    }
    assert_eq!(pushes, 1);

    // Devices: alice sees both of hers.
    match alice
        .client
        .request(Request::Devices(request::Devices {}))
        .await
        .unwrap()
    {
        Reply::Devices(reply::Devices { devices }) => {
            let mut ids: Vec<_> = devices.iter().map(|d| d.id.to_string()).collect();
            ids.sort();
            assert_eq!(ids, vec!["alice-1", "alice-2"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    server.engine.shutdown().await;
}
