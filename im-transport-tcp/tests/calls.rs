//! Call signalling: an offer rings every device of the callee, the answer goes to the
//! caller's device only, the callee's other devices learn the call was answered
//! elsewhere; candidates and hang-up flow both ways; strangers and blocked users cannot
//! signal; nothing is stored.

mod common;

use common::*;
use im_core::model::{DeviceId, UserId};
use im_core::protocol::request;
use im_core::protocol::{ErrorCode, Event, Signal};

fn offer() -> Signal {
    Signal::Offer {
        sdp: "v=0 offer".into(),
        video: true,
    }
}

async fn signal(user: &mut User) -> (UserId, DeviceId, String, Signal) {
    match user.event().await {
        Event::Signal {
            from,
            from_device,
            call_id,
            signal,
        } => (from, from_device, call_id, signal),
        other => panic!("expected a signal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_offer_to_hangup() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let mut bob_phone = server.device("bob", "bob-phone").await;
    let mut alice_laptop = server.device("alice", "alice-laptop").await;
    let alice_device = alice.session.device.id.clone();

    // Alice calls Bob: both of his devices ring; her own other device hears nothing.
    let online = alice
        .client
        .signal(bob.id, None, "call-1", offer())
        .await
        .unwrap();
    assert!(online);
    for device in [&mut bob, &mut bob_phone] {
        let (from, from_device, call, s) = signal(device).await;
        assert_eq!(
            (from, &from_device, call.as_str()),
            (alice.id, &alice_device, "call-1")
        );
        assert_eq!(s, offer());
    }
    alice_laptop.quiet(100).await;

    // The phone rings back and answers: only Alice's calling device gets it, and Bob's
    // other device stops ringing.
    let phone = bob_phone.session.device.id.clone();
    bob_phone
        .client
        .signal(
            alice.id,
            Some(alice_device.clone()),
            "call-1",
            Signal::Ringing,
        )
        .await
        .unwrap();
    assert_eq!(signal(&mut alice).await.3, Signal::Ringing);
    let answer = Signal::Answer {
        sdp: "v=0 answer".into(),
    };
    let online = bob_phone
        .client
        .signal(
            alice.id,
            Some(alice_device.clone()),
            "call-1",
            answer.clone(),
        )
        .await
        .unwrap();
    assert!(online);
    let (from, from_device, _, s) = signal(&mut alice).await;
    assert_eq!((from, &from_device, s), (bob.id, &phone, answer));
    match bob.event().await {
        Event::CallHandled {
            call_id,
            device,
            answered,
        } => assert_eq!(
            (call_id.as_str(), &device, answered),
            ("call-1", &phone, true)
        ),
        other => panic!("expected call_handled, got {other:?}"),
    }
    alice_laptop.quiet(100).await;

    // ICE candidates both ways, device to device.
    let candidate = Signal::Candidate {
        candidate: "candidate:1 1 udp 2122260223 10.0.0.1 54321 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };
    alice
        .client
        .signal(bob.id, Some(phone.clone()), "call-1", candidate.clone())
        .await
        .unwrap();
    assert_eq!(signal(&mut bob_phone).await.3, candidate);
    bob_phone
        .client
        .signal(
            alice.id,
            Some(alice_device.clone()),
            "call-1",
            candidate.clone(),
        )
        .await
        .unwrap();
    assert_eq!(signal(&mut alice).await.3, candidate);
    bob.quiet(100).await;

    // Alice hangs up; her laptop learns the call is over.
    let hangup = Signal::Hangup {
        reason: "ended".into(),
    };
    alice
        .client
        .signal(bob.id, Some(phone.clone()), "call-1", hangup.clone())
        .await
        .unwrap();
    assert_eq!(signal(&mut bob_phone).await.3, hangup);
    match alice_laptop.event().await {
        Event::CallHandled { answered, .. } => assert!(!answered),
        other => panic!("expected call_handled, got {other:?}"),
    }

    // Nothing was stored: no conversation exists between them.
    assert!(alice.client.conversations().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_signal_whom() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let mut dave = server.user("dave").await;

    // A stranger cannot ring anyone.
    let err = carol
        .client
        .signal(alice.id, None, "c", offer())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    alice.quiet(100).await;

    // Members of a shared group can, without being friends.
    befriend(&mut alice, &mut bob).await;
    befriend(&mut alice, &mut dave).await;
    alice
        .client
        .create_group("team", &[bob.id, dave.id])
        .await
        .unwrap();
    bob.message().await;
    dave.message().await;
    assert!(
        bob.client
            .signal(dave.id, None, "g", offer())
            .await
            .unwrap()
    );
    assert_eq!(signal(&mut dave).await.0, bob.id);

    // A block either way stops it.
    dave.client
        .call(request::Block { user: bob.id })
        .await
        .unwrap();
    let err = bob
        .client
        .signal(dave.id, None, "g2", offer())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let err = dave
        .client
        .signal(bob.id, None, "g3", offer())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));

    // Bad input is refused with a typed error.
    let long = "x".repeat(65);
    for call_id in ["", long.as_str(), "bad\nid"] {
        let err = alice
            .client
            .signal(bob.id, None, call_id, offer())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Invalid), "{call_id}: {err}");
    }
    let err = bob
        .client
        .signal(bob.id, None, "self", offer())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Invalid), "{err}");
    let huge = Signal::Offer {
        sdp: "a".repeat(20_000),
        video: false,
    };
    let err = alice
        .client
        .signal(bob.id, None, "big", huge)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooLarge));

    // A callee with no device online: nobody rang, and the caller is told.
    drop(carol);
    drop(dave);
    let bob_id = bob.id;
    drop(bob);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !alice
            .client
            .signal(bob_id, None, "late", offer())
            .await
            .unwrap()
    );
    // A device that is not online is not found either.
    let nowhere = DeviceId::new("no-such-device").unwrap();
    let mut bob = server.device("bob", "bob-1").await;
    assert!(
        !alice
            .client
            .signal(bob.id, Some(nowhere), "late", offer())
            .await
            .unwrap()
    );
    bob.quiet(100).await;
}
