//! The operator's calls: a disabled account is signed out everywhere and cannot log in
//! (even a login racing the disable ends signed out), a reset password signs every
//! device out, one device can be signed out, and this node's sessions are listed.

use std::sync::Arc;
use std::time::Duration;

use im_core::auth::HashCost;
use im_core::client::{Client, ClientError, Events};
use im_core::engine::RateLimits;
use im_core::gate::{Gate, LoginAttempt};
use im_core::model::{DeviceId, UserId};
use im_core::protocol::{ErrorBody, ErrorCode, Event, KickCode, Request, request};
use im_core::transport::{PeerInfo, duplex};
use im_core::{Engine, EngineConfig};

const PW: &str = "correct horse battery";

async fn engine() -> Engine {
    Engine::builder()
        .config(
            EngineConfig::default()
                .with_hash_cost(HashCost::CHEAPEST)
                .with_rate_limits(RateLimits::unlimited()),
        )
        .start()
        .await
        .unwrap()
}

async fn connect(engine: &Engine) -> (Client, Events) {
    let (server, client) = duplex(256);
    let engine = engine.clone();
    tokio::spawn(async move { engine.serve_connection(server).await });
    Client::connect(client).await.unwrap()
}

fn code_of(result: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Server(body)) => body.code,
        other => panic!("not a server error: {other:?}"),
    }
}

/// The next `kicked` event's code, within two seconds.
async fn kicked(events: &mut Events) -> KickCode {
    tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.next().await {
                Some(Event::Kicked { code, .. }) => return code,
                Some(_) => continue,
                None => panic!("closed without a kick"),
            }
        }
    })
    .await
    .expect("kicked in time")
}

#[tokio::test]
async fn a_disabled_account_is_signed_out_and_cannot_log_in_until_enabled() {
    let engine = engine().await;
    let (client, mut events) = connect(&engine).await;
    let ann = client.register("ann", PW, "Ann").await.unwrap();
    let session = client.login("ann", PW, "laptop").await.unwrap();
    let token = session.token.clone().unwrap();
    assert_eq!(engine.sessions().len(), 1);

    assert!(engine.disable_user(ann.id).await.unwrap());
    assert!(
        !engine.disable_user(ann.id).await.unwrap(),
        "already disabled"
    );
    assert!(engine.is_disabled(ann.id).await.unwrap());
    assert_eq!(kicked(&mut events).await, KickCode::Disabled);

    let (again, _events) = connect(&engine).await;
    assert_eq!(
        code_of(again.login("ann", PW, "laptop").await),
        ErrorCode::Forbidden
    );
    // Nothing is revealed without the password.
    assert_eq!(
        code_of(again.login("ann", "wrong password", "laptop").await),
        ErrorCode::Unauthorized
    );
    assert_eq!(code_of(again.resume(&token).await), ErrorCode::Unauthorized);
    let peer = PeerInfo {
        addr: None,
        transport: "http",
    };
    let refused = engine
        .execute(&peer, Some(&token), Request::Devices(request::Devices {}))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unauthorized);
    assert!(engine.sessions().is_empty());

    assert!(engine.enable_user(ann.id).await.unwrap());
    assert!(
        !engine.enable_user(ann.id).await.unwrap(),
        "already enabled"
    );
    again.login("ann", PW, "laptop").await.unwrap();

    let missing = engine.disable_user(UserId(999)).await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
}

/// Holds a login between its password check and the storing of its device, until let go:
/// where a disable that lands leaves the login to find out by itself.
#[derive(Debug, Default)]
struct Pause {
    reached: tokio::sync::Notify,
    go: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl Gate for Pause {
    async fn check_login(&self, _: &LoginAttempt<'_>) -> Result<(), ErrorBody> {
        self.reached.notify_one();
        self.go.notified().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_disable_ends_signed_out() {
    let pause = Arc::new(Pause::default());
    let engine = Engine::builder()
        .gate(pause.clone())
        .config(
            EngineConfig::default()
                .with_hash_cost(HashCost::CHEAPEST)
                .with_rate_limits(RateLimits::unlimited()),
        )
        .start()
        .await
        .unwrap();
    let (client, _events) = connect(&engine).await;
    let bea = client.register("bea", PW, "Bea").await.unwrap();
    // The password was checked and the account was enabled; now it is disabled, before
    // the login stores its device and starts its session.
    let login = {
        let client = client.clone();
        tokio::spawn(async move { client.login("bea", PW, "phone").await })
    };
    pause.reached.notified().await;
    engine.disable_user(bea.id).await.unwrap();
    pause.go.notify_one();
    let login = login.await.unwrap();
    assert_eq!(code_of(login), ErrorCode::Forbidden);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(engine.sessions().is_empty(), "{:?}", engine.sessions());
    let devices = engine.storage().devices(bea.id).await.unwrap();
    assert!(devices.is_empty(), "{devices:?}");

    // The same over the connectionless path (HTTP's), which stores a device too.
    let peer = PeerInfo {
        addr: None,
        transport: "http",
    };
    engine.enable_user(bea.id).await.unwrap();
    let login = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let login = request::Login {
                username: "bea".into(),
                password: PW.into(),
                device: im_core::protocol::DeviceInfo {
                    id: DeviceId::new("script").unwrap(),
                    name: String::new(),
                    platform: im_core::model::Platform::Other,
                },
                proof: None,
            };
            engine.execute(&peer, None, Request::Login(login)).await
        })
    };
    pause.reached.notified().await;
    engine.disable_user(bea.id).await.unwrap();
    pause.go.notify_one();
    let refused = login.await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
    let devices = engine.storage().devices(bea.id).await.unwrap();
    assert!(devices.is_empty(), "{devices:?}");
}

#[tokio::test]
async fn a_reset_password_signs_every_device_out() {
    let engine = engine().await;
    let (phone, mut phone_events) = connect(&engine).await;
    let cy = phone.register("cyd", PW, "Cy").await.unwrap();
    phone.login("cyd", PW, "phone").await.unwrap();
    let (laptop, mut laptop_events) = connect(&engine).await;
    laptop.login("cyd", PW, "laptop").await.unwrap();

    let short = engine.reset_password(cy.id, "short").await.unwrap_err();
    assert_eq!(short.code, ErrorCode::Invalid);
    engine
        .reset_password(cy.id, "a new password here")
        .await
        .unwrap();
    assert_eq!(kicked(&mut phone_events).await, KickCode::PasswordChanged);
    assert_eq!(kicked(&mut laptop_events).await, KickCode::PasswordChanged);
    let (again, _events) = connect(&engine).await;
    assert_eq!(
        code_of(again.login("cyd", PW, "phone").await),
        ErrorCode::Unauthorized
    );
    again
        .login("cyd", "a new password here", "phone")
        .await
        .unwrap();
    let missing = engine
        .reset_password(UserId(999), "a new password here")
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn one_device_is_signed_out_and_sessions_are_listed() {
    let engine = engine().await;
    let (phone, mut phone_events) = connect(&engine).await;
    let di = phone.register("dia", PW, "Di").await.unwrap();
    phone.login("dia", PW, "phone").await.unwrap();
    let (laptop, _laptop_events) = connect(&engine).await;
    laptop.login("dia", PW, "laptop").await.unwrap();

    let listed: Vec<String> = engine
        .sessions()
        .into_iter()
        .map(|s| {
            assert_eq!(s.user, di.id);
            s.device.as_str().to_owned()
        })
        .collect();
    assert_eq!(listed, ["phone", "laptop"], "oldest first");

    let phone_id = DeviceId::new("phone").unwrap();
    engine.sign_out_device(di.id, &phone_id).await.unwrap();
    assert_eq!(kicked(&mut phone_events).await, KickCode::Revoked);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let left: Vec<_> = engine.sessions().into_iter().map(|s| s.device).collect();
    assert_eq!(left, [DeviceId::new("laptop").unwrap()]);
    let again = engine.sign_out_device(di.id, &phone_id).await.unwrap_err();
    assert_eq!(again.code, ErrorCode::NotFound);
    // The laptop still works.
    laptop.call(request::Devices {}).await.unwrap();
}

/// The next `friend_removed` event's user, within two seconds.
async fn friend_removed(events: &mut Events) -> UserId {
    tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.next().await {
                Some(Event::FriendRemoved { user }) => return user,
                Some(_) => continue,
                None => panic!("closed without friend_removed"),
            }
        }
    })
    .await
    .expect("friend_removed in time")
}

/// Registers and logs in `name` on its own connection; its id, client and events.
async fn member(engine: &Engine, name: &str) -> (UserId, Client, Events) {
    let (client, events) = connect(engine).await;
    let user = client.register(name, PW, name).await.unwrap();
    client.login(name, PW, "phone").await.unwrap();
    (user.id, client, events)
}

async fn befriend(a: (UserId, &Client), b: (UserId, &Client)) {
    a.1.request_friend(b.0, "").await.unwrap();
    b.1.accept_friend(a.0).await.unwrap();
}

#[tokio::test]
async fn a_deleted_account_leaves_its_groups_friends_and_requests() {
    use im_core::model::{Body, ConversationId, SystemEvent};
    use im_core::protocol::request::HistoryQuery;
    let engine = engine().await;
    let (ann, ann_client, mut ann_events) = member(&engine, "ann").await;
    let (bob, bob_client, mut bob_events) = member(&engine, "bob").await;
    let (cat, cat_client, _cat_events) = member(&engine, "cat").await;
    let (_, dan_client, _dan_events) = member(&engine, "dan").await;
    befriend((ann, &ann_client), (bob, &bob_client)).await;
    befriend((ann, &ann_client), (cat, &cat_client)).await;
    dan_client.request_friend(ann, "hi").await.unwrap();
    let group = ann_client.create_group("g", &[bob, cat]).await.unwrap();
    let chat = ConversationId::Group(group.id);
    ann_client.send_text(chat, "hello").await.unwrap();

    let done = engine.delete_user(ann).await.unwrap();
    assert_eq!(
        done,
        im_core::engine::DeletedUser {
            groups: 1,
            friends: 2,
            requests: 1
        }
    );
    assert_eq!(kicked(&mut ann_events).await, KickCode::Deleted);
    assert_eq!(friend_removed(&mut bob_events).await, ann);
    assert!(bob_client.friends().await.unwrap().is_empty());
    assert_eq!(dan_client.friend_requests().await.unwrap().1, []);
    // The group goes on under the longest-standing member (bob, the first of the two).
    let members = bob_client.group_members(group.id).await.unwrap();
    let roles: Vec<_> = members.iter().map(|m| (m.user, m.role)).collect();
    assert_eq!(
        roles,
        [
            (bob, im_core::model::Role::Owner),
            (cat, im_core::model::Role::Member)
        ]
    );
    let (history, _) = bob_client
        .history(chat, HistoryQuery::default())
        .await
        .unwrap();
    let texts: Vec<_> = history
        .iter()
        .filter_map(|m| match &m.body {
            Body::Text { text } => Some((m.sender, text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(texts, [(ann, "hello")], "its messages stay");
    let events: Vec<_> = history
        .iter()
        .filter_map(|m| match &m.body {
            Body::System { event } => Some(event.clone()),
            _ => None,
        })
        .skip(1)
        .collect();
    assert_eq!(
        events,
        [
            SystemEvent::OwnerChanged { from: ann, to: bob },
            SystemEvent::MemberLeft { user: ann }
        ]
    );
    let shown = bob_client.users(&[ann]).await.unwrap();
    assert_eq!(shown[0].display_name, im_core::engine::DELETED_NAME);
    assert_eq!(shown[0].avatar, None);
    // It has no password: no login gets as far as being told the account is disabled,
    // and an enable by mistake lets nobody in either.
    let (again, _events) = connect(&engine).await;
    assert_eq!(
        code_of(again.login("ann", PW, "laptop").await),
        ErrorCode::Unauthorized
    );
    engine.enable_user(ann).await.unwrap();
    assert_eq!(
        code_of(again.login("ann", PW, "laptop").await),
        ErrorCode::Unauthorized
    );
    engine.disable_user(ann).await.unwrap();

    assert_eq!(
        engine.delete_user(ann).await.unwrap(),
        im_core::engine::DeletedUser::default(),
        "a second deletion finds nothing left"
    );
    let missing = engine.delete_user(UserId(9_999)).await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
}

/// A friend request, an accept and a group add sent at the moment an account is deleted
/// are either undone by the deletion or refused: the account ends with no tie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_made_while_an_account_is_deleted_do_not_survive_it() {
    let engine = engine().await;
    let (owner, owner_client, _owner_events) = member(&engine, "owner").await;
    let (asker, asker_client, _asker_events) = member(&engine, "asker").await;
    let group = owner_client.create_group("g", &[]).await.unwrap();
    for round in 0..10 {
        let (doomed, doomed_client, _events) = member(&engine, &format!("doomed{round}")).await;
        befriend((owner, &owner_client), (doomed, &doomed_client)).await;
        doomed_client.request_friend(asker, "").await.unwrap();
        let deleting = {
            let engine = engine.clone();
            tokio::spawn(async move { engine.delete_user(doomed).await })
        };
        let doomed_only = [doomed];
        let (added, asked, accepted) = tokio::join!(
            owner_client.add_members(group.id, &doomed_only),
            asker_client.request_friend(doomed, ""),
            asker_client.accept_friend(doomed),
        );
        deleting.await.unwrap().unwrap();
        for (what, outcome) in [
            ("add", added.map(drop)),
            ("request", asked),
            ("accept", accepted),
        ] {
            match outcome {
                Ok(()) => {}
                Err(ClientError::Server(ErrorBody {
                    code: ErrorCode::Conflict | ErrorCode::NotFound | ErrorCode::Forbidden,
                    ..
                })) => {}
                Err(e) => panic!("round {round}: {what}: {e}"),
            }
        }
        let storage = engine.storage();
        assert_eq!(
            storage.user_groups(doomed).await.unwrap(),
            [],
            "round {round}"
        );
        assert_eq!(storage.friends(doomed).await.unwrap(), [], "round {round}");
        assert_eq!(
            storage.friend_requests(doomed).await.unwrap(),
            [],
            "round {round}"
        );
    }
}

/// Two deletions of one account at once (two operators, a retried call) both succeed,
/// undo each tie once between them, and hand a group on once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deletions_at_once_undo_each_tie_once() {
    let engine = engine().await;
    for round in 0..5 {
        let (ann, ann_client, _a) = member(&engine, &format!("ann{round}")).await;
        let (bob, bob_client, _b) = member(&engine, &format!("bob{round}")).await;
        let (cat, cat_client, _c) = member(&engine, &format!("cat{round}")).await;
        befriend((ann, &ann_client), (bob, &bob_client)).await;
        befriend((ann, &ann_client), (cat, &cat_client)).await;
        let group = ann_client.create_group("g", &[bob, cat]).await.unwrap();
        let (one, two) = tokio::join!(
            tokio::spawn({
                let engine = engine.clone();
                async move { engine.delete_user(ann).await }
            }),
            tokio::spawn({
                let engine = engine.clone();
                async move { engine.delete_user(ann).await }
            }),
        );
        let (one, two) = (one.unwrap().unwrap(), two.unwrap().unwrap());
        assert_eq!(
            (one.groups + two.groups, one.friends + two.friends),
            (1, 2),
            "round {round}: {one:?} {two:?}"
        );
        let members = bob_client.group_members(group.id).await.unwrap();
        let owners = members
            .iter()
            .filter(|m| m.role == im_core::model::Role::Owner)
            .count();
        assert_eq!((members.len(), owners), (2, 1), "round {round}");
        let storage = engine.storage();
        assert_eq!(storage.user_groups(ann).await.unwrap(), [], "round {round}");
        assert_eq!(storage.friends(ann).await.unwrap(), [], "round {round}");
    }
}
