//! The [`Storage`] contract, clause by clause. Each function takes a fresh, empty store.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::model::{
    Body, ConversationId, Device, DeviceId, Forwarded, FriendRequest, Group, GroupId, Message,
    MessageId, Pin, Platform, Reaction, Role, Seq, SystemEvent, Timestamp, User, UserId,
};
use crate::storage::{
    ACCOUNT_DISABLED, Amendment, Appended, ConversationState, Cursor, CursorQuery, DeviceRecord,
    GROUP_FULL, GroupChange, Invite, MessageRange, NewGroup, NewMessage, NewUser, PINS_FULL,
    ProfileChange, RequestOutcome, SearchQuery, SearchTerms, Storage, StorageError, StorageResult,
};

async fn user(s: &dyn Storage, name: &str) -> User {
    s.create_user(NewUser {
        username: name.to_owned(),
        display_name: name.to_uppercase(),
        avatar: None,
        password_hash: format!("hash-of-{name}"),
        created_at: Timestamp::now(),
    })
    .await
    .expect("create_user")
}

fn device_id(id: &str) -> DeviceId {
    DeviceId::new(id).expect("valid device id")
}

fn device(user: UserId, id: &str, hash: u8) -> DeviceRecord {
    DeviceRecord {
        user,
        device: Device {
            id: device_id(id),
            name: format!("{id} name"),
            platform: Platform::Web,
            logged_in_at: Timestamp(1_000),
            expires_at: Timestamp(2_000),
        },
        token_hash: vec![hash; 32],
    }
}

fn text(sender: UserId, device: &str, client_id: &str, text: &str) -> NewMessage {
    NewMessage {
        sender,
        sender_device: device_id(device),
        client_id: client_id.to_owned(),
        body: Body::Text {
            text: text.to_owned(),
        },
        sent_at: Timestamp::now(),
        reply_to: None,
        forwarded: None,
        mentions: Vec::new(),
    }
}

fn system(sender: UserId, event: SystemEvent) -> NewMessage {
    NewMessage {
        sender,
        sender_device: device_id("d"),
        client_id: String::new(),
        body: Body::System { event },
        sent_at: Timestamp::now(),
        reply_to: None,
        forwarded: None,
        mentions: Vec::new(),
    }
}

/// Three fresh users, alice, bob and carol.
async fn alice_bob_carol(s: &dyn Storage) -> (UserId, UserId, UserId) {
    (
        user(s, "alice").await.id,
        user(s, "bob").await.id,
        user(s, "carol").await.id,
    )
}

/// A friend request with no note, made at `at`.
fn request(from: UserId, to: UserId, at: i64) -> FriendRequest {
    FriendRequest {
        from,
        to,
        note: String::new(),
        created_at: Timestamp(at),
    }
}

/// A closed group owned by `owner`, with `others` as plain members.
async fn group(s: &dyn Storage, name: &str, owner: UserId, others: &[UserId]) -> Group {
    let mut members = vec![(owner, Role::Owner)];
    members.extend(others.iter().map(|&u| (u, Role::Member)));
    let event = SystemEvent::GroupCreated {
        by: owner,
        name: name.to_owned(),
        members: members.iter().map(|(u, _)| *u).collect(),
    };
    let new = NewGroup {
        name: name.to_owned(),
        owner,
        open: false,
        created_at: Timestamp(1),
    };
    s.create_group(new, members, system(owner, event))
        .await
        .expect("create_group")
        .0
}

fn all(after: u64, limit: u32) -> MessageRange {
    MessageRange {
        after: Seq(after),
        before: None,
        limit,
        newest: false,
        viewer: None,
    }
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, StorageError>) -> bool {
    matches!(r, Err(StorageError::NotFound(_)))
}

fn plain(text: &str) -> Body {
    Body::Text {
        text: text.to_owned(),
    }
}

/// An edit of `target` to `new_text`, recorded by an event from `sender`'s `device` with
/// idempotency key `client_id`, sent at `at`.
fn edit(
    sender: UserId,
    device: &str,
    client_id: &str,
    target: u64,
    new_text: &str,
    at: i64,
) -> Amendment {
    Amendment {
        target: Seq(target),
        body: plain(new_text),
        event: NewMessage {
            sender,
            sender_device: device_id(device),
            client_id: client_id.to_owned(),
            body: Body::System {
                event: SystemEvent::MessageEdited {
                    seq: Seq(target),
                    body: Box::new(plain(new_text)),
                },
            },
            sent_at: Timestamp(at),
            reply_to: None,
            forwarded: None,
            mentions: Vec::new(),
        },
    }
}

/// Appends `n` text messages from `sender` (keys `{tag}1`, `{tag}2`, …, texts "1", "2", …).
async fn fill(s: &dyn Storage, conversation: ConversationId, sender: UserId, tag: &str, n: u64) {
    for i in 1..=n {
        s.append(
            conversation,
            text(sender, "d", &format!("{tag}{i}"), &i.to_string()),
        )
        .await
        .expect("append");
    }
}

/// Every stored message of a conversation.
async fn timeline(s: &dyn Storage, conversation: ConversationId) -> Vec<Message> {
    s.messages(conversation, all(0, 10_000))
        .await
        .expect("messages")
}

fn cursor(user: UserId, delivered: u64, read: u64) -> Cursor {
    Cursor {
        user,
        delivered: Seq(delivered),
        read: Seq(read),
    }
}

/// Cursors in the order `cursors` lists them: ascending by user.
fn by_user(mut cursors: Vec<Cursor>) -> Vec<Cursor> {
    cursors.sort_by_key(|c| c.user);
    cursors
}

fn cursor_query(at_least: u64, after: Option<UserId>, limit: u32) -> CursorQuery {
    CursorQuery {
        at_least: Seq(at_least),
        after,
        limit,
    }
}

/// Every cursor row of a conversation, as `cursors` lists them.
async fn cursor_rows(s: &dyn Storage, conversation: ConversationId) -> Vec<Cursor> {
    s.cursors(conversation, cursor_query(0, None, 10_000))
        .await
        .expect("cursors")
}

/// How `user` sees `conversation` in `conversations` (which must list it).
async fn state(s: &dyn Storage, user: UserId, conversation: ConversationId) -> ConversationState {
    s.conversations(user)
        .await
        .expect("conversations")
        .into_iter()
        .find(|c| c.conversation == conversation)
        .expect("the conversation is listed")
}

/// `(read_seq, delivered_seq)` of `user` in `conversation`, from `conversations`.
async fn own_cursors(s: &dyn Storage, user: UserId, conversation: ConversationId) -> (Seq, Seq) {
    let c = state(s, user, conversation).await;
    (c.read_seq, c.delivered_seq)
}

/// `create_user` assigns distinct ids and refuses a taken username with `Conflict`.
pub async fn users_get_unique_ids_and_unique_names(s: Arc<dyn Storage>) {
    let a = user(&*s, "alice").await;
    let b = user(&*s, "bob").await;
    assert_ne!(a.id, b.id);
    assert_eq!(a.username, "alice");
    assert_eq!(a.display_name, "ALICE");
    let again = s
        .create_user(NewUser {
            username: "alice".into(),
            display_name: "Other".into(),
            avatar: None,
            password_hash: "x".into(),
            created_at: Timestamp::now(),
        })
        .await;
    assert!(matches!(again, Err(StorageError::Conflict(_))), "{again:?}");
    // The refused registration changed nothing.
    assert_eq!(
        s.user_by_name("alice").await.expect("alice").display_name,
        "ALICE"
    );
}

/// `user` and `user_by_name` find users, and fail with `NotFound` for unknown ones.
pub async fn users_are_found_by_id_and_by_name(s: Arc<dyn Storage>) {
    let a = s
        .create_user(NewUser {
            username: "alice".into(),
            display_name: "Alice".into(),
            avatar: Some("https://example.invalid/a.png".into()),
            password_hash: "h".into(),
            created_at: Timestamp(123),
        })
        .await
        .expect("create_user");
    assert_eq!(s.user(a.id).await.expect("user"), a);
    assert_eq!(s.user_by_name("alice").await.expect("by name"), a);
    assert_eq!(a.avatar.as_deref(), Some("https://example.invalid/a.png"));
    assert_eq!(a.created_at, Timestamp(123));
    assert!(is_not_found(s.user(UserId(a.id.0 + 1000)).await));
    assert!(is_not_found(s.user_by_name("nobody").await));
}

/// `users` returns each existing user once and skips unknown ids.
pub async fn users_batch_lookup_returns_each_existing_user_once(s: Arc<dyn Storage>) {
    let a = user(&*s, "alice").await;
    let b = user(&*s, "bob").await;
    let got = s
        .users(&[a.id, b.id, a.id, UserId(b.id.0 + 1000)])
        .await
        .expect("users");
    let ids: BTreeSet<_> = got.iter().map(|u| u.id).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(ids, BTreeSet::from([a.id, b.id]));
    assert!(s.users(&[]).await.expect("users").is_empty());
}

/// Password hashes are stored with the user and can be replaced.
pub async fn password_hashes_are_stored_and_replaced(s: Arc<dyn Storage>) {
    let a = user(&*s, "alice").await;
    assert_eq!(s.password_hash(a.id).await.expect("hash"), "hash-of-alice");
    s.set_password_hash(a.id, "new-hash".into())
        .await
        .expect("set");
    assert_eq!(s.password_hash(a.id).await.expect("hash"), "new-hash");
    let ghost = UserId(a.id.0 + 1000);
    assert!(is_not_found(s.password_hash(ghost).await));
    assert!(is_not_found(s.set_password_hash(ghost, "x".into()).await));
}

/// Two concurrent registrations of one name leave exactly one user.
pub async fn concurrent_registrations_of_one_name_leave_one_user(s: Arc<dyn Storage>) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_user(NewUser {
                    username: "contested".into(),
                    display_name: format!("try {i}"),
                    avatar: None,
                    password_hash: "h".into(),
                    created_at: Timestamp::now(),
                })
                .await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => created += 1,
            Err(StorageError::Conflict(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(created, 1);
}

/// `set_last_seen` keeps the latest time it was given (it never moves back), and fails
/// with `NotFound` for an unknown user, recording nothing.
pub async fn last_seen_never_moves_back(s: Arc<dyn Storage>) {
    let a = user(&*s, "alice").await.id;
    let seen = |ids: Vec<UserId>| {
        let s = s.clone();
        async move { s.last_seen(&ids).await.expect("last_seen") }
    };
    assert!(
        seen(vec![a]).await.is_empty(),
        "nobody starts with a last seen"
    );
    s.set_last_seen(a, Timestamp(5_000))
        .await
        .expect("set_last_seen");
    assert_eq!(seen(vec![a]).await, vec![(a, Timestamp(5_000))]);
    s.set_last_seen(a, Timestamp(4_000))
        .await
        .expect("set_last_seen");
    assert_eq!(
        seen(vec![a]).await,
        vec![(a, Timestamp(5_000))],
        "an older time does not replace a newer one"
    );
    s.set_last_seen(a, Timestamp(5_000))
        .await
        .expect("set_last_seen");
    s.set_last_seen(a, Timestamp(6_000))
        .await
        .expect("set_last_seen");
    assert_eq!(seen(vec![a]).await, vec![(a, Timestamp(6_000))]);

    let ghost = UserId(a.0 + 1000);
    assert!(is_not_found(s.set_last_seen(ghost, Timestamp(7_000)).await));
    assert!(
        seen(vec![ghost]).await.is_empty(),
        "a refused set_last_seen records nothing"
    );
}

/// `set_last_seen_many` applies each time as `set_last_seen` would (never back), skips
/// unknown users, and two batches naming the same users in opposite orders at once both
/// succeed (no deadlock) and leave each user's later time.
pub async fn last_seen_many_skips_the_unknown_and_keeps_the_latest(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ghost = UserId(c.0 + 1000);
    s.set_last_seen_many(&[]).await.expect("an empty batch");
    s.set_last_seen(a, Timestamp(5_000))
        .await
        .expect("set_last_seen");
    s.set_last_seen_many(&[
        (a, Timestamp(4_000)),
        (b, Timestamp(3_000)),
        (ghost, Timestamp(1_000)),
        (b, Timestamp(3_500)),
    ])
    .await
    .expect("a batch with an unknown user");
    let mut got = s.last_seen(&[a, b, c, ghost]).await.expect("last_seen");
    got.sort();
    assert_eq!(
        got,
        vec![(a, Timestamp(5_000)), (b, Timestamp(3_500))],
        "an older time does not replace a newer one, the latest of a batch wins, \
         nothing is recorded for users without one or unknown"
    );

    // Two batches at once over the same users in opposite orders: on servers with row
    // locks, an adapter that locked them in the order given would deadlock.
    let mut many = vec![a, b, c];
    for k in 0..27 {
        many.push(user(&*s, &format!("racer{k}")).await.id);
    }
    for round in 0..10i64 {
        let early = Timestamp(10_000 + round * 10);
        let late = Timestamp(10_000 + round * 10 + 5);
        // Every other user gets its later time from the first batch, the rest from the
        // second.
        let one: Vec<_> = many
            .iter()
            .enumerate()
            .map(|(k, &u)| (u, if k % 2 == 0 { late } else { early }))
            .collect();
        let other: Vec<_> = many
            .iter()
            .enumerate()
            .rev()
            .map(|(k, &u)| (u, if k % 2 == 0 { early } else { late }))
            .collect();
        let first = tokio::spawn({
            let s = s.clone();
            async move { s.set_last_seen_many(&one).await }
        });
        let second = tokio::spawn({
            let s = s.clone();
            async move { s.set_last_seen_many(&other).await }
        });
        first
            .await
            .expect("the first batch's task")
            .expect("the first of two batches at once");
        second
            .await
            .expect("the second batch's task")
            .expect("the second of two batches at once");
        let mut got = s.last_seen(&many).await.expect("last_seen");
        got.sort();
        let mut want: Vec<_> = many.iter().map(|&u| (u, late)).collect();
        want.sort();
        assert_eq!(
            got, want,
            "round {round}: each user keeps the later of the two times"
        );
    }
}

/// `last_seen` returns the users among `ids` that have a last seen, each once, however
/// often asked for; users without one and unknown ids are left out.
pub async fn last_seen_lists_each_user_that_has_one_once(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    s.set_last_seen(a, Timestamp(1_000))
        .await
        .expect("set_last_seen");
    s.set_last_seen(b, Timestamp(2_000))
        .await
        .expect("set_last_seen");
    let ghost = UserId(c.0 + 1000);
    let mut got = s
        .last_seen(&[a, c, b, a, ghost, b, a])
        .await
        .expect("last_seen");
    got.sort();
    assert_eq!(got, vec![(a, Timestamp(1_000)), (b, Timestamp(2_000))]);
    assert!(
        s.last_seen(&[c, ghost])
            .await
            .expect("last_seen")
            .is_empty()
    );
    assert!(s.last_seen(&[]).await.expect("last_seen").is_empty());
}

/// A device is keyed by (user, device id); `put_device` inserts or replaces it.
pub async fn devices_are_keyed_by_user_and_device_id(s: Arc<dyn Storage>) {
    let a = user(&*s, "alice").await;
    let b = user(&*s, "bob").await;
    s.put_device(device(a.id, "phone", 1)).await.expect("put");
    s.put_device(device(b.id, "phone", 2)).await.expect("put");
    s.put_device(device(a.id, "laptop", 3)).await.expect("put");
    // Same user and id: replaced (a second login from the same device).
    s.put_device(device(a.id, "phone", 4)).await.expect("put");
    assert_eq!(
        s.device(a.id, &device_id("phone")).await.expect("device"),
        device(a.id, "phone", 4)
    );
    assert_eq!(
        s.device(b.id, &device_id("phone"))
            .await
            .expect("device")
            .token_hash,
        vec![2; 32]
    );
    let mut mine: Vec<_> = s
        .devices(a.id)
        .await
        .expect("devices")
        .into_iter()
        .map(|d| d.device.id.to_string())
        .collect();
    mine.sort();
    assert_eq!(mine, vec!["laptop", "phone"]);
    assert!(is_not_found(s.device(a.id, &device_id("tablet")).await));
}

/// `delete_device` says whether it deleted; `delete_other_devices` keeps one.
pub async fn devices_are_deleted_one_or_all_but_one(s: Arc<dyn Storage>) {
    let a = user(&*s, "alice").await;
    let b = user(&*s, "bob").await;
    for d in ["one", "two", "three"] {
        s.put_device(device(a.id, d, 1)).await.expect("put");
    }
    s.put_device(device(b.id, "one", 1)).await.expect("put");
    assert!(
        s.delete_device(a.id, &device_id("one"))
            .await
            .expect("delete")
    );
    assert!(
        !s.delete_device(a.id, &device_id("one"))
            .await
            .expect("delete")
    );
    assert!(is_not_found(s.device(a.id, &device_id("one")).await));
    // Bob's device of the same id is untouched.
    s.device(b.id, &device_id("one"))
        .await
        .expect("bob's device");

    s.put_device(device(a.id, "four", 1)).await.expect("put");
    let mut gone = s
        .delete_other_devices(a.id, &device_id("two"))
        .await
        .expect("delete others");
    gone.sort();
    assert_eq!(gone, vec![device_id("four"), device_id("three")]);
    let left: Vec<_> = s.devices(a.id).await.expect("devices");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].device.id, device_id("two"));
    assert_eq!(s.devices(b.id).await.expect("devices").len(), 1);
}

/// One pending request per ordered pair, replaced on repeat, listed for both sides.
pub async fn friend_requests_are_upserted_and_listed_both_ways(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let req = |from, to, note: &str| FriendRequest {
        from,
        to,
        note: note.to_owned(),
        created_at: Timestamp(5),
    };
    s.put_friend_request(req(a, b, "first")).await.expect("put");
    s.put_friend_request(req(a, b, "second"))
        .await
        .expect("put");
    s.put_friend_request(req(c, a, "from carol"))
        .await
        .expect("put");
    let mut for_a = s.friend_requests(a).await.expect("requests");
    for_a.sort_by_key(|r| (r.from, r.to));
    assert_eq!(for_a, vec![req(a, b, "second"), req(c, a, "from carol")]);
    assert_eq!(
        s.friend_requests(b).await.expect("requests"),
        vec![req(a, b, "second")]
    );
    assert!(s.delete_friend_request(a, b).await.expect("delete"));
    assert!(!s.delete_friend_request(a, b).await.expect("delete"));
    assert!(s.friend_requests(b).await.expect("requests").is_empty());
}

/// Accepting deletes the request and makes both friends; no request, no change.
pub async fn accepting_a_request_makes_symmetric_friends_atomically(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    assert!(is_not_found(
        s.accept_friend_request(a, b, Timestamp(1)).await
    ));
    assert!(!s.is_friend(a, b).await.expect("is_friend"));
    let req = |from, to| request(from, to, 1);
    s.put_friend_request(req(a, b)).await.expect("put");
    s.put_friend_request(req(c, b)).await.expect("put");
    s.accept_friend_request(a, b, Timestamp(7))
        .await
        .expect("accept");
    assert!(s.is_friend(a, b).await.expect("is_friend"));
    assert!(s.is_friend(b, a).await.expect("is_friend"));
    assert!(!s.is_friend(a, c).await.expect("is_friend"));
    let fa = s.friends(a).await.expect("friends");
    let fb = s.friends(b).await.expect("friends");
    assert_eq!((fa.len(), fa[0].user, fa[0].since), (1, b, Timestamp(7)));
    assert_eq!((fb.len(), fb[0].user), (1, a));
    // The request is gone; carol's is not.
    let left = s.friend_requests(b).await.expect("requests");
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].from, left[0].to), (c, b));
}

/// A request to someone who asked first makes the two friends (both requests gone,
/// `since` the new request's time); a request between friends changes nothing.
pub async fn a_request_to_someone_who_asked_first_makes_friends(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    assert_eq!(
        s.put_friend_request(request(a, b, 1)).await.expect("put"),
        RequestOutcome::Pending
    );
    assert_eq!(
        s.put_friend_request(request(a, b, 2))
            .await
            .expect("put again"),
        RequestOutcome::Pending
    );
    s.put_friend_request(request(c, b, 3)).await.expect("put");
    assert_eq!(
        s.put_friend_request(request(b, a, 4))
            .await
            .expect("put back"),
        RequestOutcome::Accepted
    );
    assert!(s.is_friend(a, b).await.expect("is_friend"));
    assert!(s.is_friend(b, a).await.expect("is_friend"));
    let fa = s.friends(a).await.expect("friends");
    assert_eq!((fa.len(), fa[0].user, fa[0].since), (1, b, Timestamp(4)));
    assert!(s.friend_requests(a).await.expect("requests").is_empty());
    let left = s.friend_requests(b).await.expect("requests");
    assert_eq!(
        left.iter().map(|r| (r.from, r.to)).collect::<Vec<_>>(),
        vec![(c, b)]
    );
    for (from, to) in [(a, b), (b, a)] {
        assert_eq!(
            s.put_friend_request(request(from, to, 5))
                .await
                .expect("put"),
            RequestOutcome::AlreadyFriends
        );
    }
    assert!(s.friend_requests(a).await.expect("requests").is_empty());
}

/// Two users asking each other at the same moment end up friends, with no request left,
/// whichever is stored first: one call says `Pending`, the other `Accepted`.
pub async fn requests_crossing_at_once_make_friends(s: Arc<dyn Storage>) {
    let mut pairs = Vec::new();
    for n in 0..12 {
        let a = user(&*s, &format!("cross-a{n}")).await.id;
        let b = user(&*s, &format!("cross-b{n}")).await.id;
        pairs.push((a, b));
    }
    let put = |from, to| {
        let s = s.clone();
        tokio::spawn(async move { s.put_friend_request(request(from, to, 1)).await })
    };
    let tasks: Vec<_> = pairs.iter().map(|&(a, b)| (put(a, b), put(b, a))).collect();
    for ((a, b), (ab, ba)) in pairs.into_iter().zip(tasks) {
        let mut outcomes = [
            ab.await.expect("task").expect("put a to b"),
            ba.await.expect("task").expect("put b to a"),
        ];
        outcomes.sort_by_key(|o| *o == RequestOutcome::Accepted);
        assert_eq!(
            outcomes,
            [RequestOutcome::Pending, RequestOutcome::Accepted],
            "users {a} and {b}"
        );
        assert!(s.is_friend(a, b).await.expect("is_friend"));
        assert!(s.is_friend(b, a).await.expect("is_friend"));
        assert!(
            s.friend_requests(a).await.expect("requests").is_empty(),
            "a request is left between {a} and {b}"
        );
    }
}

/// A request accepted and a request the other way at the same moment: friends, no
/// request left, and neither call fails with anything but "not found" (the accept that
/// came second) — never a deadlock.
pub async fn an_accept_and_a_request_back_at_once_make_friends(s: Arc<dyn Storage>) {
    for n in 0..8 {
        let a = user(&*s, &format!("back-a{n}")).await.id;
        let b = user(&*s, &format!("back-b{n}")).await.id;
        let req = |from, to| request(from, to, 1);
        s.put_friend_request(req(a, b)).await.expect("put");
        let accept = {
            let s = s.clone();
            tokio::spawn(async move { s.accept_friend_request(a, b, Timestamp(2)).await })
        };
        let back = {
            let s = s.clone();
            tokio::spawn(async move { s.put_friend_request(req(b, a)).await })
        };
        match accept.await.expect("task") {
            Ok(()) | Err(StorageError::NotFound(_)) => {}
            Err(e) => panic!("accept failed: {e}"),
        }
        match back.await.expect("task") {
            Ok(RequestOutcome::Accepted | RequestOutcome::AlreadyFriends) => {}
            other => panic!("the request back got {other:?}"),
        }
        assert!(s.is_friend(a, b).await.expect("is_friend"));
        assert!(s.is_friend(b, a).await.expect("is_friend"));
        assert!(s.friend_requests(a).await.expect("requests").is_empty());
    }
}

/// Of several identical blocks at the same moment, exactly one reports a change; the same
/// for unblocks.
pub async fn blocks_at_once_report_one_change(s: Arc<dyn Storage>) {
    let (a, b, _) = alice_bob_carol(&*s).await;
    for blocked in [true, false] {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.set_blocked(a, b, blocked).await })
            })
            .collect();
        let mut changed = 0;
        for t in tasks {
            if t.await.expect("task").expect("set_blocked") {
                changed += 1;
            }
        }
        assert_eq!(changed, 1, "blocked = {blocked}");
        assert_eq!(s.is_blocked(a, b).await.expect("is_blocked"), blocked);
    }
}

/// `remove_friend` ends a friendship both ways and says whether it existed.
pub async fn removing_a_friend_ends_it_both_ways(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    s.put_friend_request(request(a, b, 1)).await.expect("put");
    s.accept_friend_request(a, b, Timestamp(2))
        .await
        .expect("accept");
    assert!(s.remove_friend(b, a).await.expect("remove"));
    assert!(!s.is_friend(a, b).await.expect("is_friend"));
    assert!(!s.is_friend(b, a).await.expect("is_friend"));
    assert!(s.friends(a).await.expect("friends").is_empty());
    assert!(!s.remove_friend(a, b).await.expect("remove"));
}

/// Blocks are directed, report changes, and delete pending requests between the two.
pub async fn blocks_are_directed_and_clear_pending_requests(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    for (from, to) in [(b, a), (a, b), (c, a)] {
        s.put_friend_request(request(from, to, 1))
            .await
            .expect("put");
    }
    assert!(s.set_blocked(a, b, true).await.expect("block"));
    assert!(!s.set_blocked(a, b, true).await.expect("block again"));
    assert!(s.is_blocked(a, b).await.expect("is_blocked"));
    assert!(!s.is_blocked(b, a).await.expect("is_blocked"));
    assert_eq!(s.blocked(a).await.expect("blocked"), vec![b]);
    assert!(s.blocked(b).await.expect("blocked").is_empty());
    let left = s.friend_requests(a).await.expect("requests");
    assert_eq!(left.len(), 1, "only carol's request survives: {left:?}");
    assert_eq!(left[0].from, c);
    assert!(s.set_blocked(a, b, false).await.expect("unblock"));
    assert!(!s.set_blocked(a, b, false).await.expect("unblock again"));
    assert!(!s.is_blocked(a, b).await.expect("is_blocked"));
}

/// A request either way between two users one of whom blocked the other is refused
/// (`Blocked`, nothing stored, checked before friendship); a request and a block at the
/// same moment never leave a request beside the block, whichever is stored first.
pub async fn requests_are_refused_across_a_block_even_at_once(s: Arc<dyn Storage>) {
    let (a, b, _) = alice_bob_carol(&*s).await;
    s.put_friend_request(request(a, b, 1)).await.expect("put");
    s.accept_friend_request(a, b, Timestamp(2))
        .await
        .expect("accept");
    assert!(s.set_blocked(a, b, true).await.expect("block"));
    for (from, to) in [(a, b), (b, a)] {
        assert_eq!(
            s.put_friend_request(request(from, to, 3))
                .await
                .expect("put"),
            RequestOutcome::Blocked,
            "{from} to {to}"
        );
    }
    assert!(s.friend_requests(a).await.expect("requests").is_empty());

    let mut pairs = Vec::new();
    for n in 0..12 {
        let a = user(&*s, &format!("refused-a{n}")).await.id;
        let b = user(&*s, &format!("refused-b{n}")).await.id;
        pairs.push((a, b));
    }
    let tasks: Vec<_> = pairs
        .iter()
        .map(|&(a, b)| {
            let (s1, s2) = (s.clone(), s.clone());
            (
                tokio::spawn(async move { s1.put_friend_request(request(a, b, 1)).await }),
                tokio::spawn(async move { s2.set_blocked(b, a, true).await }),
            )
        })
        .collect();
    for ((a, b), (put, block)) in pairs.into_iter().zip(tasks) {
        let outcome = put.await.expect("task").expect("put");
        assert!(
            matches!(outcome, RequestOutcome::Pending | RequestOutcome::Blocked),
            "{outcome:?}"
        );
        assert!(block.await.expect("task").expect("block"));
        assert!(
            s.friend_requests(b).await.expect("requests").is_empty(),
            "{b} blocked {a} and still has their request ({outcome:?})"
        );
    }
}

/// `create_group` stores the group, members at joined seq 1, and message seq 1.
pub async fn create_group_stores_members_and_first_message(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let event = SystemEvent::GroupCreated {
        by: a,
        name: "team".into(),
        members: vec![a, b],
    };
    let (group, first) = s
        .create_group(
            NewGroup {
                name: "team".into(),
                owner: a,
                open: true,
                created_at: Timestamp(9),
            },
            vec![(a, Role::Owner), (b, Role::Member)],
            system(a, event.clone()),
        )
        .await
        .expect("create_group");
    assert_eq!(
        (group.name.as_str(), group.owner, group.open),
        ("team", a, true)
    );
    assert_eq!(s.group(group.id).await.expect("group"), group);
    let c = ConversationId::Group(group.id);
    assert_eq!((first.conversation, first.seq), (c, Seq(1)));
    assert_eq!(first.body, Body::System { event });
    let mut members = s.members(group.id).await.expect("members");
    members.sort_by_key(|m| m.user);
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.joined_seq == Seq(1)));
    assert_eq!(
        s.member(group.id, a).await.expect("member").map(|m| m.role),
        Some(Role::Owner)
    );
    assert_eq!(
        s.member(group.id, b).await.expect("member").map(|m| m.role),
        Some(Role::Member)
    );
    assert_eq!(s.last_seq(c).await.expect("last_seq"), Seq(1));
    // The first members have read the creation notice.
    let states = s.conversations(b).await.expect("conversations");
    assert_eq!(states.len(), 1);
    assert_eq!((states[0].last_seq, states[0].read_seq), (Seq(1), Seq(1)));
    // Another group gets another id.
    let (other, _) = s
        .create_group(
            NewGroup {
                name: "other".into(),
                owner: b,
                open: false,
                created_at: Timestamp(9),
            },
            vec![(b, Role::Owner)],
            system(
                b,
                SystemEvent::GroupCreated {
                    by: b,
                    name: "other".into(),
                    members: vec![b],
                },
            ),
        )
        .await
        .expect("create_group");
    assert_ne!(other.id, group.id);
}

/// `update_group` applies adds, removes, roles, name and owner with its record.
pub async fn update_group_applies_the_change_with_its_record(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let group = group(&*s, "g", a, &[b]).await;
    let conv = ConversationId::Group(group.id);
    s.append(conv, text(b, "d", "x1", "hello"))
        .await
        .expect("append");

    // Add carol (and bob again, who stays as he is).
    let (_, record) = s
        .update_group(
            group.id,
            GroupChange {
                add: vec![(c, Role::Member), (b, Role::Admin)],
                ..GroupChange::default()
            },
            system(
                a,
                SystemEvent::MembersAdded {
                    by: a,
                    users: vec![c],
                },
            ),
        )
        .await
        .expect("add");
    assert_eq!(record.seq, Seq(3));
    let carol = s
        .member(group.id, c)
        .await
        .expect("member")
        .expect("carol is a member");
    assert_eq!((carol.role, carol.joined_seq), (Role::Member, Seq(3)));
    let bob = s.member(group.id, b).await.expect("member").expect("bob");
    assert_eq!((bob.role, bob.joined_seq), (Role::Member, Seq(1)));
    let carol_view = s.conversations(c).await.expect("conversations");
    assert_eq!(
        carol_view[0].read_seq,
        Seq(3),
        "added members have read their join"
    );

    // Roles, name and owner together (a transfer).
    let (after, record) = s
        .update_group(
            group.id,
            GroupChange {
                roles: vec![(b, Role::Owner), (a, Role::Admin)],
                name: Some("renamed".into()),
                owner: Some(b),
                ..GroupChange::default()
            },
            system(a, SystemEvent::OwnerChanged { from: a, to: b }),
        )
        .await
        .expect("transfer");
    assert_eq!(record.seq, Seq(4));
    assert_eq!((after.name.as_str(), after.owner), ("renamed", b));
    assert_eq!(s.group(group.id).await.expect("group"), after);
    assert_eq!(
        s.member(group.id, a).await.expect("m").map(|m| m.role),
        Some(Role::Admin)
    );
    assert_eq!(
        s.member(group.id, b).await.expect("m").map(|m| m.role),
        Some(Role::Owner)
    );

    // Remove carol.
    s.update_group(
        group.id,
        GroupChange {
            remove: vec![c],
            ..GroupChange::default()
        },
        system(b, SystemEvent::MemberKicked { by: b, user: c }),
    )
    .await
    .expect("remove");
    assert_eq!(s.member(group.id, c).await.expect("member"), None);
    assert_eq!(s.members(group.id).await.expect("members").len(), 2);
    assert_eq!(s.last_seq(conv).await.expect("last_seq"), Seq(5));
}

/// Additions at the same moment, each decided on a view where its user is not a member
/// (`expect: (user, None)`): of several adding the same user (two devices of the owner),
/// exactly one applies and the others are `Conflict`, recording nothing; of additions of
/// different users with `max_members`, no more apply than there is room for.
pub async fn adds_at_once_apply_once_and_keep_the_member_limit(s: Arc<dyn Storage>) {
    let owner = user(&*s, "owner").await.id;
    let mut others = Vec::new();
    for n in 0..10 {
        others.push(user(&*s, &format!("member{n}")).await.id);
    }
    let add = |group: GroupId, u: UserId, max: Option<usize>| {
        let s = s.clone();
        tokio::spawn(async move {
            let change = GroupChange {
                add: vec![(u, Role::Member)],
                expect: vec![(u, None)],
                max_members: max,
                ..GroupChange::default()
            };
            let event = SystemEvent::MembersAdded {
                by: owner,
                users: vec![u],
            };
            s.update_group(group, change, system(owner, event)).await
        })
    };
    // The same user, eight times at once.
    let g = group(&*s, "same", owner, &[]).await.id;
    let tasks: Vec<_> = (0..8).map(|_| add(g, others[0], None)).collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => applied += 1,
            Err(StorageError::Conflict(_)) => {}
            Err(e) => panic!("an add failed: {e}"),
        }
    }
    assert_eq!(applied, 1, "one add of the same user applies");
    assert_eq!(
        s.last_seq(ConversationId::Group(g)).await.expect("seq"),
        Seq(2)
    );
    assert_eq!(s.members(g).await.expect("members").len(), 2);

    // Ten different users at once into a group of at most five.
    let g = group(&*s, "limited", owner, &[]).await.id;
    let tasks: Vec<_> = others.iter().map(|&u| add(g, u, Some(5))).collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => applied += 1,
            Err(StorageError::Conflict(why)) => assert_eq!(why, GROUP_FULL),
            Err(e) => panic!("an add failed: {e}"),
        }
    }
    assert_eq!(applied, 4, "only the room there was");
    assert_eq!(s.members(g).await.expect("members").len(), 5);
    assert_eq!(
        s.last_seq(ConversationId::Group(g)).await.expect("seq"),
        Seq(5)
    );
}

/// `update_group`: concurrent changes that add the same user all succeed (a member
/// already there is left as is), the user is a member once, and every change's record
/// takes its own seq.
pub async fn concurrent_adds_of_one_member_all_succeed(s: Arc<dyn Storage>) {
    const CHANGES: u64 = 8;
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let group = group(&*s, "g", a, &[]).await;
    let tasks: Vec<_> = (0..CHANGES)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let add = GroupChange {
                    add: vec![(b, Role::Member)],
                    ..GroupChange::default()
                };
                let event = SystemEvent::MembersAdded {
                    by: a,
                    users: vec![b],
                };
                s.update_group(group.id, add, system(a, event)).await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        let (updated, record) = t
            .await
            .expect("task")
            .expect("adding a member who may already be there succeeds");
        assert_eq!(updated.id, group.id);
        seqs.push(record.seq.0);
    }
    seqs.sort();
    assert_eq!(seqs, (2..2 + CHANGES).collect::<Vec<_>>());
    let members = s.members(group.id).await.expect("members");
    assert_eq!(members.iter().filter(|m| m.user == b).count(), 1);
    assert_eq!(members.len(), 2);
}

/// A disabled account gains no friend request, friendship or group (`Conflict`,
/// [`ACCOUNT_DISABLED`]), and nothing changes, but may be blocked; enabled again, it
/// gains them again. A request, an accept
/// or an add at the same moment as the disable either came first, and then whoever reads
/// the account's ties after `set_disabled` returned sees it, or is refused: what a
/// deletion reads right after disabling is everything it has to undo.
pub async fn disabled_accounts_gain_no_ties_even_at_once(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let refused = |r: StorageResult<()>| match r {
        Err(StorageError::Conflict(ACCOUNT_DISABLED)) => {}
        other => panic!("expected the disabled account's conflict, got {other:?}"),
    };
    let request = |from: UserId, to: UserId| FriendRequest {
        from,
        to,
        note: String::new(),
        created_at: Timestamp(1),
    };
    let add = |by: UserId, user: UserId| {
        (
            GroupChange {
                add: vec![(user, Role::Member)],
                ..GroupChange::default()
            },
            system(
                by,
                SystemEvent::MembersAdded {
                    by,
                    users: vec![user],
                },
            ),
        )
    };
    let g = group(&*s, "g", a, &[]).await;
    s.put_friend_request(request(b, a)).await.expect("request");
    s.set_disabled(b, true).await.expect("disable");
    refused(s.put_friend_request(request(a, b)).await.map(|_| ()));
    refused(s.put_friend_request(request(b, c)).await.map(|_| ()));
    refused(s.accept_friend_request(b, a, Timestamp(2)).await);
    let (change, record) = add(a, b);
    refused(s.update_group(g.id, change, record).await.map(|_| ()));
    let new = NewGroup {
        name: "h".into(),
        owner: a,
        open: false,
        created_at: Timestamp(1),
    };
    let created = s
        .create_group(
            new.clone(),
            vec![(a, Role::Owner), (b, Role::Member)],
            system(
                a,
                SystemEvent::GroupCreated {
                    by: a,
                    name: "h".into(),
                    members: vec![a, b],
                },
            ),
        )
        .await;
    refused(created.map(|_| ()));
    assert!(!s.is_friend(a, b).await.expect("is_friend"));
    assert_eq!(s.members(g.id).await.expect("members").len(), 1);
    assert_eq!(s.user_groups(b).await.expect("user_groups"), []);
    assert_eq!(
        s.friend_requests(b).await.expect("requests").len(),
        1,
        "kept, not accepted"
    );
    assert_eq!(
        s.user_groups(a).await.expect("user_groups").len(),
        1,
        "no group h"
    );
    // A block is no tie it gains: blocking a disabled account works, and so does
    // unblocking it.
    assert!(
        s.set_blocked(c, b, true)
            .await
            .expect("block a disabled account")
    );
    assert!(s.set_blocked(c, b, false).await.expect("unblock it"));
    // Enabled again, it can.
    s.set_disabled(b, false).await.expect("enable");
    s.accept_friend_request(b, a, Timestamp(2))
        .await
        .expect("accept");
    let (change, record) = add(a, b);
    s.update_group(g.id, change, record).await.expect("add");

    // At once: each round a fresh account is disabled (then its ties read) while it is
    // sent a request, accepts one and is added to a group.
    for round in 0..16 {
        let victim = user(&*s, &format!("victim{round}")).await.id;
        s.put_friend_request(request(victim, c))
            .await
            .expect("request");
        let disable = {
            let s = s.clone();
            tokio::spawn(async move {
                s.set_disabled(victim, true).await.expect("disable");
                let requests = s.friend_requests(victim).await.expect("requests");
                let friends = s.friends(victim).await.expect("friends");
                let groups = s.user_groups(victim).await.expect("groups");
                (requests.len(), friends.len(), groups.len())
            })
        };
        let asked = {
            let s = s.clone();
            tokio::spawn(async move { s.put_friend_request(request(a, victim)).await })
        };
        let accepted = {
            let s = s.clone();
            tokio::spawn(async move { s.accept_friend_request(victim, c, Timestamp(3)).await })
        };
        let added = {
            let s = s.clone();
            let (change, record) = add(a, victim);
            tokio::spawn(async move { s.update_group(g.id, change, record).await })
        };
        let seen = disable.await.expect("task");
        for outcome in [
            asked.await.expect("task").map(|_| ()),
            accepted.await.expect("task"),
            added.await.expect("task").map(|_| ()),
        ] {
            match outcome {
                Ok(()) | Err(StorageError::Conflict(ACCOUNT_DISABLED)) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        let now = (
            s.friend_requests(victim).await.expect("requests").len(),
            s.friends(victim).await.expect("friends").len(),
            s.user_groups(victim).await.expect("groups").len(),
        );
        assert_eq!(
            now, seen,
            "round {round}: a tie was made after the disable and its reading"
        );
    }
}

/// Invites: one use per admitted registration, checked and counted in one step (of 12
/// at once on an invite of 5 uses, 5 are admitted), none once expired or revoked; a use
/// given back can be used again; listed newest first. A store that cannot keep invites
/// (`Unsupported`, the default) skips this scenario, loudly.
pub async fn invites_admit_as_many_as_their_uses_even_at_once(s: Arc<dyn Storage>) {
    let invite = |id: &str, uses: u32, expires_at: i64, created_at: i64| Invite {
        id: id.to_owned(),
        uses_left: uses,
        expires_at: Timestamp(expires_at),
        created_at: Timestamp(created_at),
        note: format!("for {id}"),
    };
    match s.create_invite(invite("five", 5, 10_000, 1)).await {
        Err(StorageError::Unsupported(what)) => {
            eprintln!("SKIPPED: this store does not keep {what} (InviteStore)");
            return;
        }
        other => other.expect("create_invite"),
    }
    match s.create_invite(invite("five", 1, 10_000, 1)).await {
        Err(StorageError::Conflict(_)) => {}
        other => panic!("a second invite with one id: {other:?}"),
    }
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.use_invite("five", Timestamp(5_000)).await })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        if t.await.expect("task").expect("use_invite") {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5, "as many as its uses");
    assert!(!s.use_invite("five", Timestamp(5_000)).await.expect("use"));
    s.return_invite("five").await.expect("return");
    assert!(
        s.use_invite("five", Timestamp(5_000)).await.expect("use"),
        "given back"
    );
    assert!(!s.use_invite("five", Timestamp(5_000)).await.expect("use"));

    s.create_invite(invite("old", 3, 2_000, 2))
        .await
        .expect("create");
    assert!(s.use_invite("old", Timestamp(1_999)).await.expect("use"));
    assert!(
        !s.use_invite("old", Timestamp(2_000)).await.expect("use"),
        "expired"
    );
    assert!(
        !s.use_invite("nobody", Timestamp(1)).await.expect("use"),
        "unknown"
    );
    s.return_invite("nobody")
        .await
        .expect("returning to nothing is no error");

    s.create_invite(invite("new", 1, 10_000, 3))
        .await
        .expect("create");
    let listed = s.invites().await.expect("invites");
    let order: Vec<(&str, u32)> = listed
        .iter()
        .map(|i| (i.id.as_str(), i.uses_left))
        .collect();
    assert_eq!(order, [("new", 1), ("old", 2), ("five", 0)], "newest first");
    assert_eq!(listed[0], invite("new", 1, 10_000, 3), "kept as given");
    assert!(s.revoke_invite("new").await.expect("revoke"));
    assert!(!s.revoke_invite("new").await.expect("revoke"), "once");
    assert!(
        !s.use_invite("new", Timestamp(1)).await.expect("use"),
        "revoked"
    );
    assert_eq!(s.invites().await.expect("invites").len(), 2);
}

/// `update_group`: a change whose expected roles no longer hold is refused as a
/// `Conflict` and changes nothing; of two ownership transfers decided on one view, one
/// applies.
pub async fn changes_decided_on_a_stale_view_are_refused(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let group = group(&*s, "g", a, &[b, c]).await;
    let conv = ConversationId::Group(group.id);
    let transfer = |to: UserId| GroupChange {
        roles: vec![(to, Role::Owner), (a, Role::Admin)],
        owner: Some(to),
        expect: vec![(a, Some(Role::Owner)), (to, Some(Role::Member))],
        ..GroupChange::default()
    };
    let record = |to: UserId| system(a, SystemEvent::OwnerChanged { from: a, to });

    // Two transfers at once, both decided while alice owned the group.
    let (first, second) = tokio::join!(
        s.update_group(group.id, transfer(b), record(b)),
        s.update_group(group.id, transfer(c), record(c)),
    );
    let won = match (first, second) {
        (Ok(_), Err(StorageError::Conflict(_))) => b,
        (Err(StorageError::Conflict(_)), Ok(_)) => c,
        (first, second) => panic!("exactly one transfer must apply: {first:?} / {second:?}"),
    };
    assert_eq!(s.group(group.id).await.expect("group").owner, won);
    assert_eq!(s.last_seq(conv).await.expect("last_seq"), Seq(2));
    let owners = s.members(group.id).await.expect("members");
    assert_eq!(owners.iter().filter(|m| m.role == Role::Owner).count(), 1);

    // Alice is no longer the owner: a change that expects it changes nothing.
    let e = s
        .update_group(group.id, transfer(a), record(a))
        .await
        .expect_err("stale");
    assert!(matches!(e, StorageError::Conflict(_)), "{e}");
    assert_eq!(s.last_seq(conv).await.expect("last_seq"), Seq(2));
    // Expecting a non-member to be absent holds.
    let d = user(&*s, "dave").await.id;
    let join = GroupChange {
        add: vec![(d, Role::Member)],
        expect: vec![(d, None)],
        ..GroupChange::default()
    };
    s.update_group(
        group.id,
        join,
        system(d, SystemEvent::MemberJoined { user: d }),
    )
    .await
    .expect("join");
}

/// Unknown groups: `group`, `members` and `update_group` fail with `NotFound`.
pub async fn unknown_groups_are_not_found(s: Arc<dyn Storage>) {
    let a = user(&*s, "alice").await.id;
    let ghost = GroupId(4242);
    assert!(is_not_found(s.group(ghost).await));
    assert!(is_not_found(s.members(ghost).await));
    assert_eq!(s.member(ghost, a).await.expect("member"), None);
    let r = s
        .update_group(
            ghost,
            GroupChange {
                add: vec![(a, Role::Member)],
                ..GroupChange::default()
            },
            system(a, SystemEvent::MemberJoined { user: a }),
        )
        .await;
    assert!(is_not_found(r));
    assert_eq!(
        s.last_seq(ConversationId::Group(ghost))
            .await
            .expect("last_seq"),
        Seq::ZERO,
        "a refused update stores no record"
    );
}

/// `user_groups` lists the groups a user is in now.
pub async fn user_groups_follow_membership(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let g = group(&*s, name, a, &[b]).await;
        ids.push(g.id);
    }
    s.update_group(
        ids[0],
        GroupChange {
            remove: vec![b],
            ..GroupChange::default()
        },
        system(b, SystemEvent::MemberLeft { user: b }),
    )
    .await
    .expect("leave");
    let of = |u| {
        let s = s.clone();
        async move {
            let mut g: Vec<_> = s
                .user_groups(u)
                .await
                .expect("user_groups")
                .iter()
                .map(|g| g.id)
                .collect();
            g.sort();
            g
        }
    };
    assert_eq!(of(a).await, ids);
    assert_eq!(of(b).await, vec![ids[1]]);
}

/// Seqs start at 1 and go up by one per conversation, independently.
pub async fn appends_get_gapless_seqs_from_one(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let ac = ConversationId::direct(a, c);
    assert_eq!(s.last_seq(ab).await.expect("last_seq"), Seq::ZERO);
    let mut ids = HashSet::new();
    for i in 1..=5u64 {
        let m = s
            .append(ab, text(a, "d", &format!("ab{i}"), "x"))
            .await
            .expect("append");
        assert_eq!((m.message.seq, m.duplicate), (Seq(i), false));
        assert_eq!(m.message.conversation, ab);
        assert!(ids.insert(m.message.id), "message ids are unique");
    }
    let m = s
        .append(ac, text(a, "d", "ac1", "y"))
        .await
        .expect("append");
    assert_eq!(m.message.seq, Seq(1), "each conversation counts on its own");
    assert!(
        ids.insert(m.message.id),
        "message ids are unique across conversations"
    );
    assert_eq!(s.last_seq(ab).await.expect("last_seq"), Seq(5));
    let stored = s.messages(ab, all(0, 100)).await.expect("messages");
    assert_eq!(
        stored.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
}

/// Many concurrent appends to one conversation: seqs 1..=N, none twice, none missing.
pub async fn concurrent_appends_are_gapless_and_unique(s: Arc<dyn Storage>) {
    const WRITERS: u64 = 32;
    const EACH: u64 = 50;
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0..EACH {
                    let sender = if w % 2 == 0 { a } else { b };
                    let m = s
                        .append(
                            conv,
                            text(
                                sender,
                                &format!("w{w}"),
                                &format!("{w}-{i}"),
                                &format!("{w}/{i}"),
                            ),
                        )
                        .await
                        .expect("append");
                    assert!(!m.duplicate);
                    sent.push(m.message);
                }
                sent
            })
        })
        .collect();
    let mut sent = Vec::new();
    for t in tasks {
        let mine = t.await.expect("task");
        assert!(
            mine.windows(2).all(|w| w[0].seq < w[1].seq),
            "one writer's seqs go up"
        );
        sent.extend(mine);
    }
    sent.sort_by_key(|m| m.seq);
    let seqs: Vec<u64> = sent.iter().map(|m| m.seq.0).collect();
    assert_eq!(seqs, (1..=WRITERS * EACH).collect::<Vec<_>>());
    assert_eq!(
        s.last_seq(conv).await.expect("last_seq"),
        Seq(WRITERS * EACH)
    );
    let stored = s.messages(conv, all(0, 10_000)).await.expect("messages");
    assert_eq!(stored.len() as u64, WRITERS * EACH);
    // What each append returned is what was stored: id, text, sender and all.
    for (returned, read) in sent.iter().zip(&stored) {
        assert_eq!(
            returned, read,
            "an append returned other than what it stored"
        );
    }
    let ids: HashSet<_> = stored.iter().map(|m| m.id).collect();
    assert_eq!(ids.len() as u64, WRITERS * EACH);
}

/// Client ids and device ids compare exactly: ids that differ only in case, accents or
/// trailing spaces are different keys (and different devices).
pub async fn keys_compare_byte_for_byte(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    let mut seqs = Vec::new();
    for (device, client_id) in [
        ("phone", "abc"),
        ("phone", "ABC"),
        ("phone", "abc "),
        ("phone", "ábc"),
        ("Phone", "abc"),
    ] {
        let appended = s
            .append(conv, text(a, device, client_id, client_id))
            .await
            .expect("append");
        assert!(
            !appended.duplicate,
            "{device}/{client_id:?} was taken for a retry of another key"
        );
        seqs.push(appended.message.seq.0);
    }
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let again = s
        .append(conv, text(a, "phone", "ABC", "ABC"))
        .await
        .expect("retry");
    assert!(again.duplicate);
    assert_eq!(again.message.seq, Seq(2));
}

/// The same (conversation, sender, device, client id) stores once; empty ids never dedupe.
pub async fn retries_with_the_same_key_store_once(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    let first = s
        .append(conv, text(a, "phone", "k1", "hello"))
        .await
        .expect("append");
    let retry = s
        .append(conv, text(a, "phone", "k1", "hello"))
        .await
        .expect("append");
    assert!(!first.duplicate && retry.duplicate);
    assert_eq!(first.message, retry.message);
    // Another device, another sender, or another conversation: not the same key.
    let other_device = s
        .append(conv, text(a, "laptop", "k1", "hello"))
        .await
        .expect("append");
    let other_sender = s
        .append(conv, text(b, "phone", "k1", "hello"))
        .await
        .expect("append");
    assert!(!other_device.duplicate && !other_sender.duplicate);
    let (c, _) = (user(&*s, "carol").await.id, ());
    let elsewhere = s
        .append(
            ConversationId::direct(a, c),
            text(a, "phone", "k1", "hello"),
        )
        .await
        .expect("append");
    assert!(!elsewhere.duplicate);
    // System messages (empty client id) are never deduplicated.
    let s1 = s
        .append(conv, system(a, SystemEvent::MemberJoined { user: a }))
        .await
        .expect("append");
    let s2 = s
        .append(conv, system(a, SystemEvent::MemberJoined { user: a }))
        .await
        .expect("append");
    assert!(!s1.duplicate && !s2.duplicate);
    assert_eq!(s.last_seq(conv).await.expect("last_seq"), Seq(5));
}

/// `append_many` appends in the order given, answers each message on its own, and
/// recognises retries among them (of earlier messages and of each other).
pub async fn append_many_keeps_the_order_and_answers_each(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let ac = ConversationId::direct(a, c);
    let earlier = s
        .append(ab, text(a, "phone", "k0", "before"))
        .await
        .expect("append");
    let results = s
        .append_many(vec![
            (ab, text(a, "phone", "k1", "one")),
            (ac, text(a, "phone", "k2", "two")),
            (ab, text(a, "phone", "k0", "before")),
            (ab, text(a, "phone", "k3", "three")),
            (ab, text(a, "phone", "k1", "one")),
            (ac, text(a, "phone", "k4", "four")),
        ])
        .await;
    assert_eq!(results.len(), 6);
    let results: Vec<Appended> = results
        .into_iter()
        .map(|r| r.expect("append_many"))
        .collect();
    let seqs: Vec<(u64, bool)> = results
        .iter()
        .map(|r| (r.message.seq.0, r.duplicate))
        .collect();
    assert_eq!(
        seqs,
        [
            (2, false),
            (1, false),
            (1, true),
            (3, false),
            (2, true),
            (2, false)
        ]
    );
    assert_eq!(results[2].message, earlier.message);
    assert_eq!(results[4].message, results[0].message);
    let texts: Vec<String> = timeline(&*s, ab)
        .await
        .into_iter()
        .map(|m| match m.body {
            Body::Text { text } => text,
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(texts, ["before", "one", "three"]);
    assert_eq!(s.last_seq(ac).await.expect("last_seq"), Seq(2));
    assert!(s.append_many(Vec::new()).await.is_empty());
}

/// A reply keeps the seq it quotes through `append`, `append_many`, a retry, pages,
/// the conversation list's last message and an edit of the reply; other messages have
/// none.
pub async fn replies_keep_the_seq_they_quote(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let ac = ConversationId::direct(a, c);
    fill(&*s, ab, a, "m", 2).await;
    let reply = |key: &str, quoted: u64| NewMessage {
        reply_to: Some(Seq(quoted)),
        ..text(b, "phone", key, key)
    };
    let one = s.append(ab, reply("r1", 1)).await.expect("append");
    assert_eq!(
        (one.message.seq, one.message.reply_to),
        (Seq(3), Some(Seq(1)))
    );
    let results = s
        .append_many(vec![
            (ab, reply("r2", 3)),
            (ac, text(a, "phone", "plain", "plain")),
            (ab, reply("r1", 1)),
        ])
        .await;
    let results: Vec<Appended> = results.into_iter().map(|r| r.expect("append")).collect();
    assert_eq!(results[0].message.reply_to, Some(Seq(3)));
    assert_eq!(results[1].message.reply_to, None);
    assert!(results[2].duplicate);
    assert_eq!(
        results[2].message, one.message,
        "a retry returns the reply as stored"
    );

    let quoted: Vec<(u64, Option<Seq>)> = timeline(&*s, ab)
        .await
        .iter()
        .map(|m| (m.seq.0, m.reply_to))
        .collect();
    assert_eq!(
        quoted,
        [(1, None), (2, None), (3, Some(Seq(1))), (4, Some(Seq(3)))]
    );
    let listed = s.conversations(b).await.expect("conversations");
    let last = listed
        .iter()
        .find(|c| c.conversation == ab)
        .and_then(|c| c.last_message.clone())
        .expect("the list shows the conversation's newest message");
    assert_eq!(
        last.reply_to,
        Some(Seq(3)),
        "the list shows the reply as stored"
    );

    s.amend(ab, edit(b, "phone", "e1", 4, "edited", 9_000))
        .await
        .expect("amend");
    let page = s.messages(ab, all(3, 1)).await.expect("messages");
    assert_eq!(page[0].body, plain("edited"));
    assert_eq!(
        page[0].reply_to,
        Some(Seq(3)),
        "an edit keeps what it replies to"
    );
}

/// A forward keeps its origin (first sender and time) through `append`, `append_many`,
/// a retry and pages; other messages have none.
pub async fn forwards_keep_their_origin(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let bc = ConversationId::direct(b, c);
    let origin = Forwarded {
        sender: a,
        sent_at: Timestamp(1_700_000_000_000),
    };
    let forward = |key: &str| NewMessage {
        forwarded: Some(origin),
        mentions: Vec::new(),
        ..text(b, "phone", key, "passed on")
    };
    fill(&*s, ab, a, "m", 1).await;
    let one = s.append(bc, forward("f1")).await.expect("append");
    assert_eq!(one.message.forwarded, Some(origin));
    let results = s
        .append_many(vec![
            (bc, forward("f2")),
            (bc, text(b, "phone", "plain", "mine")),
            (bc, forward("f1")),
        ])
        .await;
    let results: Vec<Appended> = results.into_iter().map(|r| r.expect("append")).collect();
    assert_eq!(results[0].message.forwarded, Some(origin));
    assert_eq!(results[1].message.forwarded, None);
    assert!(results[2].duplicate);
    assert_eq!(
        results[2].message, one.message,
        "a retry returns the forward as stored"
    );
    let origins: Vec<Option<Forwarded>> = timeline(&*s, bc)
        .await
        .iter()
        .map(|m| m.forwarded)
        .collect();
    assert_eq!(origins, [Some(origin), Some(origin), None]);
    assert_eq!(timeline(&*s, ab).await[0].forwarded, None);
}

/// A message is pinned once: pinning it again changes nothing; unpinning says whether
/// it was pinned. Pins are listed newest first, per conversation, and a conversation at
/// its limit refuses a new pin (not a repeated one) until one is unpinned.
pub async fn pins_are_once_per_message_and_keep_their_limit(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let ac = ConversationId::direct(a, c);
    fill(&*s, ab, a, "m", 5).await;
    fill(&*s, ac, a, "m", 1).await;
    let pin = |seq, by, at| Pin {
        seq: Seq(seq),
        by,
        at: Timestamp(at),
    };
    assert!(s.pin(ab, pin(2, a, 1_000), 3).await.expect("pin"));
    assert!(s.pin(ab, pin(4, b, 2_000), 3).await.expect("pin"));
    assert!(
        !s.pin(ab, pin(2, b, 3_000), 3).await.expect("pin"),
        "pinned already"
    );
    assert!(s.pin(ac, pin(1, c, 1_500), 3).await.expect("pin"));
    assert_eq!(
        s.pins(ab).await.expect("pins"),
        [pin(4, b, 2_000), pin(2, a, 1_000)],
        "newest first, the first pin kept"
    );
    assert!(s.pin(ab, pin(5, a, 4_000), 3).await.expect("pin"));
    let full = s.pin(ab, pin(1, a, 5_000), 3).await;
    assert!(
        matches!(full, Err(StorageError::Conflict(PINS_FULL))),
        "{full:?}"
    );
    assert!(
        !s.pin(ab, pin(4, a, 5_000), 3)
            .await
            .expect("a repeat at the limit")
    );
    assert!(s.unpin(ab, Seq(4)).await.expect("unpin"));
    assert!(
        !s.unpin(ab, Seq(4)).await.expect("unpin"),
        "not pinned any more"
    );
    assert!(s.pin(ab, pin(1, a, 6_000), 3).await.expect("room again"));
    let seqs: Vec<u64> = s
        .pins(ab)
        .await
        .expect("pins")
        .iter()
        .map(|p| p.seq.0)
        .collect();
    assert_eq!(seqs, [1, 5, 2]);
    assert_eq!(s.pins(ac).await.expect("pins"), [pin(1, c, 1_500)]);
}

/// Pins made at once never take a conversation over its limit.
pub async fn pins_at_once_keep_the_limit(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let ab = ConversationId::direct(a, b);
    fill(&*s, ab, a, "m", 12).await;
    let tasks: Vec<_> = (1..=12)
        .map(|seq| {
            let s = s.clone();
            let pin = Pin {
                seq: Seq(seq),
                by: a,
                at: Timestamp(seq as i64),
            };
            tokio::spawn(async move { s.pin(ab, pin, 5).await })
        })
        .collect();
    let mut pinned = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(true) => pinned += 1,
            Err(StorageError::Conflict(PINS_FULL)) => {}
            other => panic!("pin: {other:?}"),
        }
    }
    assert_eq!(pinned, 5);
    assert_eq!(s.pins(ab).await.expect("pins").len(), 5);
}

fn reaction_rows(list: &[Reaction]) -> Vec<(u64, UserId, &str)> {
    list.iter()
        .map(|r| (r.seq.0, r.user, r.emoji.as_str()))
        .collect()
}

/// A user has one reaction per message: reacting again replaces it, the same again
/// changes nothing, none removes it. Reactions are listed by seq then user, for a range
/// of seqs of one conversation, with their emoji byte for byte.
pub async fn reactions_are_one_per_user_per_message(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let ac = ConversationId::direct(a, c);
    fill(&*s, ab, a, "m", 3).await;
    fill(&*s, ac, a, "m", 3).await;
    let react = |conversation, seq, user, emoji| {
        let s = s.clone();
        async move {
            s.react(conversation, Seq(seq), user, emoji)
                .await
                .expect("react");
        }
    };
    react(ab, 2, a, Some("🎉")).await;
    react(ab, 1, b, Some("❤️")).await;
    react(ab, 1, a, Some("👍")).await;
    react(ab, 1, a, Some("👍")).await;
    react(ac, 1, c, Some("👀")).await;
    let all = s.reactions(ab, Seq(0), Seq(3)).await.expect("reactions");
    assert_eq!(
        reaction_rows(&all),
        [(1, a, "👍"), (1, b, "❤️"), (2, a, "🎉")],
        "ordered by seq, then user; one per user and message"
    );

    react(ab, 1, a, Some("😂")).await;
    react(ab, 1, b, None).await;
    react(ab, 1, b, None).await;
    react(ab, 3, a, Some("A")).await;
    react(ab, 3, b, Some("a")).await;
    let all = s.reactions(ab, Seq(0), Seq(3)).await.expect("reactions");
    assert_eq!(
        reaction_rows(&all),
        [(1, a, "😂"), (2, a, "🎉"), (3, a, "A"), (3, b, "a")]
    );
    let page = s.reactions(ab, Seq(1), Seq(2)).await.expect("reactions");
    assert_eq!(reaction_rows(&page), [(2, a, "🎉")], "after < seq <= until");
    assert!(
        s.reactions(ab, Seq(2), Seq(2))
            .await
            .expect("reactions")
            .is_empty()
    );
    let other = s.reactions(ac, Seq(0), Seq(3)).await.expect("reactions");
    assert_eq!(reaction_rows(&other), [(1, c, "👀")]);
}

/// Reactions sent at once: one user's to one message leave exactly one of them; many
/// users' are all kept.
pub async fn reactions_at_once_keep_one_per_user(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let ab = ConversationId::direct(a, b);
    fill(&*s, ab, a, "m", 1).await;
    const EMOJI: [&str; 8] = ["👍", "❤️", "😂", "🎉", "👀", "🔥", "💯", "🙏"];
    let tasks: Vec<_> = EMOJI
        .into_iter()
        .map(|e| {
            let s = s.clone();
            tokio::spawn(async move { s.react(ab, Seq(1), a, Some(e)).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("react");
    }
    let after = s.reactions(ab, Seq(0), Seq(1)).await.expect("reactions");
    assert_eq!(after.len(), 1, "one reaction per user: {after:?}");
    assert!(EMOJI.contains(&after[0].emoji.as_str()));

    let mut users = Vec::new();
    for n in 0..12 {
        users.push(user(&*s, &format!("fan{n}")).await.id);
    }
    let tasks: Vec<_> = users
        .iter()
        .map(|&u| {
            let s = s.clone();
            tokio::spawn(async move { s.react(ab, Seq(1), u, Some("🔥")).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("react");
    }
    let after = s.reactions(ab, Seq(0), Seq(1)).await.expect("reactions");
    assert_eq!(after.len(), 13, "every user's reaction is kept");
}

/// Concurrent retries of one message store it exactly once.
pub async fn concurrent_retries_store_once(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.append(conv, text(a, "phone", "same", "once")).await })
        })
        .collect();
    let mut originals = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let r = t.await.expect("task").expect("append");
        if !r.duplicate {
            originals += 1;
        }
        ids.insert(r.message.id);
    }
    assert_eq!(originals, 1);
    assert_eq!(ids.len(), 1, "every retry returns the one stored message");
    assert_eq!(s.last_seq(conv).await.expect("last_seq"), Seq(1));
}

/// `messages` honours after, before, limit and newest, always ascending.
pub async fn history_ranges_return_ascending_pages(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    for i in 1..=10 {
        s.append(conv, text(a, "d", &format!("m{i}"), &format!("{i}")))
            .await
            .expect("append");
    }
    let seqs = |r: MessageRange| {
        let s = s.clone();
        async move {
            s.messages(conv, r)
                .await
                .expect("messages")
                .iter()
                .map(|m| m.seq.0)
                .collect::<Vec<_>>()
        }
    };
    let range = |after: u64, before: Option<u64>, limit: u32, newest: bool| MessageRange {
        after: Seq(after),
        before: before.map(Seq),
        limit,
        newest,
        viewer: None,
    };
    assert_eq!(seqs(range(0, None, 3, false)).await, vec![1, 2, 3]);
    assert_eq!(seqs(range(7, None, 100, false)).await, vec![8, 9, 10]);
    assert_eq!(seqs(range(0, None, 3, true)).await, vec![8, 9, 10]);
    assert_eq!(seqs(range(0, Some(5), 2, true)).await, vec![3, 4]);
    assert_eq!(seqs(range(0, Some(5), 100, true)).await, vec![1, 2, 3, 4]);
    assert_eq!(seqs(range(2, Some(7), 100, false)).await, vec![3, 4, 5, 6]);
    assert_eq!(seqs(range(2, Some(7), 2, false)).await, vec![3, 4]);
    assert_eq!(seqs(range(2, Some(7), 2, true)).await, vec![5, 6]);
    assert!(seqs(range(10, None, 5, false)).await.is_empty());
    assert!(seqs(range(5, Some(6), 5, false)).await.is_empty());
    assert!(seqs(range(0, Some(1), 5, true)).await.is_empty());
    assert!(seqs(range(0, None, 0, false)).await.is_empty());
    let unknown = ConversationId::direct(a, UserId(b.0 + 1000));
    assert!(
        s.messages(unknown, range(0, None, 5, false))
            .await
            .expect("messages")
            .is_empty()
    );
    // Bodies come back as stored.
    let page = s
        .messages(conv, range(3, Some(5), 10, false))
        .await
        .expect("messages");
    assert_eq!(page[0].body, Body::Text { text: "4".into() });
    assert_eq!(page[0].client_id, "m4");
    assert_eq!(page[0].sender, a);
}

/// Read cursors start at 0, only move forward, and an append moves the sender's.
pub async fn read_cursors_never_move_back_and_appends_move_the_sender_s(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    for i in 1..=4 {
        s.append(conv, text(a, "d", &format!("m{i}"), "x"))
            .await
            .expect("append");
    }
    let read_of = |u: UserId| {
        let s = s.clone();
        async move {
            s.conversations(u)
                .await
                .expect("conversations")
                .into_iter()
                .find(|c| c.conversation == conv)
                .map(|c| c.read_seq)
        }
    };
    assert_eq!(
        read_of(a).await,
        Some(Seq(4)),
        "the sender has read its own messages"
    );
    assert_eq!(read_of(b).await, Some(Seq::ZERO));
    assert_eq!(s.set_read(b, conv, Seq(3)).await.expect("set_read"), Seq(3));
    assert_eq!(s.set_read(b, conv, Seq(1)).await.expect("set_read"), Seq(3));
    assert_eq!(read_of(b).await, Some(Seq(3)));
    s.append(conv, text(b, "d", "reply", "y"))
        .await
        .expect("append");
    assert_eq!(read_of(b).await, Some(Seq(5)));
    assert_eq!(read_of(a).await, Some(Seq(4)));
}

/// Direct chats are listed for both users from the first message; groups for members.
pub async fn conversations_list_direct_chats_for_both_and_groups_for_members(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    assert!(s.conversations(a).await.expect("conversations").is_empty());
    let ab = ConversationId::direct(a, b);
    s.append(ab, text(b, "d", "1", "first"))
        .await
        .expect("append");
    s.append(ab, text(a, "d", "2", "second"))
        .await
        .expect("append");
    let group = group(&*s, "g", a, &[c]).await;
    let g = ConversationId::Group(group.id);
    let list = |u| {
        let s = s.clone();
        async move {
            let mut l: Vec<_> = s
                .conversations(u)
                .await
                .expect("conversations")
                .into_iter()
                .map(|c| (c.conversation, c.last_seq, c.last_message.map(|m| m.seq)))
                .collect();
            l.sort();
            l
        }
    };
    let mut want_a = vec![(ab, Seq(2), Some(Seq(2))), (g, Seq(1), Some(Seq(1)))];
    want_a.sort();
    assert_eq!(list(a).await, want_a);
    assert_eq!(list(b).await, vec![(ab, Seq(2), Some(Seq(2)))]);
    assert_eq!(list(c).await, vec![(g, Seq(1), Some(Seq(1)))]);
    // Leaving a group removes it from the list.
    s.update_group(
        group.id,
        GroupChange {
            remove: vec![c],
            ..GroupChange::default()
        },
        system(c, SystemEvent::MemberLeft { user: c }),
    )
    .await
    .expect("leave");
    assert!(list(c).await.is_empty());
}

/// `set_delivered` moves the delivered cursor to `max(current, seq)` and returns that; it
/// leaves the read cursor where it is.
pub async fn delivered_cursors_never_move_back(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    fill(&*s, conv, a, "m", 8).await;
    assert_eq!(own_cursors(&*s, b, conv).await, (Seq::ZERO, Seq::ZERO));
    let deliver = |seq: u64| {
        let s = s.clone();
        async move {
            s.set_delivered(b, conv, Seq(seq))
                .await
                .expect("set_delivered")
        }
    };
    assert_eq!(deliver(3).await, Seq(3));
    assert_eq!(deliver(2).await, Seq(3), "delivered never moves back");
    assert_eq!(deliver(0).await, Seq(3), "delivered never moves back");
    assert_eq!(deliver(3).await, Seq(3));
    assert_eq!(
        own_cursors(&*s, b, conv).await,
        (Seq::ZERO, Seq(3)),
        "delivery is not reading"
    );
    assert_eq!(deliver(6).await, Seq(6));
    assert_eq!(own_cursors(&*s, b, conv).await, (Seq::ZERO, Seq(6)));
    assert_eq!(
        cursor_rows(&*s, conv).await,
        by_user(vec![cursor(a, 8, 8), cursor(b, 6, 0)]),
        "bob's delivery moves only bob's cursor"
    );
}

/// `set_read` moves the delivered cursor along (a delivered cursor is never below the
/// read one, and reading never lowers it), and a non-duplicate append moves the sender's
/// read cursor, so its delivered one too.
pub async fn reads_and_own_appends_move_the_delivered_cursor_along(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    fill(&*s, conv, a, "m", 4).await;
    assert_eq!(
        own_cursors(&*s, a, conv).await,
        (Seq(4), Seq(4)),
        "the sender has read, so got, its own messages"
    );
    assert_eq!(s.set_read(b, conv, Seq(3)).await.expect("set_read"), Seq(3));
    assert_eq!(
        own_cursors(&*s, b, conv).await,
        (Seq(3), Seq(3)),
        "reading moves delivered along"
    );
    assert_eq!(
        s.set_delivered(b, conv, Seq(2))
            .await
            .expect("set_delivered"),
        Seq(3),
        "delivered is already at the read cursor"
    );
    assert_eq!(
        s.set_delivered(b, conv, Seq(4))
            .await
            .expect("set_delivered"),
        Seq(4)
    );
    assert_eq!(s.set_read(b, conv, Seq(1)).await.expect("set_read"), Seq(3));
    assert_eq!(
        own_cursors(&*s, b, conv).await,
        (Seq(3), Seq(4)),
        "reading up to less than delivered leaves delivered alone"
    );

    // Bob's reply: seq 5, read and so delivered by him.
    s.append(conv, text(b, "d", "reply", "y"))
        .await
        .expect("append");
    assert_eq!(own_cursors(&*s, b, conv).await, (Seq(5), Seq(5)));
    assert_eq!(
        own_cursors(&*s, a, conv).await,
        (Seq(4), Seq(4)),
        "an append moves only the sender's cursors"
    );
    // A retry stores nothing and moves nothing.
    let retry = s
        .append(conv, text(a, "d", "m1", "1"))
        .await
        .expect("append");
    assert!(retry.duplicate);
    assert_eq!(own_cursors(&*s, a, conv).await, (Seq(4), Seq(4)));
    assert_eq!(
        cursor_rows(&*s, conv).await,
        by_user(vec![cursor(a, 4, 4), cursor(b, 5, 5)])
    );
}

/// `cursors` lists the cursors with `delivered >= at_least` of users above `after`,
/// ascending by user, the first `limit` of them: paging with the last user of each page
/// visits every matching cursor exactly once.
pub async fn cursor_pages_list_who_got_a_seq_ascending_and_once(s: Arc<dyn Storage>) {
    let mut u = Vec::new();
    for i in 0..10 {
        u.push(user(&*s, &format!("u{i}")).await.id);
    }
    let group = group(&*s, "g", u[0], &u[1..]).await;
    let conv = ConversationId::Group(group.id);
    assert_eq!(
        cursor_rows(&*s, conv).await,
        by_user(u.iter().map(|&m| cursor(m, 1, 1)).collect()),
        "the first members have read, so got, the first message"
    );
    fill(&*s, conv, u[0], "m", 9).await; // seqs 2..=10, read by u0
    let deliver = |who: UserId, seq: u64| {
        let s = s.clone();
        async move {
            s.set_delivered(who, conv, Seq(seq))
                .await
                .expect("set_delivered");
        }
    };
    let read = |who: UserId, seq: u64| {
        let s = s.clone();
        async move {
            s.set_read(who, conv, Seq(seq)).await.expect("set_read");
        }
    };
    deliver(u[1], 4).await;
    read(u[2], 6).await;
    deliver(u[3], 9).await;
    read(u[3], 2).await;
    // u4 stays at 1.
    deliver(u[5], 6).await;
    read(u[6], 10).await;
    deliver(u[7], 3).await;
    read(u[8], 5).await;
    deliver(u[8], 7).await;
    deliver(u[9], 6).await;
    let want = by_user(vec![
        cursor(u[0], 10, 10),
        cursor(u[1], 4, 1),
        cursor(u[2], 6, 6),
        cursor(u[3], 9, 2),
        cursor(u[4], 1, 1),
        cursor(u[5], 6, 1),
        cursor(u[6], 10, 10),
        cursor(u[7], 3, 1),
        cursor(u[8], 7, 5),
        cursor(u[9], 6, 1),
    ]);
    let page = |at_least: u64, after: Option<UserId>, limit: u32| {
        let s = s.clone();
        async move {
            s.cursors(conv, cursor_query(at_least, after, limit))
                .await
                .expect("cursors")
        }
    };
    assert_eq!(page(0, None, 100).await, want);
    for at_least in [0, 1, 4, 6, 7, 9, 10, 11] {
        let matching: Vec<Cursor> = want
            .iter()
            .filter(|c| c.delivered >= Seq(at_least))
            .copied()
            .collect();
        for limit in [1, 2, 3, 100] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let got = page(at_least, after, limit).await;
                let rest: Vec<Cursor> = matching
                    .iter()
                    .filter(|c| after.is_none_or(|a| c.user > a))
                    .copied()
                    .take(limit as usize)
                    .collect();
                assert_eq!(
                    got, rest,
                    "at_least {at_least}, after {after:?}, limit {limit}"
                );
                let Some(last) = got.last() else { break };
                after = Some(last.user);
                seen.extend(got);
                assert!(seen.len() <= want.len(), "paging goes on forever");
            }
            assert_eq!(seen, matching, "at_least {at_least}, limit {limit}");
        }
    }
    // `after` need not be a listed user: here one below the threshold.
    let above_u4: Vec<Cursor> = want
        .iter()
        .filter(|c| c.user > u[4] && c.delivered >= Seq(6))
        .copied()
        .collect();
    assert_eq!(page(6, Some(u[4]), 100).await, above_u4);
    let last_user = want.last().expect("cursors").user;
    assert!(page(0, Some(last_user), 100).await.is_empty());
}

/// `cursors` lists one conversation's cursor rows: a user without one there is absent
/// (also at `at_least` 0), and moving a cursor in one conversation shows in no other.
pub async fn cursors_belong_to_one_conversation_and_only_to_users_with_one(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let ac = ConversationId::direct(a, c);
    fill(&*s, ab, a, "ab", 3).await;
    fill(&*s, ac, c, "ac", 2).await;
    // Bob has no cursor in ab, alice none in ac, bob none anywhere.
    assert_eq!(cursor_rows(&*s, ab).await, vec![cursor(a, 3, 3)]);
    assert_eq!(cursor_rows(&*s, ac).await, vec![cursor(c, 2, 2)]);
    assert_eq!(
        s.cursors(ab, cursor_query(1, None, 10))
            .await
            .expect("cursors"),
        vec![cursor(a, 3, 3)]
    );
    s.set_delivered(b, ab, Seq(2)).await.expect("set_delivered");
    s.set_read(a, ac, Seq(1)).await.expect("set_read");
    assert_eq!(
        cursor_rows(&*s, ab).await,
        by_user(vec![cursor(a, 3, 3), cursor(b, 2, 0)])
    );
    assert_eq!(
        cursor_rows(&*s, ac).await,
        by_user(vec![cursor(a, 1, 1), cursor(c, 2, 2)])
    );
    s.set_delivered(a, ac, Seq(2)).await.expect("set_delivered");
    assert_eq!(
        cursor_rows(&*s, ac).await,
        by_user(vec![cursor(a, 2, 1), cursor(c, 2, 2)])
    );
    assert_eq!(
        cursor_rows(&*s, ab).await,
        by_user(vec![cursor(a, 3, 3), cursor(b, 2, 0)]),
        "alice's cursor in ac is not her cursor in ab"
    );
    assert!(
        cursor_rows(&*s, ConversationId::direct(b, c))
            .await
            .is_empty()
    );
    assert!(
        cursor_rows(&*s, ConversationId::Group(GroupId(4242)))
            .await
            .is_empty()
    );
}

/// `conversations` reports the user's delivered cursor, and in a direct conversation the
/// other user's cursors as `peer`; in a group `peer` is the default (all zero).
pub async fn conversations_report_delivered_and_the_direct_peer_s_cursors(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    fill(&*s, ab, a, "m", 3).await;
    let mine = state(&*s, a, ab).await;
    assert_eq!((mine.read_seq, mine.delivered_seq), (Seq(3), Seq(3)));
    // Bob has no cursor row yet: both of his are 0 (whose the empty peer cursor names is
    // not pinned).
    assert_eq!(
        (mine.peer.delivered, mine.peer.read),
        (Seq::ZERO, Seq::ZERO)
    );
    let theirs = state(&*s, b, ab).await;
    assert_eq!(
        (theirs.read_seq, theirs.delivered_seq),
        (Seq::ZERO, Seq::ZERO)
    );
    assert_eq!(theirs.peer, cursor(a, 3, 3));

    s.set_delivered(b, ab, Seq(2)).await.expect("set_delivered");
    assert_eq!(state(&*s, a, ab).await.peer, cursor(b, 2, 0));
    let theirs = state(&*s, b, ab).await;
    assert_eq!((theirs.read_seq, theirs.delivered_seq), (Seq::ZERO, Seq(2)));
    assert_eq!(theirs.peer, cursor(a, 3, 3));
    s.set_read(b, ab, Seq(3)).await.expect("set_read");
    assert_eq!(state(&*s, a, ab).await.peer, cursor(b, 3, 3));
    assert_eq!(own_cursors(&*s, b, ab).await, (Seq(3), Seq(3)));

    // A group: delivered is reported, peer is empty however the members' cursors stand.
    let group = group(&*s, "g", a, &[b, c]).await;
    let g = ConversationId::Group(group.id);
    fill(&*s, g, c, "g", 2).await; // seqs 2, 3
    s.set_delivered(b, g, Seq(3)).await.expect("set_delivered");
    let bob_g = state(&*s, b, g).await;
    assert_eq!((bob_g.read_seq, bob_g.delivered_seq), (Seq(1), Seq(3)));
    assert_eq!(bob_g.peer, Cursor::default());
    for u in [a, c] {
        assert_eq!(state(&*s, u, g).await.peer, Cursor::default());
    }
    assert_eq!(
        own_cursors(&*s, b, ab).await,
        (Seq(3), Seq(3)),
        "the group's cursors are not the direct chat's"
    );
}

/// `amend` appends its event with the next seq and, in the same step, gives the target
/// the new body with `edited_at` = the event's `sent_at`; nothing else changes.
pub async fn amend_appends_its_event_and_rewrites_the_target(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let ac = ConversationId::direct(a, c);
    fill(&*s, ab, a, "m", 3).await;
    fill(&*s, ac, a, "m", 2).await;
    let before = timeline(&*s, ab).await;
    let other_before = timeline(&*s, ac).await;

    let change = edit(a, "d", "e1", 2, "two, edited", 5_000);
    let r = s.amend(ab, change.clone()).await.expect("amend");
    assert!(!r.duplicate);
    let event = &r.message;
    assert_eq!(event.seq, Seq(4), "the event takes the next seq");
    assert_eq!(event.conversation, ab);
    assert_eq!(
        (event.sender, &event.sender_device, event.client_id.as_str()),
        (a, &device_id("d"), "e1")
    );
    assert_eq!(event.body, change.event.body);
    assert_eq!((event.sent_at, event.edited_at), (Timestamp(5_000), None));
    let after = timeline(&*s, ab).await;
    let mut want = before.clone();
    want[1].body = plain("two, edited");
    want[1].edited_at = Some(Timestamp(5_000));
    want.push(r.message.clone());
    assert_eq!(
        after, want,
        "only the target changed, and the event was appended"
    );
    assert_eq!(s.last_seq(ab).await.expect("last_seq"), Seq(4));

    // A second edit of the same message: another event, the newer body and time.
    let r2 = s
        .amend(ab, edit(a, "d", "e2", 2, "two, again", 6_000))
        .await
        .expect("amend");
    assert_eq!((r2.message.seq, r2.duplicate), (Seq(5), false));
    let target = &timeline(&*s, ab).await[1];
    assert_eq!(
        (&target.body, target.edited_at),
        (&plain("two, again"), Some(Timestamp(6_000)))
    );
    // The first seq is a target too; an event (the newest) is not.
    s.amend(ab, edit(a, "d", "e3", 1, "one, edited", 7_000))
        .await
        .expect("amend seq 1");
    match s
        .amend(ab, edit(a, "d", "e4", 6, "event, edited", 8_000))
        .await
    {
        Err(StorageError::Conflict(_)) => {}
        other => panic!("amending an event gave {other:?}"),
    }
    let after = timeline(&*s, ab).await;
    assert_eq!(after.len(), 6);
    assert_eq!(
        (&after[0].body, after[0].edited_at),
        (&plain("one, edited"), Some(Timestamp(7_000)))
    );
    assert_eq!(
        timeline(&*s, ac).await,
        other_before,
        "seq 2 of another conversation is another message"
    );
}

/// A retried amend (same conversation, sender, device and client id) returns the first
/// event with `duplicate: true` and changes nothing, whatever body or target it carries.
pub async fn amend_retries_change_nothing(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    fill(&*s, conv, a, "m", 3).await;
    let first = s
        .amend(conv, edit(a, "d", "e1", 2, "first edit", 5_000))
        .await
        .expect("amend");
    assert!(!first.duplicate);
    let stored = timeline(&*s, conv).await;
    let retries = [
        edit(a, "d", "e1", 2, "first edit", 5_000),
        edit(a, "d", "e1", 2, "second edit", 6_000),
        edit(a, "d", "e1", 3, "another target", 7_000),
    ];
    for retry in retries {
        let again = s.amend(conv, retry.clone()).await.expect("amend");
        assert!(again.duplicate, "{retry:?}");
        assert_eq!(again.message, first.message, "the first event comes back");
        assert_eq!(
            timeline(&*s, conv).await,
            stored,
            "a duplicate changes nothing: {retry:?}"
        );
    }
    // Another device, or another sender, is not the same key.
    let laptop = s
        .amend(conv, edit(a, "laptop", "e1", 2, "from the laptop", 8_000))
        .await
        .expect("amend");
    let bob = s
        .amend(conv, edit(b, "d", "e1", 3, "from bob", 9_000))
        .await
        .expect("amend");
    assert_eq!(
        (
            laptop.duplicate,
            laptop.message.seq,
            bob.duplicate,
            bob.message.seq
        ),
        (false, Seq(5), false, Seq(6))
    );
    let now = timeline(&*s, conv).await;
    assert_eq!(
        (&now[1].body, now[1].edited_at),
        (&plain("from the laptop"), Some(Timestamp(8_000)))
    );
    assert_eq!(
        (&now[2].body, now[2].edited_at),
        (&plain("from bob"), Some(Timestamp(9_000)))
    );
}

/// `amend` of a seq that does not exist (0, or beyond the last, also the seq its own
/// event would get) fails with `NotFound` and appends nothing.
pub async fn amend_of_a_missing_message_is_not_found_and_appends_nothing(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let conv = ConversationId::direct(a, b);
    fill(&*s, conv, a, "m", 3).await;
    let stored = timeline(&*s, conv).await;
    for target in [0, 4, 5, 1_000] {
        let r = s
            .amend(conv, edit(a, "d", "e1", target, "nothing", 5_000))
            .await;
        assert!(is_not_found(r), "target {target}");
        assert_eq!(
            s.last_seq(conv).await.expect("last_seq"),
            Seq(3),
            "a refused amend appends nothing (target {target})"
        );
        assert_eq!(timeline(&*s, conv).await, stored);
    }
    // A conversation with no messages at all.
    let empty = ConversationId::direct(a, c);
    let r = s
        .amend(empty, edit(a, "d", "e1", 1, "nothing", 5_000))
        .await;
    assert!(is_not_found(r));
    assert_eq!(s.last_seq(empty).await.expect("last_seq"), Seq::ZERO);
    assert!(
        s.conversations(c).await.expect("conversations").is_empty(),
        "a refused amend starts no conversation"
    );
    // The refused calls did not take the key: the same key now goes through.
    let r = s
        .amend(conv, edit(a, "d", "e1", 3, "three, edited", 6_000))
        .await
        .expect("amend");
    assert_eq!((r.message.seq, r.duplicate), (Seq(4), false));
}

/// Concurrent retries of one amend apply it once: one event is stored, every call returns
/// it, and the target carries that event's body and time.
pub async fn concurrent_amend_retries_apply_once(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    fill(&*s, conv, a, "m", 2).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.amend(
                    conv,
                    edit(a, "d", "same", 1, &format!("edit {i}"), 5_000 + i),
                )
                .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut ids = HashSet::new();
    for t in tasks {
        let r = t.await.expect("task").expect("amend");
        ids.insert(r.message.id);
        if !r.duplicate {
            winners.push(r.message);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one call stored the event");
    assert_eq!(ids.len(), 1, "every retry returns the one stored event");
    let event = &winners[0];
    assert_eq!(s.last_seq(conv).await.expect("last_seq"), Seq(3));
    let stored = timeline(&*s, conv).await;
    assert_eq!(&stored[2], event);
    let Body::System {
        event: SystemEvent::MessageEdited { body, .. },
    } = &event.body
    else {
        panic!("the stored event is the edit: {event:?}");
    };
    assert_eq!(
        (&stored[0].body, stored[0].edited_at),
        (&**body, Some(event.sent_at)),
        "the target carries the body and time of the event that was stored"
    );
}

/// A recall of `target` by `sender`, keyed `client_id`.
fn recall(sender: UserId, client_id: &str, target: u64) -> Amendment {
    let event = SystemEvent::MessageRecalled {
        seq: Seq(target),
        by: sender,
    };
    Amendment {
        target: Seq(target),
        body: Body::System {
            event: event.clone(),
        },
        event: NewMessage {
            sender,
            sender_device: device_id("d"),
            client_id: client_id.to_owned(),
            body: Body::System { event },
            sent_at: Timestamp::now(),
            reply_to: None,
            forwarded: None,
            mentions: Vec::new(),
        },
    }
}

/// A system message (an event, or one recalled already) cannot be amended: `Conflict`,
/// nothing stored. Of several recalls of one message at the same moment (two devices),
/// exactly one stores its event; and an edit racing a recall never leaves the recalled
/// message with the edited text.
pub async fn a_recalled_message_cannot_be_amended_even_at_once(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    fill(&*s, conv, a, "m", 8).await;
    s.amend(conv, recall(a, "r1", 1)).await.expect("recall");
    for again in [recall(a, "r1-again", 1), edit(a, "d", "e1", 1, "new", 1)] {
        match s.amend(conv, again).await {
            Err(StorageError::Conflict(_)) => {}
            other => panic!("amending a recalled message gave {other:?}"),
        }
    }
    // Retrying the recall that was stored is still a duplicate, not a conflict.
    assert!(
        s.amend(conv, recall(a, "r1", 1))
            .await
            .expect("retry")
            .duplicate
    );
    assert_eq!(s.last_seq(conv).await.expect("last_seq"), Seq(9));

    // Recalls of messages 2..=4, four devices each, all at once.
    let tasks: Vec<_> = (2..=4u64)
        .flat_map(|target| (0..4).map(move |device| (target, device)))
        .map(|(target, device)| {
            let s = s.clone();
            tokio::spawn(async move {
                (
                    target,
                    s.amend(conv, recall(a, &format!("r{target}-{device}"), target))
                        .await,
                )
            })
        })
        .collect();
    let mut stored = HashMap::new();
    for t in tasks {
        match t.await.expect("task") {
            (target, Ok(appended)) => {
                assert!(!appended.duplicate);
                *stored.entry(target).or_insert(0) += 1;
            }
            (_, Err(StorageError::Conflict(_))) => {}
            (_, Err(e)) => panic!("a recall failed: {e}"),
        }
    }
    assert_eq!(stored, HashMap::from([(2, 1), (3, 1), (4, 1)]));
    // An edit and a recall of each of messages 5..=8 at once.
    let tasks: Vec<_> = (5..=8u64)
        .map(|target| {
            let s = s.clone();
            let edit_it = tokio::spawn({
                let s = s.clone();
                async move {
                    s.amend(
                        conv,
                        edit(a, "d", &format!("e{target}"), target, "edited", 1),
                    )
                    .await
                }
            });
            let recall_it = tokio::spawn(async move {
                s.amend(conv, recall(a, &format!("r{target}"), target))
                    .await
            });
            (edit_it, recall_it)
        })
        .collect();
    for (edit_it, recall_it) in tasks {
        recall_it.await.expect("task").expect("the recall");
        match edit_it.await.expect("task") {
            Ok(_) | Err(StorageError::Conflict(_)) => {}
            Err(e) => panic!("the edit failed: {e}"),
        }
    }
    let t = timeline(&*s, conv).await;
    for m in &t[..8] {
        assert!(
            matches!(
                m.body,
                Body::System {
                    event: SystemEvent::MessageRecalled { .. }
                }
            ),
            "message {} is not recalled: {:?}",
            m.seq.0,
            m.body
        );
    }
    let recalls = t
        .iter()
        .filter(|m| {
            m.seq.0 > 8
                && matches!(
                    m.body,
                    Body::System {
                        event: SystemEvent::MessageRecalled { .. }
                    }
                )
        })
        .count();
    assert_eq!(recalls, 8, "one recall event per message");
}

/// A message from `sender` (keyed `client_id`) showing the upload at `url`: an image, or
/// a file when `file`.
fn attachment(sender: UserId, client_id: &str, url: &str, file: bool) -> NewMessage {
    let body = if file {
        Body::File {
            url: url.to_owned(),
            mime: "application/pdf".to_owned(),
            size: 1_000,
            name: "notes.pdf".to_owned(),
        }
    } else {
        Body::Image {
            url: url.to_owned(),
            mime: "image/png".to_owned(),
            size: 68,
            width: Some(1),
            height: Some(1),
        }
    };
    NewMessage {
        body,
        ..text(sender, "d", client_id, "")
    }
}

/// `attachment_use` finds a live message naming an url (the newest in a conversation, or
/// any), through `append` and `append_many`; once recalled or edited away a message no
/// longer names it. Recalls and edits of messages naming one url, in several
/// conversations at once, leave it named nowhere. A store that cannot tell
/// (`Unsupported`, the default) skips this scenario, loudly.
pub async fn attachments_are_found_while_a_live_message_names_them(s: Arc<dyn Storage>) {
    const PHOTO: &str = "/v1/attachments/00000000000000000000000000000001";
    const PDF: &str = "/v1/attachments/00000000000000000000000000000002";
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let ac = ConversationId::direct(a, c);
    match s.attachment_use(PHOTO, None).await {
        Err(StorageError::Unsupported(what)) => {
            eprintln!("SKIPPED: this store cannot {what} (MessageStore::attachment_use)");
            return;
        }
        other => assert_eq!(other.expect("attachment_use"), None, "nothing names it yet"),
    }
    s.append(ab, attachment(a, "p1", PHOTO, false))
        .await
        .expect("append");
    fill(&*s, ab, a, "t", 1).await;
    let batch = s
        .append_many(vec![
            (ab, attachment(a, "p2", PDF, true)),
            (ac, attachment(a, "p3", PHOTO, false)),
        ])
        .await;
    assert!(batch.iter().all(Result::is_ok), "{batch:?}");
    let found = |url: &'static str, conversation: Option<ConversationId>| {
        let s = s.clone();
        async move {
            s.attachment_use(url, conversation)
                .await
                .expect("attachment_use")
        }
    };
    assert_eq!(found(PHOTO, Some(ab)).await, Some((ab, Seq(1))));
    assert_eq!(found(PHOTO, Some(ac)).await, Some((ac, Seq(1))));
    assert_eq!(found(PDF, Some(ab)).await, Some((ab, Seq(3))));
    assert_eq!(
        found(PDF, Some(ac)).await,
        None,
        "not shown in that conversation"
    );
    let anywhere = found(PHOTO, None).await;
    assert!(
        anywhere == Some((ab, Seq(1))) || anywhere == Some((ac, Seq(1))),
        "{anywhere:?}"
    );
    assert_eq!(found("/v1/attachments/nothing", None).await, None);
    assert_eq!(found("1", None).await, None, "a text is not an attachment");

    // The newest in a conversation; a recall takes one message away, not the others.
    s.append(ab, attachment(b, "p4", PHOTO, false))
        .await
        .expect("append");
    assert_eq!(found(PHOTO, Some(ab)).await, Some((ab, Seq(4))));
    s.amend(ab, recall(b, "r4", 4)).await.expect("recall");
    assert_eq!(found(PHOTO, Some(ab)).await, Some((ab, Seq(1))));
    s.amend(ab, recall(a, "r1", 1)).await.expect("recall");
    assert_eq!(found(PHOTO, Some(ab)).await, None, "every one recalled");
    assert_eq!(
        found(PHOTO, None).await,
        Some((ac, Seq(1))),
        "shown elsewhere still"
    );
    // An edit to another body stops naming it, too.
    s.amend(ac, edit(a, "d", "e1", 1, "words instead", 1))
        .await
        .expect("edit");
    assert_eq!(found(PHOTO, None).await, None);
    assert_eq!(found(PDF, None).await, Some((ab, Seq(3))));

    // Eight conversations show one file; each message is recalled and edited at once.
    const SHARED: &str = "/v1/attachments/00000000000000000000000000000003";
    let mut conversations = Vec::new();
    for n in 0..8 {
        let other = user(&*s, &format!("friend{n}")).await.id;
        let conversation = ConversationId::direct(a, other);
        s.append(conversation, attachment(a, "shared", SHARED, n % 2 == 0))
            .await
            .expect("append");
        conversations.push(conversation);
    }
    assert!(found(SHARED, None).await.is_some());
    let tasks: Vec<_> = conversations
        .iter()
        .flat_map(|&conversation| {
            let (s1, s2) = (s.clone(), s.clone());
            [
                tokio::spawn(async move { s1.amend(conversation, recall(a, "r", 1)).await }),
                tokio::spawn(async move {
                    s2.amend(conversation, edit(a, "d", "e", 1, "gone", 2))
                        .await
                }),
            ]
        })
        .collect();
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) | Err(StorageError::Conflict(_)) => {}
            Err(e) => panic!("an amend failed: {e}"),
        }
    }
    assert_eq!(
        found(SHARED, None).await,
        None,
        "named nowhere after the amends"
    );
    for conversation in conversations {
        assert_eq!(found(SHARED, Some(conversation)).await, None);
    }
}

/// While amends run, a reader never sees an amend half done: an edit event without the
/// new body on its target, or a new body without its event.
pub async fn amends_are_seen_whole(s: Arc<dyn Storage>) {
    const TARGETS: u64 = 200;
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    fill(&*s, conv, a, "m", TARGETS).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (s, done) = (s.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = 0u32;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let t = timeline(&*s, conv).await;
                let events: Vec<(Seq, &Body)> = t
                    .iter()
                    .filter_map(|m| match &m.body {
                        Body::System {
                            event: SystemEvent::MessageEdited { seq, body },
                        } => Some((*seq, &**body)),
                        _ => None,
                    })
                    .collect();
                let edited = t.iter().filter(|m| m.edited_at.is_some()).count();
                assert_eq!(
                    edited,
                    events.len(),
                    "as many targets edited as edit events stored"
                );
                for (seq, body) in events {
                    assert_eq!(&t[seq.0 as usize - 1].body, body, "target {seq:?}");
                }
                reads += 1;
                if finished {
                    return reads;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (1..=TARGETS)
        .map(|target| {
            let s = s.clone();
            tokio::spawn(async move {
                s.amend(
                    conv,
                    edit(a, "d", &format!("e{target}"), target, "edited", 5_000),
                )
                .await
                .expect("amend");
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.await.expect("reader") > 0);
    assert_eq!(s.last_seq(conv).await.expect("last_seq"), Seq(2 * TARGETS));
}

/// The seqs `viewer` sees of `(after, before)`: the `limit` oldest, or newest.
async fn visible(
    s: &dyn Storage,
    viewer: Option<UserId>,
    conversation: ConversationId,
    after: u64,
    before: Option<u64>,
    limit: u32,
    newest: bool,
) -> Vec<u64> {
    let range = MessageRange {
        after: Seq(after),
        before: before.map(Seq),
        limit,
        newest,
        viewer,
    };
    s.messages(conversation, range)
        .await
        .expect("messages")
        .into_iter()
        .map(|m| m.seq.0)
        .collect()
}

/// `messages` with a viewer leaves out what that viewer hid, and still fills the page
/// from the rest of the range (so paging never stalls on hidden messages); hiding twice
/// is fine; without a viewer nothing is left out.
pub async fn pages_leave_out_what_the_viewer_hid_and_stay_full(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let conv = ConversationId::direct(a, b);
    fill(&*s, conv, a, "m", 10).await;
    for seq in [7, 3, 9, 5, 5, 3] {
        s.hide(a, conv, Seq(seq))
            .await
            .expect("hiding, also twice, is fine");
    }
    let me = Some(a);
    assert_eq!(
        visible(&*s, me, conv, 0, None, 100, false).await,
        vec![1, 2, 4, 6, 8, 10]
    );
    assert_eq!(
        visible(&*s, me, conv, 0, None, 3, false).await,
        vec![1, 2, 4],
        "the page is filled past the hidden ones"
    );
    assert_eq!(visible(&*s, me, conv, 2, None, 2, false).await, vec![4, 6]);
    assert_eq!(
        visible(&*s, me, conv, 0, None, 3, true).await,
        vec![6, 8, 10]
    );
    assert_eq!(
        visible(&*s, me, conv, 0, Some(9), 2, true).await,
        vec![6, 8]
    );
    assert_eq!(
        visible(&*s, me, conv, 2, Some(4), 10, false).await,
        Vec::<u64>::new()
    );
    assert_eq!(
        visible(&*s, None, conv, 0, None, 100, false).await,
        (1..=10).collect::<Vec<_>>(),
        "no viewer, nothing left out"
    );
    assert_eq!(
        visible(&*s, Some(b), conv, 0, None, 100, false).await,
        (1..=10).collect::<Vec<_>>(),
        "the other user hid nothing"
    );
}

/// Hiding is one user's, in one conversation: nobody else's view changes, and the
/// timeline itself is untouched.
pub async fn hiding_is_per_user_and_per_conversation(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let ac = ConversationId::direct(a, c);
    fill(&*s, ab, a, "ab", 8).await;
    fill(&*s, ac, c, "ac", 8).await;
    let group = group(&*s, "g", a, &[b, c]).await;
    let g = ConversationId::Group(group.id);
    fill(&*s, g, b, "g", 7).await;
    let stored = timeline(&*s, ab).await;
    for (who, conv, seq) in [
        (a, ab, 2),
        (a, ab, 4),
        (b, ab, 4),
        (b, ab, 6),
        (a, ac, 3),
        (c, g, 5),
    ] {
        s.hide(who, conv, Seq(seq)).await.expect("hide");
    }
    let all = |conv: ConversationId| {
        let s = s.clone();
        async move { visible(&*s, None, conv, 0, None, 100, false).await }
    };
    let hidden = |who: UserId, conv: ConversationId| {
        let s = s.clone();
        let all = all(conv);
        async move {
            let seen = visible(&*s, Some(who), conv, 0, None, 100, false).await;
            all.await
                .into_iter()
                .filter(|q| !seen.contains(q))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(hidden(a, ab).await, vec![2, 4]);
    assert_eq!(hidden(b, ab).await, vec![4, 6]);
    assert_eq!(hidden(a, ac).await, vec![3]);
    assert!(hidden(c, ac).await.is_empty());
    assert!(hidden(c, ab).await.is_empty());
    assert_eq!(hidden(c, g).await, vec![5]);
    assert!(hidden(a, g).await.is_empty());
    assert!(hidden(b, g).await.is_empty());
    assert_eq!(
        timeline(&*s, ab).await,
        stored,
        "hiding deletes nothing from the timeline"
    );
}

/// A page of `user`'s search for `text`: the found messages' texts (or file names),
/// newest first.
async fn found(
    s: &dyn Storage,
    user: UserId,
    text: &str,
    conversation: Option<ConversationId>,
) -> Vec<String> {
    search_page(s, user, text, conversation, None, 50)
        .await
        .iter()
        .map(|m| match &m.body {
            Body::Text { text } => text.clone(),
            Body::File { name, .. } => name.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

async fn search_page(
    s: &dyn Storage,
    user: UserId,
    text: &str,
    conversation: Option<ConversationId>,
    before: Option<MessageId>,
    limit: u32,
) -> Vec<Message> {
    let query = SearchQuery {
        terms: SearchTerms::parse(text).expect("a query with words"),
        conversation,
        before,
        limit,
    };
    s.search(user, &query).await.expect("search")
}

/// Search finds the messages holding every term (words, or words a term of two or more
/// characters starts; Chinese by characters and pairs), newest first, in pages, only in
/// the conversations the user may read: their direct chats, and their groups from the
/// seq they joined at. Images, custom bodies and system messages are not indexed.
pub async fn search_finds_every_term_newest_first_where_the_user_may_read(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    let bc = ConversationId::direct(b, c);
    let say = |sender, conversation: ConversationId, client_id: &str, words: &str| {
        let s = s.clone();
        let m = text(sender, "d", client_id, words);
        async move { s.append(conversation, m).await.expect("append").message }
    };
    say(a, ab, "1", "Pineapple pizza tonight?").await;
    say(b, ab, "2", "Banana bread recipe").await;
    say(b, ab, "3", "pineapple smoothie, maybe").await;
    let mut file = text(a, "d", "4", "");
    file.body = Body::File {
        url: "/f/1".into(),
        mime: "application/pdf".into(),
        size: 10,
        name: "Quarterly-Report.pdf".into(),
    };
    s.append(ab, file).await.expect("append");
    let mut custom = text(a, "d", "5", "");
    custom.body = Body::Custom {
        data: serde_json::json!({"text": "pineapple"}),
    };
    s.append(ab, custom).await.expect("append");
    let mut image = text(a, "d", "6", "");
    image.body = Body::Image {
        url: "/f/pineapple.png".into(),
        mime: "image/png".into(),
        size: 10,
        width: None,
        height: None,
    };
    s.append(ab, image).await.expect("append");
    say(a, ab, "7", "今天吃菠萝披萨").await;
    say(c, bc, "8", "pineapple secret between bob and carol").await;
    let gid = group(&*s, "Pineapple club", a, &[b]).await.id;
    let g = ConversationId::Group(gid);
    say(b, g, "9", "pineapple party before carol").await;
    // carol joins: she reads the group from the seq of her joining on.
    let add_carol = GroupChange {
        add: vec![(c, Role::Member)],
        ..GroupChange::default()
    };
    let record = SystemEvent::MembersAdded {
        by: a,
        users: vec![c],
    };
    s.update_group(gid, add_carol, system(a, record))
        .await
        .expect("add carol");
    say(a, g, "10", "pineapple party with carol").await;

    assert_eq!(
        found(&*s, a, "pine", None).await,
        [
            "pineapple party with carol",
            "pineapple party before carol",
            "pineapple smoothie, maybe",
            "Pineapple pizza tonight?",
        ],
        "alice: her chat with bob and her group, not bob's chat with carol, nor the \
         group's name (a system message), the custom body or the image"
    );
    assert_eq!(
        found(&*s, c, "PINEAPPLE", None).await,
        [
            "pineapple party with carol",
            "pineapple secret between bob and carol"
        ],
        "carol: the group from her joining on, and her chat with bob"
    );
    assert_eq!(
        found(&*s, a, "pizza pineapple", None).await,
        ["Pineapple pizza tonight?"],
        "every term"
    );
    assert_eq!(
        found(&*s, a, "pizza banana", None).await,
        Vec::<String>::new()
    );
    assert_eq!(
        found(&*s, b, "quarterly", None).await,
        ["Quarterly-Report.pdf"],
        "file names are indexed"
    );
    assert_eq!(
        found(&*s, b, "apple", None).await,
        Vec::<String>::new(),
        "terms start words"
    );
    assert_eq!(
        found(&*s, b, "p", None).await,
        Vec::<String>::new(),
        "a one-letter term is a whole word"
    );
    for query in ["菠萝", "萝", "菠萝披萨"] {
        assert_eq!(
            found(&*s, b, query, None).await,
            ["今天吃菠萝披萨"],
            "{query}"
        );
    }
    assert_eq!(found(&*s, b, "萝菠", None).await, Vec::<String>::new());
    assert_eq!(
        found(&*s, b, "pineapple", Some(g)).await,
        ["pineapple party with carol", "pineapple party before carol"],
        "one conversation"
    );
    assert_eq!(
        found(&*s, a, "pineapple", Some(bc)).await,
        Vec::<String>::new(),
        "not another's conversation, even when named"
    );

    // Pages: newest first, each below the last one's id.
    let first = search_page(&*s, a, "pineapple", None, None, 3).await;
    assert_eq!(first.len(), 3);
    let rest = search_page(&*s, a, "pineapple", None, Some(first[2].id), 3).await;
    let ids: Vec<MessageId> = first.iter().chain(&rest).map(|m| m.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    sorted.dedup();
    assert_eq!(ids, sorted, "descending and without repeats");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].conversation, ab);
    assert_eq!(rest[0].seq, Seq(1), "the message, whole");
    assert_eq!(rest[0].sender, a);
}

/// Search leaves out what the user hid (only for them), finds an edited message by its
/// new text only and a recalled one not at all, stops finding a group's messages once
/// the user left it, and finds a word of any length by its start.
pub async fn search_leaves_out_hidden_recalled_and_left_behind(s: Arc<dyn Storage>) {
    let (a, b, _) = alice_bob_carol(&*s).await;
    let ab = ConversationId::direct(a, b);
    for (n, words) in ["mango lassi", "mango chutney", "papaya salad"]
        .iter()
        .enumerate()
    {
        s.append(ab, text(a, "d", &n.to_string(), words))
            .await
            .expect("append");
    }
    s.hide(a, ab, Seq(1)).await.expect("hide");
    assert_eq!(found(&*s, a, "mango", None).await, ["mango chutney"]);
    assert_eq!(
        found(&*s, b, "mango", None).await,
        ["mango chutney", "mango lassi"],
        "hidden for alice only"
    );

    s.amend(ab, edit(a, "d", "e1", 3, "guava salad", 5_000))
        .await
        .expect("edit");
    assert_eq!(found(&*s, b, "papaya", None).await, Vec::<String>::new());
    assert_eq!(found(&*s, b, "guava", None).await, ["guava salad"]);
    s.amend(ab, recall(a, "r1", 2)).await.expect("recall");
    assert_eq!(
        found(&*s, b, "mango", None).await,
        ["mango lassi"],
        "recalled: not found"
    );

    let gid = group(&*s, "fruit", a, &[b]).await.id;
    let g = ConversationId::Group(gid);
    s.append(g, text(a, "d", "g1", "durian season"))
        .await
        .expect("append");
    assert_eq!(found(&*s, b, "durian", None).await, ["durian season"]);
    s.update_group(
        gid,
        GroupChange {
            remove: vec![b],
            ..GroupChange::default()
        },
        system(b, SystemEvent::MemberLeft { user: b }),
    )
    .await
    .expect("bob leaves");
    assert_eq!(
        found(&*s, b, "durian", None).await,
        Vec::<String>::new(),
        "not a member any more"
    );
    assert_eq!(found(&*s, a, "durian", None).await, ["durian season"]);

    // A word of kilobytes (a pasted key) is stored, and found by its start.
    let key = format!("key {}", "k".repeat(3_000));
    s.append(ab, text(a, "d", "long", &key))
        .await
        .expect("a long word is stored");
    assert_eq!(found(&*s, b, &"k".repeat(70), None).await, [key]);
}

/// The mention mark of `user` in `conversation`, as `conversations` reports it.
async fn mention_seq(s: &dyn Storage, user: UserId, conversation: ConversationId) -> Seq {
    s.conversations(user)
        .await
        .expect("conversations")
        .into_iter()
        .find(|c| c.conversation == conversation)
        .map(|c| c.mention_seq)
        .expect("the conversation is listed")
}

/// A message keeps the users it mentions, and each of them gets the conversation's
/// mention mark (the newest seq that mentions them), raised with the append, one batch
/// or one message at a time, and never lowered; reading does not change it.
pub async fn mentions_are_kept_and_mark_the_mentioned(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let g = ConversationId::Group(group(&*s, "team", a, &[b, c]).await.id);
    let mention = |client_id: &str, words: &str, who: &[UserId]| {
        let mut m = text(a, "d", client_id, words);
        m.mentions = who.to_vec();
        m
    };
    let first = s
        .append(g, mention("1", "bob, look", &[b]))
        .await
        .expect("append")
        .message;
    assert_eq!(first.mentions, [b]);
    assert_eq!(mention_seq(&*s, b, g).await, first.seq);
    assert_eq!(mention_seq(&*s, c, g).await, Seq::ZERO);
    assert_eq!(
        mention_seq(&*s, a, g).await,
        Seq::ZERO,
        "the sender is not marked"
    );

    // A batch: the newest of its mentions counts, for each user.
    let results = s
        .append_many(vec![
            (g, mention("2", "both of you", &[b, c])),
            (g, text(a, "d", "3", "no one")),
            (g, mention("4", "carol again", &[c])),
        ])
        .await;
    let seqs: Vec<Seq> = results
        .into_iter()
        .map(|r| r.expect("append").message.seq)
        .collect();
    assert_eq!(mention_seq(&*s, b, g).await, seqs[0]);
    assert_eq!(mention_seq(&*s, c, g).await, seqs[2]);
    let stored = timeline(&*s, g).await;
    let kept: Vec<Vec<UserId>> = stored.iter().map(|m| m.mentions.clone()).collect();
    assert_eq!(kept[first.seq.0 as usize - 1], [b]);
    assert_eq!(kept[seqs[0].0 as usize - 1], [b, c], "in the order given");
    assert!(kept[seqs[1].0 as usize - 1].is_empty());

    // Reading moves the cursor, not the mark; a retry changes nothing.
    s.set_read(b, g, seqs[2]).await.expect("read");
    assert_eq!(mention_seq(&*s, b, g).await, seqs[0]);
    let again = s
        .append(g, mention("1", "bob, look", &[b]))
        .await
        .expect("retry");
    assert!(again.duplicate);
    assert_eq!(mention_seq(&*s, b, g).await, seqs[0]);

    // In a direct chat too.
    let ab = ConversationId::direct(a, b);
    let m = s
        .append(ab, mention("5", "you there?", &[b]))
        .await
        .expect("append")
        .message;
    assert_eq!(mention_seq(&*s, b, ab).await, m.seq);
}

/// Messages mentioning one user, appended at once, leave the mark at the newest of them.
pub async fn mentions_at_once_leave_the_newest_mark(s: Arc<dyn Storage>) {
    let (a, b, c) = alice_bob_carol(&*s).await;
    let g = ConversationId::Group(group(&*s, "team", a, &[b, c]).await.id);
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let s = s.clone();
            let sender = if n % 2 == 0 { a } else { c };
            let mut m = text(sender, "d", &format!("m{n}"), "@bob");
            m.mentions = vec![b];
            tokio::spawn(async move { s.append(g, m).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("append");
    }
    let last = s.last_seq(g).await.expect("last seq");
    assert_eq!(mention_seq(&*s, b, g).await, last);
}

/// A pin and an unpin of one message at once give answers that match what is stored,
/// whichever ran first, with or without an earlier pin of it.
pub async fn a_pin_and_an_unpin_at_once_agree_with_what_is_stored(s: Arc<dyn Storage>) {
    let (a, b) = (user(&*s, "alice").await.id, user(&*s, "bob").await.id);
    let ab = ConversationId::direct(a, b);
    fill(&*s, ab, a, "m", 1).await;
    for round in 0..20 {
        let pinned_before = round % 2 == 1;
        if pinned_before {
            let pin = Pin {
                seq: Seq(1),
                by: b,
                at: Timestamp(round),
            };
            s.pin(ab, pin, 10).await.expect("pin first");
        }
        let pin = {
            let s = s.clone();
            let pin = Pin {
                seq: Seq(1),
                by: a,
                at: Timestamp(1_000 + round),
            };
            tokio::spawn(async move { s.pin(ab, pin, 10).await })
        };
        let unpin = {
            let s = s.clone();
            tokio::spawn(async move { s.unpin(ab, Seq(1)).await })
        };
        let pinned = pin.await.expect("task").expect("pin");
        let unpinned = unpin.await.expect("task").expect("unpin");
        let stored = !s.pins(ab).await.expect("pins").is_empty();
        if pinned_before {
            // The unpin removes a pin either way: the earlier one (then the pin, later,
            // pins again) or the one just made over it (then the pin changed nothing).
            assert!(unpinned, "round {round}: no pin was found to remove");
            assert_eq!(stored, pinned, "round {round}: answers and state disagree");
        } else {
            assert!(pinned, "round {round}: the pin did not apply");
            // The unpin ran either before the pin (found nothing) or after (removed it).
            assert_eq!(
                stored, !unpinned,
                "round {round}: answers and state disagree"
            );
        }
        s.unpin(ab, Seq(1)).await.expect("clean up");
    }
}

/// `set_disabled` marks and clears a disabled account and says whether it changed
/// anything; of two disables (or enables) at once exactly one changes it; a new account
/// is enabled; an unknown user is `NotFound`. Other accounts are not touched.
pub async fn accounts_are_disabled_and_enabled_once_even_at_once(s: Arc<dyn Storage>) {
    let a = user(&*s, "alice").await;
    let b = user(&*s, "bob").await;
    assert!(
        !s.is_disabled(a.id).await.expect("read"),
        "new accounts are enabled"
    );
    assert!(s.set_disabled(a.id, true).await.expect("disable"));
    assert!(s.is_disabled(a.id).await.expect("read"));
    assert!(!s.is_disabled(b.id).await.expect("read"), "only alice");
    assert!(
        !s.set_disabled(a.id, true).await.expect("again"),
        "already disabled"
    );
    assert!(s.set_disabled(a.id, false).await.expect("enable"));
    assert!(!s.is_disabled(a.id).await.expect("read"));
    assert!(
        !s.set_disabled(a.id, false).await.expect("again"),
        "already enabled"
    );
    // The account itself is untouched.
    assert_eq!(s.user(a.id).await.expect("user"), a);

    for round in 0..10 {
        let disabled = round % 2 == 0;
        let (one, two) = {
            let (s1, s2) = (s.clone(), s.clone());
            let one = tokio::spawn(async move { s1.set_disabled(b.id, disabled).await });
            let two = tokio::spawn(async move { s2.set_disabled(b.id, disabled).await });
            (
                one.await.expect("task").expect("set"),
                two.await.expect("task").expect("set"),
            )
        };
        assert!(
            one ^ two,
            "round {round}: exactly one changes it ({one}, {two})"
        );
        assert_eq!(s.is_disabled(b.id).await.expect("read"), disabled);
    }

    for missing in [
        s.set_disabled(UserId(9_999), true).await,
        s.is_disabled(UserId(9_999)).await,
    ] {
        assert!(
            matches!(missing, Err(StorageError::NotFound(_))),
            "{missing:?}"
        );
    }
}

/// `update_profile` replaces the fields given and keeps the others; a change of the
/// name and one of the avatar made at once both apply; an unknown user is `NotFound`.
pub async fn profile_changes_apply_the_fields_given_even_at_once(s: Arc<dyn Storage>) {
    let a = user(&*s, "alice").await;
    let renamed = s
        .update_profile(
            a.id,
            ProfileChange {
                display_name: Some("Alice A.".into()),
                avatar: None,
            },
        )
        .await
        .expect("rename");
    assert_eq!(renamed.display_name, "Alice A.");
    assert_eq!(renamed.avatar, None);
    assert_eq!(renamed.username, "alice");
    assert_eq!(s.user(a.id).await.expect("user"), renamed);
    let unchanged = s
        .update_profile(a.id, ProfileChange::default())
        .await
        .expect("an empty change");
    assert_eq!(unchanged, renamed);

    for round in 0..10 {
        let name = {
            let s = s.clone();
            let change = ProfileChange {
                display_name: Some(format!("Alice {round}")),
                avatar: None,
            };
            tokio::spawn(async move { s.update_profile(a.id, change).await })
        };
        let avatar = {
            let s = s.clone();
            let change = ProfileChange {
                display_name: None,
                avatar: Some(Some(format!("https://example.com/{round}.png"))),
            };
            tokio::spawn(async move { s.update_profile(a.id, change).await })
        };
        name.await.expect("task").expect("name");
        avatar.await.expect("task").expect("avatar");
        let now = s.user(a.id).await.expect("user");
        assert_eq!(now.display_name, format!("Alice {round}"), "round {round}");
        assert_eq!(
            now.avatar.as_deref(),
            Some(format!("https://example.com/{round}.png").as_str()),
            "round {round}"
        );
    }
    let cleared = s
        .update_profile(
            a.id,
            ProfileChange {
                display_name: None,
                avatar: Some(None),
            },
        )
        .await
        .expect("clear the avatar");
    assert_eq!(cleared.avatar, None);
    assert_eq!(cleared.display_name, "Alice 9");
    let missing = s
        .update_profile(UserId(9_999), ProfileChange::default())
        .await;
    assert!(
        matches!(missing, Err(StorageError::NotFound(_))),
        "{missing:?}"
    );
}
