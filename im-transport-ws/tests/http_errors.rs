//! Every error status of the HTTP API, each from a real cause, with the JSON error body
//! and the headers that go with it.

mod common;

use common::{PASSWORD, png, start, start_with, test_config};
use im_core::engine::RateLimits;
use im_transport_ws::WsConfig;
use reqwest::multipart::Part;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn unauthorized_is_401_with_a_bearer_challenge() {
    let server = start().await;
    let api = server.api();
    for token in [None, Some("not-a-token"), Some("imt1.1.web.AAAA")] {
        let answer = api.call(Method::GET, "/v1/friends", token, None).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{token:?}: {answer:?}"
        );
        assert_eq!(answer.code(), "unauthorized");
        assert_eq!(answer.headers["www-authenticate"], "Bearer");
    }
    api.user("alice").await;
    let wrong = api
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"username": "alice", "password": "wrong password", "device": {"id": "d"}})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let scheme = api
        .raw(
            api.http
                .get(format!("{}/v1/friends", api.base))
                .header("authorization", "Basic YWxpY2U6eA=="),
        )
        .await;
    assert_eq!(
        scheme.status,
        StatusCode::UNAUTHORIZED,
        "only bearer tokens count"
    );
}

#[tokio::test]
async fn forbidden_not_found_and_conflict() {
    let server = start().await;
    let api = server.api();
    let (alice, ta) = api.user("alice").await;
    let (bob, tb) = api.user("bob").await;
    let (_, tc) = api.user("carol").await;

    // 403: messaging a stranger; reading someone else's conversation; a file of a
    // conversation one is not in.
    let d = format!("d:{}:{}", alice.min(bob), alice.max(bob));
    let stranger = api
        .call(
            Method::POST,
            &format!("/v1/conversations/{d}/messages"),
            Some(&ta),
            Some(json!({"client_id": "x1", "body": {"type": "text", "text": "hi"}})),
        )
        .await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN, "{stranger:?}");
    assert_eq!(stranger.code(), "forbidden");
    let peek = api
        .call(
            Method::GET,
            &format!("/v1/conversations/{d}/messages"),
            Some(&tc),
            None,
        )
        .await;
    assert_eq!(peek.status, StatusCode::FORBIDDEN, "{peek:?}");

    api.befriend((alice, &ta), (bob, &tb)).await;
    let uploaded = api.upload(&ta, &d, Part::bytes(png(2, 2))).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{uploaded:?}");
    let url = uploaded.body["url"].as_str().unwrap();
    let theirs = api.call(Method::GET, url, Some(&tc), None).await;
    assert_eq!(
        theirs.status,
        StatusCode::FORBIDDEN,
        "carol is not in the chat: {theirs:?}"
    );
    let upload_elsewhere = api.upload(&tc, &d, Part::bytes(png(2, 2))).await;
    assert_eq!(
        upload_elsewhere.status,
        StatusCode::FORBIDDEN,
        "{upload_elsewhere:?}"
    );

    // 404: unknown user, group, attachment, route; a path-traversal id is just unknown.
    for path in [
        "/v1/users/by-name/nobody".to_owned(),
        "/v1/groups/999".to_owned(),
        "/v1/attachments/0123456789abcdef0123456789abcdef".to_owned(),
        "/v1/attachments/..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/v1/no-such-route".to_owned(),
    ] {
        let answer = api.call(Method::GET, &path, Some(&ta), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {answer:?}");
        assert_eq!(answer.code(), "not_found");
    }
    // 405 with the methods that exist.
    let wrong_method = api.call(Method::PATCH, "/v1/groups", Some(&ta), None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers["allow"], "GET, POST");

    // 409: a taken username; friends twice.
    let taken = api
        .call(
            Method::POST,
            "/v1/register",
            None,
            Some(json!({"username": "alice", "password": PASSWORD, "display_name": "A"})),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{taken:?}");
    assert_eq!(taken.code(), "conflict");
    let again = api
        .call(
            Method::POST,
            "/v1/friend-requests",
            Some(&ta),
            Some(json!({"user": bob})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
}

#[tokio::test]
async fn invalid_input_is_422_and_malformed_bodies_never_reach_the_engine() {
    let server = start().await;
    let api = server.api();
    let (_, ta) = api.user("alice").await;
    let cases: Vec<(Method, &str, Option<serde_json::Value>, &str)> = vec![
        (
            Method::POST,
            "/v1/register",
            Some(json!({"username": "a b", "password": PASSWORD, "display_name": "x"})),
            "username",
        ),
        (
            Method::POST,
            "/v1/register",
            Some(json!({"username": "dora"})),
            "missing field",
        ),
        (
            Method::POST,
            "/v1/groups",
            Some(json!({"name": 5})),
            "invalid type",
        ),
        (
            Method::GET,
            "/v1/groups/abc",
            None,
            "`group` must be an unsigned integer",
        ),
        (
            Method::GET,
            "/v1/conversations/x:1/messages",
            None,
            "conversation",
        ),
        (
            Method::GET,
            "/v1/conversations?bogus=1",
            None,
            "unknown query parameter",
        ),
        (
            Method::POST,
            "/v1/conversations/d:1:2/read",
            Some(json!({})),
            "missing field `seq`",
        ),
    ];
    for (method, path, body, says) in cases {
        let token = (path != "/v1/register").then_some(ta.as_str());
        let answer = api.call(method.clone(), path, token, body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {answer:?}"
        );
        assert_eq!(answer.code(), "invalid");
        let message = answer.body["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{path}: {message:?} should mention {says:?}"
        );
    }
    let not_json = api
        .raw(
            api.http
                .post(format!("{}/v1/groups", api.base))
                .bearer_auth(&ta)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        not_json.body["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    // An upload whose bytes are no listed type, whatever it claims to be, is kept as a
    // download only (the default takes any file): never served as a page or an image.
    let html = || {
        Part::bytes(b"<html><script>alert(1)</script></html>".to_vec())
            .file_name("cat.png")
            .mime_str("image/png")
            .unwrap()
    };
    let g = api.group(&ta).await;
    let kept = api.upload(&ta, &format!("g:{g}"), html()).await;
    assert_eq!(kept.status, StatusCode::CREATED, "{kept:?}");
    assert_eq!(kept.body["mime"], "application/octet-stream");
    let url = kept.body["url"].as_str().unwrap();
    let served = api
        .http
        .get(format!("{}{url}", api.base))
        .bearer_auth(&ta)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let headers = served.headers();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-disposition"], "attachment");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );

    // Without `*/*` in the accepted types, it is refused.
    let strict = WsConfig::default().with_upload_types(
        WsConfig::default()
            .upload_types
            .into_iter()
            .filter(|t| t != im_transport_ws::ANY_FILE),
    );
    let strict = start_with(test_config(), strict).await;
    let strict_api = strict.api();
    let (_, token) = strict_api.user("strict").await;
    let g = strict_api.group(&token).await;
    let refused = strict_api.upload(&token, &format!("g:{g}"), html()).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused:?}"
    );
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("not accepted")
    );
    // A query parameter may not stand in for one of the path.
    let sneaky = api
        .call(
            Method::GET,
            &format!("/v1/groups/{g}/members?group=999"),
            Some(&ta),
            None,
        )
        .await;
    assert_eq!(
        sneaky.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{sneaky:?}"
    );
    assert!(
        sneaky.body["message"]
            .as_str()
            .unwrap()
            .contains("unknown query parameter `group`")
    );
    let no_form = api
        .raw(
            api.http
                .post(format!("{}/v1/attachments", api.base))
                .bearer_auth(&ta)
                .body("x"),
        )
        .await;
    assert_eq!(no_form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn over_the_limits_is_413() {
    let ws = WsConfig::default()
        .with_max_body_bytes(1024)
        .with_max_upload_bytes(2048);
    let server = start_with(test_config(), ws).await;
    let api = server.api();
    let (_, ta) = api.user("alice").await;
    let big = api
        .call(
            Method::POST,
            "/v1/groups",
            Some(&ta),
            Some(json!({"name": "x".repeat(2000)})),
        )
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{big:?}");
    assert_eq!(big.code(), "too_large");
    let many = (1..=501)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let list = api
        .call(
            Method::GET,
            &format!("/v1/users?users={many}"),
            Some(&ta),
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::PAYLOAD_TOO_LARGE, "{list:?}");

    let g = api.group(&ta).await;
    let upload = api
        .upload(&ta, &format!("g:{g}"), Part::bytes(png(64, 64)))
        .await;
    assert_eq!(upload.status, StatusCode::PAYLOAD_TOO_LARGE, "{upload:?}");
    assert!(
        server.uploads.path().read_dir().unwrap().next().is_none(),
        "nothing stored"
    );
}

#[tokio::test]
async fn too_many_logins_is_429_with_retry_after() {
    let limits = RateLimits {
        logins_per_username_per_minute: 3,
        ..RateLimits::unlimited()
    };
    let server = start_with(test_config().with_rate_limits(limits), WsConfig::default()).await;
    let api = server.api();
    api.call(
        Method::POST,
        "/v1/register",
        None,
        Some(json!({"username": "alice", "password": PASSWORD, "display_name": "A"})),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = api
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(
                    json!({"username": "alice", "password": "guess guess", "device": {"id": "d"}}),
                ),
            )
            .await;
        statuses.push(answer.status.as_u16());
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer.code(), "rate_limited");
            let retry: u64 = answer.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "retry-after {retry}");
            assert!(answer.body["retry_after_ms"].as_u64().unwrap() > 0);
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
}

#[tokio::test]
async fn too_many_uploads_is_429() {
    let ws = WsConfig::default().with_uploads_per_user_per_minute(2);
    let server = start_with(test_config(), ws).await;
    let api = server.api();
    let (_, ta) = api.user("alice").await;
    let (_, tb) = api.user("bob").await;
    let g = api.group(&ta).await;
    let upload = |token: String| {
        let api = api.clone();
        async move {
            api.upload(&token, &format!("g:{g}"), Part::bytes(png(1, 1)))
                .await
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(upload(ta.clone()).await.status.as_u16());
    }
    // Bob is not in the group (403), but his limit is his own: not 429.
    let bobs = upload(tb.clone()).await;
    assert_eq!(statuses, [201, 201, 429]);
    assert_eq!(bobs.status, StatusCode::FORBIDDEN);
    let limited = upload(ta.clone()).await;
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
}

/// Past the byte quota an upload is 413 `too_large` saying what is in use; each user's
/// quota is their own; uploads at once cannot pass it together.
#[tokio::test]
async fn uploads_past_the_quota_are_413() {
    let one = png(1, 1).len() as u64;
    let ws = WsConfig::default()
        .with_upload_quota_bytes(2 * one + one / 2)
        .with_uploads_per_user_per_minute(0);
    let server = start_with(test_config(), ws).await;
    let api = server.api();
    let (_, ta) = api.user("alice").await;
    let (_, tb) = api.user("bob").await;
    let ga = api.group(&ta).await;
    let gb = api.group(&tb).await;
    let upload = |token: String, g: u64| {
        let api = api.clone();
        async move {
            api.upload(&token, &format!("g:{g}"), Part::bytes(png(1, 1)))
                .await
        }
    };
    let (first, second) = tokio::join!(upload(ta.clone(), ga), upload(ta.clone(), ga));
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (201, 201));
    let third = upload(ta.clone(), ga).await;
    assert_eq!(third.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(third.code(), "too_large");
    let message = third.body["message"].as_str().unwrap();
    assert!(message.contains(&format!("{} of", 2 * one)), "{message}");
    // Bob's quota is his own; three of his at once where two fit: two are stored.
    let (a, b, c) = tokio::join!(
        upload(tb.clone(), gb),
        upload(tb.clone(), gb),
        upload(tb.clone(), gb)
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16(), c.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 201, 413]);
}

/// A JSON body must be declared as JSON (a cross-site form or `text/plain` post is not),
/// and a body that does not arrive in time gets 408.
#[tokio::test]
async fn bodies_must_be_json_and_arrive_in_time() {
    let ws = WsConfig::default().with_body_timeout(std::time::Duration::from_millis(300));
    let server = start_with(test_config(), ws).await;
    let api = server.api();
    let body = r#"{"username":"mallory","password":"correct horse battery","display_name":"M"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = api
            .http
            .post(format!("{}/v1/register", api.base))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = api.raw(request).await;
        assert_eq!(
            answer.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {answer:?}"
        );
        assert_eq!(answer.code(), "invalid");
    }
    let declared = api
        .raw(
            api.http
                .post(format!("{}/v1/register", api.base))
                .header("content-type", "application/json; charset=utf-8")
                .body(body),
        )
        .await;
    assert_eq!(declared.status, StatusCode::CREATED, "{declared:?}");

    // Headers promising 100 bytes, then 10, then silence.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(server.http).await.unwrap();
    socket
        .write_all(b"POST /v1/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"username")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut answer))
        .await
        .expect("the server answers a stalled body")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
}

/// Transfers beyond `max_transfers` at once get 503 with `Retry-After`; the permit comes
/// back when the transfer ends, even one whose client vanished.
#[tokio::test]
async fn too_many_transfers_at_once_is_503() {
    use tokio::io::AsyncWriteExt;

    let ws = WsConfig::default().with_max_transfers(1);
    let server = start_with(test_config(), ws).await;
    let api = server.api();
    let (_, ta) = api.user("alice").await;
    let g = api.group(&ta).await;

    // An upload that starts and then stalls mid-file, holding the only permit.
    let mut stalled = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let part = format!(
        "--b\r\ncontent-disposition: form-data; name=\"conversation\"\r\n\r\ng:{g}\r\n--b\r\ncontent-disposition: form-data; name=\"file\"\r\n\r\nPNG-start"
    );
    let head = format!(
        "POST /v1/attachments HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ta}\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: 100000\r\n\r\n{part}"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let chat = format!("g:{g}");
    let upload = || api.upload(&ta, &chat, Part::bytes(png(1, 1)));
    let busy = upload().await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE, "{busy:?}");
    assert_eq!(busy.code(), "unavailable");
    assert_eq!(busy.headers["retry-after"], "1");

    drop(stalled);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let answer = upload().await;
        if answer.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the permit never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
