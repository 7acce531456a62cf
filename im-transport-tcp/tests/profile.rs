//! Profiles: `update_profile` changes the fields given; friends and the user's other
//! devices hear of it (`user_updated`); bad names and avatars are `invalid`.

mod common;

use common::*;
use im_core::protocol::{ErrorCode, Event, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_changes_reach_friends_and_own_devices() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    befriend(&mut alice, &mut bob).await;
    let mut laptop = server.device("alice", "laptop").await;

    let renamed = alice
        .client
        .call(request::UpdateProfile {
            display_name: Some("Alice Liddell".into()),
            avatar: Some("https://example.com/alice.png".into()),
        })
        .await
        .unwrap()
        .user;
    assert_eq!(renamed.display_name, "Alice Liddell");
    assert_eq!(
        renamed.avatar.as_deref(),
        Some("https://example.com/alice.png")
    );
    for user in [&mut bob, &mut laptop] {
        loop {
            if let Event::UserUpdated { user: updated } = user.event().await {
                assert_eq!(updated, renamed);
                break;
            }
        }
    }
    // Carol is no friend: she sees it when she looks alice up.
    carol.quiet(200).await;
    let found = carol
        .client
        .call(request::FindUser {
            username: "alice".into(),
        })
        .await
        .unwrap()
        .user;
    assert_eq!(found.display_name, "Alice Liddell");

    // Only what is given changes; an empty avatar removes it.
    let cleared = alice
        .client
        .call(request::UpdateProfile {
            display_name: None,
            avatar: Some(String::new()),
        })
        .await
        .unwrap()
        .user;
    assert_eq!(cleared.display_name, "Alice Liddell");
    assert_eq!(cleared.avatar, None);

    for bad in [
        request::UpdateProfile {
            display_name: Some("   ".into()),
            avatar: None,
        },
        request::UpdateProfile {
            display_name: Some("x".repeat(65)),
            avatar: None,
        },
        request::UpdateProfile {
            display_name: None,
            avatar: Some("javascript:alert(1)".into()),
        },
    ] {
        let refused = alice.client.call(bad.clone()).await;
        assert_eq!(refused_with(refused), Some(ErrorCode::Invalid), "{bad:?}");
    }
}
