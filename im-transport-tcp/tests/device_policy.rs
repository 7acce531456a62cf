//! The device policy: a sixth session closes the oldest (which is told why), per-platform
//! limits, and "refuse new", which leaves nothing stored behind.

mod common;

use common::*;
use im_core::engine::{DevicePolicy, ExcessSessions};
use im_core::model::Platform;
use im_core::protocol::reply;
use im_core::protocol::request;
use im_core::protocol::{ErrorCode, Event, KickCode};

async fn expect_kicked(user: &mut User, want: KickCode) {
    match user.event().await {
        Event::Kicked { code, reason } => {
            assert_eq!(code, want, "{reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected kicked, got {other:?}"),
    }
    // And then the connection closes.
    let end = tokio::time::timeout(WAIT, user.events.next()).await;
    assert!(matches!(end, Ok(None)), "still open: {end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixth_device_kicks_the_oldest() {
    let server = start(test_config()).await;
    let mut first = server.user("alice").await;
    let mut others = Vec::new();
    for n in 2..=5 {
        others.push(server.device("alice", &format!("alice-{n}")).await);
    }
    assert_eq!(server.engine.session_count(), 5);
    first.quiet(100).await;

    let sixth = server.device("alice", "alice-6").await;
    expect_kicked(&mut first, KickCode::DeviceLimit).await;
    for other in &mut others {
        other.quiet(100).await;
        assert!(other.client.is_connected());
    }
    assert!(sixth.client.is_connected());
    wait_until(|| server.engine.session_count() == 5).await;

    // The same device logging in again replaces its session and counts once.
    let mut again = server.device("alice", "alice-6").await;
    again.quiet(100).await;
    for other in &mut others {
        other.quiet(50).await;
    }
    wait_until(|| server.engine.session_count() == 5).await;
    assert!(!first.client.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mobile_and_any_number_of_browsers() {
    let policy = DevicePolicy::default()
        .with_max_sessions(10)
        .with_platform_limit(Platform::Mobile, 1);
    let server = start(test_config().with_device_policy(policy)).await;
    let _first = server.user("bob").await;
    let mut phone = server.device_on("bob", "phone", Platform::Mobile).await;
    let mut tabs = Vec::new();
    for n in 0..4 {
        tabs.push(
            server
                .device_on("bob", &format!("tab-{n}"), Platform::Web)
                .await,
        );
    }
    phone.quiet(100).await;
    let _tablet = server.device_on("bob", "tablet", Platform::Mobile).await;
    expect_kicked(&mut phone, KickCode::DeviceLimit).await;
    for tab in &mut tabs {
        tab.quiet(50).await;
    }
    // 1 (the first login, platform other) + 4 tabs + the tablet.
    wait_until(|| server.engine.session_count() == 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_new_leaves_the_old_sessions_and_stores_nothing() {
    let policy = DevicePolicy::default()
        .with_max_sessions(2)
        .with_on_excess(ExcessSessions::RefuseNew);
    let server = start(test_config().with_device_policy(policy)).await;
    let mut first = server.user("carol").await;
    let second = server.device("carol", "carol-2").await;

    let (client, _events) = server.connect().await;
    let err = client
        .login("carol", PASSWORD, "carol-3")
        .await
        .expect_err("a third session must be refused");
    assert_eq!(err.code(), Some(ErrorCode::DeviceLimit), "{err}");
    first.quiet(100).await;
    assert!(first.client.is_connected() && second.client.is_connected());
    // No device record or token was stored for the refused login.
    let devices = first
        .client
        .request(im_core::protocol::Request::Devices(request::Devices {}))
        .await
        .unwrap();
    match devices {
        im_core::protocol::Reply::Devices(reply::Devices { devices }) => {
            let mut ids: Vec<_> = devices.iter().map(|d| d.id.to_string()).collect();
            ids.sort();
            assert_eq!(ids, ["carol-1", "carol-2"]);
        }
        other => panic!("{other:?}"),
    }
    // Logging in again on an existing device is a replacement, not a new session.
    let again = server.device("carol", "carol-2").await;
    assert!(again.client.is_connected());
    // Once one logs out, a new device fits.
    first.client.call(request::Logout {}).await.unwrap();
    wait_until(|| server.engine.session_count() == 1).await;
    let third = server.device("carol", "carol-3").await;
    assert!(third.client.is_connected());
}

async fn wait_until(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
