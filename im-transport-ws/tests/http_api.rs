//! The HTTP API, route by route: every route of `routes::ROUTES` is called at least once
//! (the tour checks it), with the status the OpenAPI document gives it.

mod common;

use std::collections::BTreeSet;

use common::{Answer, Api, PASSWORD, png, start};
use im_transport_ws::routes::ROUTES;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Calls routes and remembers which templates it called.
struct Tour {
    api: Api,
    seen: BTreeSet<(String, &'static str)>,
}

impl Tour {
    async fn call(
        &mut self,
        method: Method,
        template: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.seen.insert((method.to_string(), template));
        self.api.call(method, path, token, body).await
    }

    async fn ok(
        &mut self,
        method: Method,
        template: &'static str,
        path: &str,
        token: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        let answer = self
            .call(method.clone(), template, path, Some(token), body)
            .await;
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        answer.body
    }
}

#[tokio::test]
async fn every_route_answers_with_its_documented_status() {
    let server = start().await;
    let mut t = Tour {
        api: server.api(),
        seen: BTreeSet::new(),
    };
    use Method as M;
    use StatusCode as S;

    // Accounts.
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let registered = t
            .call(
                M::POST,
                "/v1/register",
                "/v1/register",
                None,
                Some(json!({"username": name, "password": PASSWORD, "display_name": name})),
            )
            .await;
        assert_eq!(registered.status, S::CREATED, "{registered:?}");
        assert_eq!(registered.body["type"], "user");
        // This server's gate sends no codes (the engine's default): 403, as documented.
        let code = t
            .call(
                M::POST,
                "/v1/codes",
                "/v1/codes",
                None,
                Some(json!({"contact": format!("{name}@example.com")})),
            )
            .await;
        assert_eq!(
            (code.status, code.body["code"].as_str()),
            (S::FORBIDDEN, Some("forbidden")),
            "{code:?}"
        );
        let login = t
            .call(M::POST, "/v1/login", "/v1/login", None, Some(json!({"username": name, "password": PASSWORD, "device": {"id": "web-1", "platform": "web"}})))
            .await;
        assert_eq!(login.status, S::OK, "{login:?}");
        assert_eq!(login.body["type"], "session");
        ids.push(login.body["user"]["id"].as_u64().unwrap());
        tokens.push(login.body["token"].as_str().unwrap().to_owned());
    }
    let (alice, bob, carol) = (ids[0], ids[1], ids[2]);
    let (ta, tb, tc) = (tokens[0].as_str(), tokens[1].as_str(), tokens[2].as_str());

    let devices = t
        .ok(M::GET, "/v1/devices", "/v1/devices", ta, None, S::OK)
        .await;
    assert_eq!(devices["devices"][0]["id"], "web-1");
    let profile = t
        .ok(
            M::PATCH,
            "/v1/profile",
            "/v1/profile",
            ta,
            Some(json!({"display_name": "Alice L."})),
            S::OK,
        )
        .await;
    assert_eq!(profile["user"]["display_name"], "Alice L.", "{profile}");
    let found = t
        .ok(
            M::GET,
            "/v1/users/by-name/{username}",
            "/v1/users/by-name/bob",
            ta,
            None,
            S::OK,
        )
        .await;
    assert_eq!(found["user"]["id"], bob);
    let users = t
        .ok(
            M::GET,
            "/v1/users",
            &format!("/v1/users?users={alice},{carol}"),
            ta,
            None,
            S::OK,
        )
        .await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);

    // Contacts.
    t.ok(
        M::POST,
        "/v1/friend-requests",
        "/v1/friend-requests",
        ta,
        Some(json!({"user": bob, "note": "hi"})),
        S::NO_CONTENT,
    )
    .await;
    let requests = t
        .ok(
            M::GET,
            "/v1/friend-requests",
            "/v1/friend-requests",
            tb,
            None,
            S::OK,
        )
        .await;
    assert_eq!(requests["incoming"][0]["from"], alice);
    t.ok(
        M::POST,
        "/v1/friend-requests/{user}/accept",
        &format!("/v1/friend-requests/{alice}/accept"),
        tb,
        None,
        S::NO_CONTENT,
    )
    .await;
    t.api.befriend((carol, tc), (alice, ta)).await;
    t.ok(
        M::POST,
        "/v1/friend-requests",
        "/v1/friend-requests",
        tc,
        Some(json!({"user": bob})),
        S::NO_CONTENT,
    )
    .await;
    t.ok(
        M::POST,
        "/v1/friend-requests/{user}/decline",
        &format!("/v1/friend-requests/{carol}/decline"),
        tb,
        None,
        S::NO_CONTENT,
    )
    .await;
    let friends = t
        .ok(M::GET, "/v1/friends", "/v1/friends", tb, None, S::OK)
        .await;
    assert_eq!(
        friends["friends"],
        json!([{"user": alice, "since": friends["friends"][0]["since"]}])
    );
    t.ok(
        M::PUT,
        "/v1/blocked/{user}",
        &format!("/v1/blocked/{carol}"),
        ta,
        None,
        S::NO_CONTENT,
    )
    .await;
    let blocked = t
        .ok(M::GET, "/v1/blocked", "/v1/blocked", ta, None, S::OK)
        .await;
    assert_eq!(blocked["users"], json!([carol]));
    t.ok(
        M::DELETE,
        "/v1/blocked/{user}",
        &format!("/v1/blocked/{carol}"),
        ta,
        None,
        S::NO_CONTENT,
    )
    .await;

    // Groups.
    let group = t
        .ok(
            M::POST,
            "/v1/groups",
            "/v1/groups",
            ta,
            Some(json!({"name": "team", "members": [bob], "open": true})),
            S::CREATED,
        )
        .await;
    let g = group["group"]["id"].as_u64().unwrap();
    let mine = t
        .ok(M::GET, "/v1/groups", "/v1/groups", tb, None, S::OK)
        .await;
    assert_eq!(mine["groups"][0]["id"], g);
    t.ok(
        M::GET,
        "/v1/groups/{group}",
        &format!("/v1/groups/{g}"),
        tb,
        None,
        S::OK,
    )
    .await;
    let renamed = t
        .ok(
            M::PUT,
            "/v1/groups/{group}/name",
            &format!("/v1/groups/{g}/name"),
            ta,
            Some(json!({"name": "the team"})),
            S::OK,
        )
        .await;
    assert_eq!(renamed["group"]["name"], "the team");
    t.ok(
        M::POST,
        "/v1/groups/{group}/join",
        &format!("/v1/groups/{g}/join"),
        tc,
        None,
        S::OK,
    )
    .await;
    let members = t
        .ok(
            M::GET,
            "/v1/groups/{group}/members",
            &format!("/v1/groups/{g}/members?limit=2"),
            ta,
            None,
            S::OK,
        )
        .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 2);
    assert_eq!(members["more"], true);
    t.ok(
        M::DELETE,
        "/v1/groups/{group}/members/{user}",
        &format!("/v1/groups/{g}/members/{carol}"),
        ta,
        None,
        S::OK,
    )
    .await;
    t.ok(
        M::POST,
        "/v1/groups/{group}/members",
        &format!("/v1/groups/{g}/members"),
        ta,
        Some(json!({"users": [carol]})),
        S::OK,
    )
    .await;
    t.ok(
        M::PUT,
        "/v1/groups/{group}/members/{user}/role",
        &format!("/v1/groups/{g}/members/{bob}/role"),
        ta,
        Some(json!({"role": "admin"})),
        S::OK,
    )
    .await;
    let moved = t
        .ok(
            M::POST,
            "/v1/groups/{group}/transfer",
            &format!("/v1/groups/{g}/transfer"),
            ta,
            Some(json!({"to": bob})),
            S::OK,
        )
        .await;
    assert_eq!(moved["group"]["owner"], bob);
    t.ok(
        M::POST,
        "/v1/groups/{group}/leave",
        &format!("/v1/groups/{g}/leave"),
        tc,
        None,
        S::OK,
    )
    .await;

    // Messages in the direct chat.
    let d = format!("d:{}:{}", alice.min(bob), alice.max(bob));
    let sent = t
        .ok(
            M::POST,
            "/v1/conversations/{conversation}/messages",
            &format!("/v1/conversations/{d}/messages"),
            ta,
            Some(json!({"client_id": "c1", "body": {"type": "text", "text": "hello"}})),
            S::CREATED,
        )
        .await;
    assert_eq!(sent["seq"], 1);
    assert_eq!(sent["duplicate"], false);
    t.ok(
        M::POST,
        "/v1/conversations/{conversation}/messages",
        &format!("/v1/conversations/{d}/messages"),
        ta,
        Some(json!({"client_id": "c2", "body": {"type": "text", "text": "second"}})),
        S::CREATED,
    )
    .await;
    let history = t
        .ok(
            M::GET,
            "/v1/conversations/{conversation}/messages",
            &format!("/v1/conversations/{d}/messages?after=0&limit=10"),
            tb,
            None,
            S::OK,
        )
        .await;
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello", "second"]);
    let edited = t
        .ok(
            M::PUT,
            "/v1/conversations/{conversation}/messages/{seq}",
            &format!("/v1/conversations/{d}/messages/1"),
            ta,
            Some(json!({"client_id": "c3", "body": {"type": "text", "text": "hello!"}})),
            S::OK,
        )
        .await;
    assert_eq!(edited["type"], "sent");
    t.ok(
        M::POST,
        "/v1/conversations/{conversation}/messages/{seq}/recall",
        &format!("/v1/conversations/{d}/messages/2/recall"),
        ta,
        Some(json!({"client_id": "c4"})),
        S::OK,
    )
    .await;
    t.ok(
        M::PUT,
        "/v1/conversations/{conversation}/pins/{seq}",
        &format!("/v1/conversations/{d}/pins/1"),
        tb,
        None,
        S::NO_CONTENT,
    )
    .await;
    let pins = t
        .ok(
            M::GET,
            "/v1/conversations/{conversation}/pins",
            &format!("/v1/conversations/{d}/pins"),
            ta,
            None,
            S::OK,
        )
        .await;
    assert_eq!(pins["pins"][0]["seq"], 1, "{pins}");
    assert_eq!(pins["pins"][0]["by"], bob);
    t.ok(
        M::DELETE,
        "/v1/conversations/{conversation}/pins/{seq}",
        &format!("/v1/conversations/{d}/pins/1"),
        ta,
        None,
        S::NO_CONTENT,
    )
    .await;
    let hits = t
        .ok(
            M::GET,
            "/v1/search",
            &format!("/v1/search?query=HELLO&conversation={d}&limit=5"),
            tb,
            None,
            S::OK,
        )
        .await;
    assert_eq!(hits["type"], "found", "{hits}");
    assert_eq!(hits["messages"][0]["body"]["text"], "hello!", "{hits}");
    assert_eq!(hits["more"], false);
    t.ok(
        M::POST,
        "/v1/conversations/{conversation}/messages/{seq}/reaction",
        &format!("/v1/conversations/{d}/messages/1/reaction"),
        tb,
        Some(json!({"emoji": "👍"})),
        S::OK,
    )
    .await;
    let page = t
        .ok(
            M::GET,
            "/v1/conversations/{conversation}/messages",
            &format!("/v1/conversations/{d}/messages"),
            ta,
            None,
            S::OK,
        )
        .await;
    assert_eq!(page["reactions"][0]["emoji"], "👍", "{page}");
    assert_eq!(page["reactions"][0]["users"], json!([bob]));
    t.ok(
        M::DELETE,
        "/v1/conversations/{conversation}/messages/{seq}",
        &format!("/v1/conversations/{d}/messages/1"),
        tb,
        None,
        S::NO_CONTENT,
    )
    .await;
    let delivered = t
        .ok(
            M::POST,
            "/v1/conversations/{conversation}/delivered",
            &format!("/v1/conversations/{d}/delivered"),
            tb,
            Some(json!({"seq": 2})),
            S::OK,
        )
        .await;
    assert_eq!(delivered["delivered_seq"], 2);
    let read = t
        .ok(
            M::POST,
            "/v1/conversations/{conversation}/read",
            &format!("/v1/conversations/{d}/read"),
            tb,
            Some(json!({"seq": 2})),
            S::OK,
        )
        .await;
    assert_eq!(read["read_seq"], 2);
    let forwarded = t
        .ok(
            M::POST,
            "/v1/conversations/{conversation}/messages/{seq}/forward",
            &format!("/v1/conversations/{d}/messages/1/forward"),
            ta,
            Some(json!({ "to": d })),
            S::CREATED,
        )
        .await;
    assert_eq!(forwarded["type"], "sent");
    assert!(
        forwarded["client_id"].is_string(),
        "made by the server: {forwarded}"
    );
    let gc = format!("g:{g}");
    let receipts = t
        .ok(
            M::GET,
            "/v1/conversations/{conversation}/receipts",
            &format!("/v1/conversations/{gc}/receipts?seq=1"),
            tb,
            None,
            S::OK,
        )
        .await;
    assert_eq!(receipts["type"], "receipts");
    let conversations = t
        .ok(
            M::GET,
            "/v1/conversations",
            "/v1/conversations",
            ta,
            None,
            S::OK,
        )
        .await;
    let direct = conversations["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation"] == d.as_str())
        .unwrap()
        .clone();
    assert_eq!(direct["peer_read_seq"], 2, "{direct}");
    t.ok(
        M::POST,
        "/v1/conversations/{conversation}/typing",
        &format!("/v1/conversations/{d}/typing"),
        ta,
        Some(json!({"active": true})),
        S::NO_CONTENT,
    )
    .await;
    let presence = t
        .ok(
            M::GET,
            "/v1/presence",
            &format!("/v1/presence?users={bob}"),
            ta,
            None,
            S::OK,
        )
        .await;
    assert_eq!(
        presence["users"][0]["online"], false,
        "an HTTP caller is never online"
    );
    let signaled = t
        .ok(
            M::POST,
            "/v1/signals",
            "/v1/signals",
            ta,
            Some(json!({"to": bob, "call_id": "call-1", "signal": {"type": "hangup"}})),
            S::OK,
        )
        .await;
    assert_eq!(signaled["online"], false);

    // Attachments.
    t.seen.insert(("POST".into(), "/v1/attachments"));
    let dot = reqwest::multipart::Part::bytes(png(3, 2)).file_name("dot.png");
    let uploaded = t.api.upload(ta, &d, dot).await;
    assert_eq!(uploaded.status, S::CREATED, "{uploaded:?}");
    assert_eq!(uploaded.body["mime"], "image/png");
    assert_eq!(
        (
            uploaded.body["width"].as_u64(),
            uploaded.body["height"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let url = uploaded.body["url"].as_str().unwrap().to_owned();
    // Bob may fetch it once a message shows it (tests/attachments.rs has the rules).
    let shown = t
        .api
        .call(
            M::POST,
            &format!("/v1/conversations/{d}/messages"),
            Some(ta),
            Some(json!({"client_id": "dot", "body": {"type": "image", "url": url, "mime": "image/png", "size": 1}})),
        )
        .await;
    assert_eq!(shown.status, S::CREATED, "{shown:?}");
    t.seen.insert(("GET".into(), "/v1/attachments/{id}"));
    let fetched = t
        .api
        .http
        .get(format!("{}{url}", t.api.base))
        .bearer_auth(tb)
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), S::OK);
    assert_eq!(fetched.headers()["content-type"], "image/png");
    assert_eq!(
        fetched.bytes().await.unwrap().as_ref(),
        png(3, 2).as_slice()
    );

    // The direct conversation by the other user's id, and a send without a client_id:
    // the server makes one, returns it, and a retry with it is recognised.
    let sent = t
        .ok(
            M::POST,
            "/v1/direct/{user}/messages",
            &format!("/v1/direct/{bob}/messages"),
            ta,
            Some(json!({"body": {"type": "text", "text": "by id"}})),
            S::CREATED,
        )
        .await;
    assert_eq!(sent["conversation"], d.as_str());
    assert_eq!(sent["duplicate"], false);
    let client_id = sent["client_id"]
        .as_str()
        .expect("a client_id made")
        .to_owned();
    let again = t
        .api
        .call(
            M::POST,
            &format!("/v1/direct/{bob}/messages"),
            Some(ta),
            Some(json!({"client_id": client_id, "body": {"type": "text", "text": "by id"}})),
        )
        .await;
    assert_eq!(again.body["duplicate"], true, "{again:?}");
    assert_eq!(again.body["seq"], sent["seq"]);
    assert!(
        again.body.get("client_id").is_none(),
        "given, so not returned"
    );
    let history = t
        .ok(
            M::GET,
            "/v1/direct/{user}/messages",
            &format!("/v1/direct/{alice}/messages?limit=1"),
            tb,
            None,
            S::OK,
        )
        .await;
    assert_eq!(history["messages"][0]["body"]["text"], "by id");
    assert_eq!(history["messages"][0]["client_id"], client_id.as_str());
    // A query parameter given twice: a list takes every value, anything else is refused.
    let users = t
        .api
        .call(
            M::GET,
            &format!("/v1/users?users={alice}&users={carol}"),
            Some(ta),
            None,
        )
        .await;
    assert_eq!(
        users.body["users"].as_array().map(Vec::len),
        Some(2),
        "{users:?}"
    );
    let twice = t
        .api
        .call(
            M::GET,
            &format!("/v1/direct/{bob}/messages?limit=1&limit=2"),
            Some(ta),
            None,
        )
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (S::UNPROCESSABLE_ENTITY, "invalid"),
        "{twice:?}"
    );

    // The document and the socket.
    let doc = t
        .call(M::GET, "/openapi.json", "/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, S::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    t.seen.insert(("GET".into(), "/ws"));
    let (_, response) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    assert_eq!(response.status(), S::SWITCHING_PROTOCOLS);

    // Accounts, last: they end sessions.
    t.ok(
        M::POST,
        "/v1/password",
        "/v1/password",
        tc,
        Some(json!({"old_password": PASSWORD, "new_password": "a new horse battery"})),
        S::NO_CONTENT,
    )
    .await;
    let second = t
        .api
        .call(
            M::POST,
            "/v1/login",
            None,
            Some(json!({"username": "bob", "password": PASSWORD, "device": {"id": "phone"}})),
        )
        .await;
    assert_eq!(second.status, S::OK);
    t.ok(
        M::DELETE,
        "/v1/devices/{device}",
        "/v1/devices/phone",
        tb,
        None,
        S::NO_CONTENT,
    )
    .await;
    let revoked = t
        .api
        .call(M::GET, "/v1/friends", second.body["token"].as_str(), None)
        .await;
    assert_eq!(
        revoked.status,
        S::UNAUTHORIZED,
        "a revoked device's token is dead"
    );
    t.ok(
        M::DELETE,
        "/v1/friends/{user}",
        &format!("/v1/friends/{alice}"),
        tb,
        None,
        S::NO_CONTENT,
    )
    .await;
    t.ok(M::POST, "/v1/logout", "/v1/logout", ta, None, S::NO_CONTENT)
        .await;
    let after = t.api.call(M::GET, "/v1/friends", Some(ta), None).await;
    assert_eq!(after.status, S::UNAUTHORIZED, "a logged-out token is dead");

    let all: BTreeSet<(String, &'static str)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    let missed: Vec<_> = all.difference(&t.seen).collect();
    assert!(
        missed.is_empty(),
        "routes the tour did not call: {missed:?}"
    );
}
