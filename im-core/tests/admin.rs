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
