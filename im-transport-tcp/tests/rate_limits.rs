//! Floods are refused with `rate_limited` and a usable `retry_after_ms`, and only the
//! flooder is held back.

mod common;

use std::time::Duration;

use common::*;
use im_core::client::ClientError;
use im_core::engine::RateLimits;
use im_core::protocol::ErrorCode;

fn retry_after(e: &ClientError) -> u64 {
    match e {
        ClientError::Server(body) if body.code == ErrorCode::RateLimited => body
            .retry_after_ms
            .expect("rate_limited without retry_after_ms"),
        other => panic!("expected rate_limited, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_limited_while_others_log_in() {
    let limits = RateLimits {
        logins_per_username_per_minute: 5,
        auth_per_address_per_minute: 50,
        ..RateLimits::unlimited()
    };
    let server = start(test_config().with_rate_limits(limits)).await;
    let (c, _e) = server.connect().await;
    c.register("victim", PASSWORD, "Victim").await.unwrap();
    c.register("bystander", PASSWORD, "Bystander")
        .await
        .unwrap();

    // Someone guesses the victim's password: five tries, then refused outright, without
    // the password even being checked (the right one is refused too).
    for _ in 0..5 {
        let e = c.login("victim", "guess guess", "x").await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Unauthorized));
    }
    let e = c.login("victim", "guess guess", "x").await.unwrap_err();
    let wait = retry_after(&e);
    assert!(
        wait > 0 && wait <= 12_000,
        "retry after {wait} ms (one attempt per 12 s)"
    );
    let e = c.login("victim", PASSWORD, "x").await.unwrap_err();
    retry_after(&e);
    // Case does not dodge the limit.
    retry_after(&c.login("VICTIM", PASSWORD, "x").await.unwrap_err());

    // Another user logs in fine meanwhile.
    let (other, _e) = server.connect().await;
    other.login("bystander", PASSWORD, "phone").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_flood_is_limited() {
    let limits = RateLimits {
        auth_per_address_per_minute: 4,
        ..RateLimits::unlimited()
    };
    let server = start(test_config().with_rate_limits(limits)).await;
    let (c, _e) = server.connect().await;
    for i in 0..4 {
        c.register(&format!("user{i}"), PASSWORD, "U")
            .await
            .unwrap();
    }
    // Registrations and logins from one address share its budget, whatever the name.
    retry_after(&c.register("user9", PASSWORD, "U").await.unwrap_err());
    retry_after(&c.login("user0", PASSWORD, "x").await.unwrap_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_flood_is_limited_per_user_and_recovers() {
    let limits = RateLimits {
        sends_per_user_per_second: 10,
        send_burst: 10,
        ..RateLimits::unlimited()
    };
    let server = start(test_config().with_rate_limits(limits)).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let ab = alice.direct(&bob);

    let mut sent = 0;
    let mut refused = None;
    for i in 0..50 {
        match alice.client.send_text(ab, &format!("{i}")).await {
            Ok(_) => sent += 1,
            Err(e) => {
                refused = Some(retry_after(&e));
                break;
            }
        }
    }
    assert!(
        (10..=12).contains(&sent),
        "{sent} sends passed the burst of 10"
    );
    let wait = refused.expect("the flood was never limited");
    assert!(wait <= 100, "retry after {wait} ms at 10/s");

    // Bob is not held back by Alice's flood.
    bob.client.send_text(ab, "still fine").await.unwrap();
    // Alice may send again after the wait.
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    alice.client.send_text(ab, "again").await.unwrap();
    // Refused sends were not stored: sent + bob's + the last one.
    let (page, _) = bob
        .client
        .history(ab, im_core::protocol::HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.len(), sent + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_friend_list_has_a_limit() {
    let server = start(test_config().with_max_friends(2)).await;
    let mut hub = server.user("hub").await;
    let mut a = server.user("aaa").await;
    let mut b = server.user("bbb").await;
    let c = server.user("ccc").await;
    befriend(&mut hub, &mut a).await;
    befriend(&mut hub, &mut b).await;
    let e = hub.client.request_friend(c.id, "").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::TooLarge));
    let e = c.client.request_friend(hub.id, "").await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(ErrorCode::TooLarge),
        "their list is full too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashes_wait_their_turn_and_a_flood_is_told_to_come_back() {
    // One hash at a time at the default cost (19 MiB, tens of milliseconds each): eight
    // registrations at once, each allowed to wait 1 ms for its turn.
    let config = test_config()
        .with_hash_cost(im_core::auth::HashCost::default())
        .with_max_concurrent_hashes(1)
        .with_hash_queue_timeout(Duration::from_millis(1));
    let results = eight_registrations_at_once(&start(config).await).await;
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        results.iter().any(|r| r.is_ok()),
        "someone's turn came: {results:?}"
    );
    assert!(
        !refused.is_empty(),
        "eight hashes at once with room for one"
    );
    for e in refused {
        assert!(retry_after(e) > 0);
    }

    // Given time to wait, every one of them gets its turn.
    let config = test_config()
        .with_max_concurrent_hashes(1)
        .with_hash_queue_timeout(Duration::from_secs(10));
    for result in eight_registrations_at_once(&start(config).await).await {
        result.unwrap();
    }
}

/// Eight users register at once, each on a connection of their own.
async fn eight_registrations_at_once(
    server: &Server,
) -> Vec<Result<im_core::model::User, ClientError>> {
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(server.connect().await);
    }
    let attempts = clients
        .iter()
        .enumerate()
        .map(|(i, (c, _))| async move { c.register(&format!("user{i}"), PASSWORD, "U").await });
    futures::future::join_all(attempts).await
}
