//! Who may fetch an upload, and when it is removed: its uploader always; anyone else
//! while a live message showing it is theirs to read (in the conversation it was
//! uploaded for, or one it was forwarded to, named by `?conversation=`); nobody else
//! once every such message is recalled. A message shows a file only where its sender
//! may share it. Files no message names are removed after the grace period, by the
//! gateway's own pass and by `collect_uploads`, also when two passes run at once.

mod common;

use std::time::Duration;

use common::{Api, WAIT, png, start_with, test_config};
use im_core::model::Timestamp;
use im_transport_ws::{Collected, WsConfig};
use reqwest::multipart::Part;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn direct(a: u64, b: u64) -> String {
    format!("d:{}:{}", a.min(b), a.max(b))
}

/// Uploads a PNG for `conversation`; its url.
async fn upload(api: &Api, token: &str, conversation: &str) -> String {
    let uploaded = api
        .upload(token, conversation, Part::bytes(png(2, 2)))
        .await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{uploaded:?}");
    uploaded.body["url"].as_str().unwrap().to_owned()
}

/// Sends an image message showing `url`; its seq.
async fn show(api: &Api, token: &str, conversation: &str, url: &str, key: &str) -> u64 {
    let sent = api
        .call(
            Method::POST,
            &format!("/v1/conversations/{conversation}/messages"),
            Some(token),
            Some(json!({"client_id": key, "body": {"type": "image", "url": url, "mime": "image/png", "size": 1}})),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{sent:?}");
    sent.body["seq"].as_u64().unwrap()
}

async fn recall(api: &Api, token: &str, conversation: &str, seq: u64) {
    let recalled = api
        .call(
            Method::POST,
            &format!("/v1/conversations/{conversation}/messages/{seq}/recall"),
            Some(token),
            Some(json!({"client_id": format!("recall-{conversation}-{seq}")})),
        )
        .await;
    assert_eq!(recalled.status, StatusCode::OK, "{recalled:?}");
}

/// The status of `token`'s download of `url`, seen in `seen_in` when given.
async fn fetch(api: &Api, token: &str, url: &str, seen_in: Option<&str>) -> StatusCode {
    let query = seen_in.map_or(String::new(), |c| format!("?conversation={c}"));
    let response = tokio::time::timeout(
        WAIT,
        api.http
            .get(format!("{}{url}{query}", api.base))
            .bearer_auth(token)
            .send(),
    )
    .await
    .expect("the server answers in time")
    .unwrap();
    response.status()
}

/// Alice, Bob and Carol, Bob a friend of each: their ids and tokens.
async fn three(api: &Api) -> [(u64, String); 3] {
    let (alice, ta) = api.user("alice").await;
    let (bob, tb) = api.user("bob").await;
    let (carol, tc) = api.user("carol").await;
    api.befriend((alice, &ta), (bob, &tb)).await;
    api.befriend((bob, &tb), (carol, &tc)).await;
    [(alice, ta), (bob, tb), (carol, tc)]
}

fn later() -> Timestamp {
    Timestamp(Timestamp::now().0 + 60_000)
}

#[tokio::test]
async fn files_are_served_while_a_message_shows_them_and_removed_after() {
    let server = start_with(test_config(), WsConfig::default()).await;
    let api = server.api();
    let [(alice, ta), (bob, tb), (carol, tc)] = three(&api).await;
    let (ab, bc) = (direct(alice, bob), direct(bob, carol));

    // Uploaded, not sent: only its uploader may fetch it.
    let photo = upload(&api, &ta, &ab).await;
    assert_eq!(fetch(&api, &ta, &photo, None).await, StatusCode::OK);
    assert_eq!(fetch(&api, &tb, &photo, None).await, StatusCode::NOT_FOUND);
    // Sent: the conversation's other member may, a stranger may not.
    let seq = show(&api, &ta, &ab, &photo, "photo").await;
    assert_eq!(fetch(&api, &tb, &photo, None).await, StatusCode::OK);
    assert_eq!(fetch(&api, &tb, &photo, Some(&ab)).await, StatusCode::OK);
    assert_eq!(fetch(&api, &tc, &photo, None).await, StatusCode::FORBIDDEN);
    assert_eq!(
        fetch(&api, &tc, &photo, Some(&ab)).await,
        StatusCode::FORBIDDEN
    );
    // Naming a conversation that is hers but does not show it gets her nothing.
    assert_eq!(
        fetch(&api, &tc, &photo, Some(&bc)).await,
        StatusCode::NOT_FOUND
    );

    // Bob forwards it to Carol: she fetches it where she saw it.
    let forwarded = api
        .call(
            Method::POST,
            &format!("/v1/conversations/{ab}/messages/{seq}/forward"),
            Some(&tb),
            Some(json!({"to": bc, "client_id": "fwd"})),
        )
        .await;
    assert_eq!(forwarded.status, StatusCode::CREATED, "{forwarded:?}");
    let forward_seq = forwarded.body["seq"].as_u64().unwrap();
    assert_eq!(fetch(&api, &tc, &photo, Some(&bc)).await, StatusCode::OK);

    // Alice recalls hers: Bob no longer gets it there, but still where he forwarded it.
    recall(&api, &ta, &ab, seq).await;
    assert_eq!(fetch(&api, &tb, &photo, None).await, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&api, &tb, &photo, Some(&bc)).await, StatusCode::OK);
    assert_eq!(
        fetch(&api, &ta, &photo, None).await,
        StatusCode::OK,
        "the uploader"
    );

    // A draft never sent, and the photo still shown in the forward: the draft goes.
    let draft = upload(&api, &ta, &ab).await;
    let gateway_pass = server.gateway.collect_uploads(later()).await.unwrap();
    assert_eq!(
        gateway_pass,
        Collected {
            checked: 2,
            removed: 1
        }
    );
    assert_eq!(fetch(&api, &ta, &draft, None).await, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&api, &tc, &photo, Some(&bc)).await, StatusCode::OK);
    // Files younger than the time given are not looked at.
    let young = upload(&api, &ta, &ab).await;
    let before_it = Timestamp(Timestamp::now().0 - 60_000);
    assert_eq!(
        server.gateway.collect_uploads(before_it).await.unwrap(),
        Collected::default()
    );
    assert_eq!(fetch(&api, &ta, &young, None).await, StatusCode::OK);

    // Bob recalls the forward: nothing shows the photo, and it goes too.
    recall(&api, &tb, &bc, forward_seq).await;
    assert_eq!(
        fetch(&api, &tc, &photo, Some(&bc)).await,
        StatusCode::NOT_FOUND
    );
    let pass = server.gateway.collect_uploads(later()).await.unwrap();
    assert_eq!(pass.removed, 2, "the photo and the young draft: {pass:?}");
    assert_eq!(fetch(&api, &ta, &photo, None).await, StatusCode::NOT_FOUND);
    let left = std::fs::read_dir(server.uploads.path()).unwrap().count();
    assert_eq!(left, 0, "no file left in the uploads directory");
}

/// A download names at most one `conversation`, a conversation id.
#[tokio::test]
async fn a_download_s_query_is_checked() {
    let server = start_with(test_config(), WsConfig::default()).await;
    let api = server.api();
    let (alice, ta) = api.user("alice").await;
    let photo = upload(&api, &ta, &direct(alice, alice + 1)).await;
    for query in ["?conversation=nope", "?size=big", "?conversation=d:1:2&x=1"] {
        let answer = api
            .call(Method::GET, &format!("{photo}{query}"), Some(&ta), None)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {answer:?}"
        );
    }
}

/// Two passes at once remove each unused file once, between them, and fail nothing.
#[tokio::test]
async fn passes_at_once_remove_each_file_once() {
    let ws = WsConfig::default().with_uploads_per_user_per_minute(0);
    let server = start_with(test_config(), ws).await;
    let api = server.api();
    let (alice, ta) = api.user("alice").await;
    let conversation = direct(alice, alice + 1);
    for _ in 0..20 {
        upload(&api, &ta, &conversation).await;
    }
    let (one, two) = tokio::join!(
        server.gateway.collect_uploads(later()),
        server.gateway.collect_uploads(later())
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.removed + two.removed, 20, "{one:?} {two:?}");
    assert_eq!(std::fs::read_dir(server.uploads.path()).unwrap().count(), 0);
}

/// The gateway runs its passes by itself: with a short grace period, a file never sent
/// is gone within a few seconds, and one a message shows stays.
#[tokio::test]
async fn the_gateway_removes_unused_files_by_itself() {
    let ws = WsConfig::default().with_upload_grace(Duration::from_millis(300));
    let server = start_with(test_config(), ws).await;
    let api = server.api();
    let (alice, ta) = api.user("alice").await;
    let (bob, tb) = api.user("bob").await;
    api.befriend((alice, &ta), (bob, &tb)).await;
    let ab = direct(alice, bob);
    let kept = upload(&api, &ta, &ab).await;
    show(&api, &ta, &ab, &kept, "kept").await;
    let draft = upload(&api, &ta, &ab).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while fetch(&api, &ta, &draft, None).await == StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unused upload is still there after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fetch(&api, &tb, &kept, None).await, StatusCode::OK);
}

/// A message shows a file only where its sender may share it: their own upload, or one
/// a live message already shows them in that conversation; anyone else's goes on by a
/// forward. So nobody keeps a file within reach by posting its url elsewhere, and once
/// every message showing it is recalled only its uploader may show it again. An edit is
/// held to the same rule.
#[tokio::test]
async fn a_message_shows_only_a_file_its_sender_may_share() {
    let server = start_with(test_config(), WsConfig::default()).await;
    let api = server.api();
    let [(alice, ta), (bob, tb), (carol, tc)] = three(&api).await;
    api.befriend((alice, &ta), (carol, &tc)).await;
    let (ab, bc, ac) = (direct(alice, bob), direct(bob, carol), direct(alice, carol));
    let photo = upload(&api, &ta, &ab).await;
    let post = |token: &str, conversation: &str, key: &str| {
        let api = api.clone();
        let (token, conversation, key, url) = (
            token.to_owned(),
            conversation.to_owned(),
            key.to_owned(),
            photo.clone(),
        );
        async move {
            api.call(
                Method::POST,
                &format!("/v1/conversations/{conversation}/messages"),
                Some(&token),
                Some(json!({"client_id": key, "body": {"type": "image", "url": url, "mime": "image/png", "size": 1}})),
            )
            .await
        }
    };
    // Not yet sent: nobody but Alice may show it, anywhere.
    let refused = post(&tb, &bc, "b1").await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{refused:?}"
    );
    let seq = show(&api, &ta, &ab, &photo, "a1").await;
    // Shown to Bob in ab: he may show it there again, not in another chat...
    assert_eq!(post(&tb, &bc, "b2").await.status, StatusCode::FORBIDDEN);
    let again = post(&tb, &ab, "b3").await;
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    let bob_seq = again.body["seq"].as_u64().unwrap();
    // ...where a forward takes it.
    let forwarded = api
        .call(
            Method::POST,
            &format!("/v1/conversations/{ab}/messages/{seq}/forward"),
            Some(&tb),
            Some(json!({"to": bc, "client_id": "fwd"})),
        )
        .await;
    assert_eq!(forwarded.status, StatusCode::CREATED, "{forwarded:?}");
    // Carol sees it in bc (the forward) and may show it there, not in her chat with
    // Alice, where nothing shows it to her; nor by editing a message there into it.
    assert_eq!(post(&tc, &bc, "c1").await.status, StatusCode::CREATED);
    assert_eq!(post(&tc, &ac, "c2").await.status, StatusCode::FORBIDDEN);
    let text = api
        .call(
            Method::POST,
            &format!("/v1/conversations/{ac}/messages"),
            Some(&tc),
            Some(json!({"client_id": "c3", "body": {"type": "text", "text": "soon a photo"}})),
        )
        .await;
    let text_seq = text.body["seq"].as_u64().unwrap();
    let edited = api
        .call(
            Method::PUT,
            &format!("/v1/conversations/{ac}/messages/{text_seq}"),
            Some(&tc),
            Some(json!({"body": {"type": "image", "url": photo, "mime": "image/png", "size": 1}})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::FORBIDDEN, "{edited:?}");

    // Every message showing it in ab recalled: Bob may no longer show it there; Alice,
    // whose file it is, may show it anywhere.
    recall(&api, &ta, &ab, seq).await;
    recall(&api, &tb, &ab, bob_seq).await;
    assert_eq!(post(&tb, &ab, "b4").await.status, StatusCode::FORBIDDEN);
    assert_eq!(post(&ta, &ac, "a2").await.status, StatusCode::CREATED);
}

/// In a group, a member who joined after a message showed a file does not get it (the
/// history before their joining is not theirs); once a message after their joining
/// shows it, they do.
#[tokio::test]
async fn a_member_gets_the_files_shown_since_they_joined() {
    let server = start_with(test_config(), WsConfig::default()).await;
    let api = server.api();
    let (alice, ta) = api.user("alice").await;
    let (carol, tc) = api.user("carol").await;
    api.befriend((alice, &ta), (carol, &tc)).await;
    let group = api.group(&ta).await;
    let g = format!("g:{group}");
    let photo = upload(&api, &ta, &g).await;
    show(&api, &ta, &g, &photo, "before").await;
    let added = api
        .call(
            Method::POST,
            &format!("/v1/groups/{group}/members"),
            Some(&ta),
            Some(json!({"users": [carol]})),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{added:?}");
    assert_eq!(fetch(&api, &tc, &photo, None).await, StatusCode::NOT_FOUND);
    show(&api, &ta, &g, &photo, "after").await;
    assert_eq!(fetch(&api, &tc, &photo, None).await, StatusCode::OK);
}

/// A blob store that keeps nothing and cannot list: the stand-in for an adapter written
/// before listing existed.
#[derive(Debug)]
struct NoListing;

#[async_trait::async_trait]
impl im_transport_ws::BlobStore for NoListing {
    async fn put(
        &self,
        _: &im_transport_ws::BlobMeta,
        _: bytes::Bytes,
    ) -> Result<(), im_transport_ws::BlobError> {
        Ok(())
    }
    async fn meta(
        &self,
        _: &str,
    ) -> Result<Option<im_transport_ws::BlobMeta>, im_transport_ws::BlobError> {
        Ok(None)
    }
    async fn read(
        &self,
        _: &str,
    ) -> Result<Option<im_transport_ws::BlobBody>, im_transport_ws::BlobError> {
        Ok(None)
    }
}

/// A pass says why it cannot run, instead of removing nothing quietly: no blob store, or
/// one that cannot list its files.
#[tokio::test]
async fn a_pass_that_cannot_run_says_why() {
    use im_transport_ws::{BlobError, CollectError, Gateway};
    let engine = im_core::Engine::builder().start().await.unwrap();
    let without = Gateway::new(engine.clone(), WsConfig::default(), None);
    assert!(matches!(
        without.collect_uploads(later()).await,
        Err(CollectError::NoBlobs)
    ));
    let unlisted = Gateway::new(
        engine,
        WsConfig::default(),
        Some(std::sync::Arc::new(NoListing)),
    );
    assert!(matches!(
        unlisted.collect_uploads(later()).await,
        Err(CollectError::Blobs(BlobError::Unsupported(_)))
    ));
}
