//! The admin API on the admin address: every route refuses a request without the token,
//! each does what its document says, and the document lists exactly the routes served.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use im_core::client::Client;
use im_core::protocol::{Event, KickCode};
use serde_json::{Value, json};

const TOKEN: &str = "an-admin-token-for-tests";
const DOCUMENT: &str = include_str!("../admin-openapi.json");

struct Server {
    child: Child,
    http: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server with its admin address, and the admin token if `token`.
fn start(token: bool) -> Server {
    start_with(token, "")
}

/// [`start`] with more top-level settings.
fn start_with(token: bool, extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chat.toml");
    let token = if token {
        format!("admin_token = \"{TOKEN}\"\n")
    } else {
        String::new()
    };
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:0\"\ntcp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{token}{extra}\
             database = \"memory\"\nuploads = \"{}\"\nlog = \"warn\"\n\
             [engine.hash_cost]\nmemory_kib = 1024\niterations = 1\n",
            dir.path().join("uploads").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut http, mut admin) = (None, None);
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let addr = line.split("http://").nth(1).map(|a| a.trim().to_owned());
        if line.contains("admin") {
            admin = addr;
        } else if addr.is_some() {
            http = addr;
        }
    }
    Server {
        child,
        http: http.unwrap(),
        admin: admin.unwrap(),
        _dir: dir,
    }
}

/// Sends a request to the admin address; returns the status and the JSON body (or null).
async fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("http://{}{path}", server.admin);
    let mut request = http.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every (method, path) the document lists, with `{id}` and `{device}` filled in.
fn documented(id: u64, device: &str) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
    let mut routes = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let path = path
                .replace("{id}", &id.to_string())
                .replace("{device}", device)
                .replace("{invite}", "no-such-invite");
            let path = if path.ends_with("/users") {
                format!("{path}?username=ops")
            } else {
                path
            };
            routes.push((method.to_uppercase(), path));
        }
    }
    routes
}

async fn public_post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/{path}", server.http))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn login_body(password: &str, device: &str) -> Value {
    json!({"username": "ops", "password": password, "device": {"id": device}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_needs_the_token() {
    let server = start(true);
    let routes = documented(1, "phone");
    assert!(routes.len() >= 9, "{routes:?}");
    for (method, path) in &routes {
        for token in [None, Some("not-the-admin-token-at-all"), Some("")] {
            let (status, body) = call(&server, method, path, token, None).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert_eq!(body["code"], "unauthorized");
        }
    }
    // The public address has none of it, token or not.
    let response = reqwest::Client::new()
        .get(format!("http://{}/admin/v1/stats", server.http))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Without a token set, the admin address serves health and metrics only.
    let off = start(false);
    let (status, _) = call(&off, "GET", "/admin/v1/stats", Some(TOKEN), None).await;
    assert_eq!(status, 404);
    let health = reqwest::get(format!("http://{}/healthz", off.admin))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_routes_do_what_the_document_says() {
    let server = start(true);
    let t = Some(TOKEN);
    let (status, registered) = public_post(
        &server,
        "register",
        json!({"username": "ops", "password": "correct horse", "display_name": "Ops"}),
    )
    .await;
    assert_eq!(status, 201);
    let id = registered["user"]["id"].as_u64().unwrap();

    // A session over the WebSocket, and a device from an HTTP login.
    let socket = im_transport_ws::connect(&format!("ws://{}/ws", server.http), 64 * 1024)
        .await
        .unwrap();
    let (client, mut events) = Client::connect(socket).await.unwrap();
    client
        .login("ops", "correct horse", "laptop")
        .await
        .unwrap();
    let (status, _) = public_post(&server, "login", login_body("correct horse", "script")).await;
    assert_eq!(status, 200);

    let (status, stats) = call(&server, "GET", "/admin/v1/stats", t, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (stats["sessions"].as_u64(), stats["users_online"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        stats["node"].is_string() && stats["version"].is_string(),
        "{stats}"
    );
    let (_, sessions) = call(&server, "GET", "/admin/v1/sessions", t, None).await;
    assert_eq!(sessions["sessions"][0]["device"], "laptop", "{sessions}");
    assert_eq!(sessions["sessions"][0]["user"].as_u64(), Some(id));

    let (status, found) = call(&server, "GET", "/admin/v1/users?username=OPS", t, None).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["user"]["id"].as_u64(), Some(id));
    assert_eq!(found["disabled"], false);
    assert_eq!(found["devices"].as_array().unwrap().len(), 2);
    assert!(
        !found.to_string().contains("token"),
        "no tokens shown: {found}"
    );
    let (status, _) = call(&server, "GET", "/admin/v1/users/999", t, None).await;
    assert_eq!(status, 404);

    // Disable: the session is told and closed, logins are refused, devices are gone.
    let (status, body) = call(
        &server,
        "POST",
        &format!("/admin/v1/users/{id}/disable"),
        t,
        None,
    )
    .await;
    assert_eq!((status, body["changed"].as_bool()), (200, Some(true)));
    let kicked = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.next().await {
                Some(Event::Kicked { code, .. }) => return Some(code),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(kicked, Some(KickCode::Disabled));
    let (status, body) = public_post(&server, "login", login_body("correct horse", "script")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (_, found) = call(&server, "GET", &format!("/admin/v1/users/{id}"), t, None).await;
    assert_eq!(found["disabled"], true);
    assert_eq!(found["devices"], json!([]));
    let (_, body) = call(
        &server,
        "POST",
        &format!("/admin/v1/users/{id}/disable"),
        t,
        None,
    )
    .await;
    assert_eq!(body["changed"], false);
    let (status, body) = call(
        &server,
        "POST",
        &format!("/admin/v1/users/{id}/enable"),
        t,
        None,
    )
    .await;
    assert_eq!((status, body["changed"].as_bool()), (200, Some(true)));

    // A new password: the old one stops working.
    let (status, _) = call(
        &server,
        "POST",
        &format!("/admin/v1/users/{id}/password"),
        t,
        Some(json!({"password": "short"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = call(
        &server,
        "POST",
        &format!("/admin/v1/users/{id}/password"),
        t,
        Some(json!({"password": "a brand new password"})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = public_post(&server, "login", login_body("correct horse", "script")).await;
    assert_eq!(status, 401);
    let (status, _) = public_post(
        &server,
        "login",
        login_body("a brand new password", "script"),
    )
    .await;
    assert_eq!(status, 200);

    // One device signed out, then no longer there.
    let path = format!("/admin/v1/users/{id}/devices/script");
    let (status, _) = call(&server, "DELETE", &path, t, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&server, "DELETE", &path, t, None).await;
    assert_eq!(status, 404);

    // An account deleted: signed out, wiped, no longer able to log in; twice is fine.
    let (status, gone) = public_post(
        &server,
        "register",
        json!({"username": "gone", "password": "correct horse", "display_name": "Gone"}),
    )
    .await;
    assert_eq!(status, 201, "{gone}");
    let gone = gone["user"]["id"].as_u64().unwrap();
    let path = format!("/admin/v1/users/{gone}");
    let (status, body) = call(&server, "DELETE", &path, t, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["deleted"],
        json!({"groups": 0, "friends": 0, "requests": 0})
    );
    let (_, body) = call(&server, "GET", &path, t, None).await;
    assert_eq!(body["disabled"], true, "{body}");
    assert_eq!(body["user"]["display_name"], "Deleted account", "{body}");
    let gone_login =
        json!({"username": "gone", "password": "correct horse", "device": {"id": "d"}});
    let (status, _) = public_post(&server, "login", gone_login).await;
    assert_eq!(status, 401);
    let (status, _) = call(&server, "DELETE", &path, t, None).await;
    assert_eq!(status, 200, "deleting again is not an error");
    let (status, _) = call(&server, "DELETE", "/admin/v1/users/999999", t, None).await;
    assert_eq!(status, 404);

    // Every route of the document is one the server has (and no other is).
    for (method, path) in documented(id, "script") {
        let body =
            (path.ends_with("/password")).then(|| json!({"password": "a brand new password"}));
        let (status, answer) = call(&server, &method, &path, t, body).await;
        assert!(
            status != 405 && answer["message"] != "no such admin route",
            "{method} {path}: {status} {answer}"
        );
    }
    let (status, answer) = call(&server, "GET", "/admin/v1/nothing", t, None).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (404, Some("no such admin route"))
    );
}

/// With `--registration invite`, the codes the admin API makes admit registrations: as
/// many as their uses, none once withdrawn; the settings of an invite are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_from_the_admin_api_admit_registrations() {
    let server = start_with(true, "registration = \"invite\"\n");
    let t = Some(TOKEN);
    let register = |name: &str, proof: Option<&str>| {
        let mut body = json!({"username": name, "password": "correct horse", "display_name": name});
        if let Some(proof) = proof {
            body["proof"] = json!(proof);
        }
        body
    };
    let (status, body) = public_post(&server, "register", register("ann", None)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("proof_required"))
    );
    let (status, body) = public_post(&server, "codes", json!({"contact": "a@example.com"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    let (status, made) = call(
        &server,
        "POST",
        "/admin/v1/invites",
        t,
        Some(json!({"uses": 2, "valid_for": "1d", "note": "team"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let code = made["code"].as_str().unwrap().to_owned();
    assert_eq!(made["invite"]["uses_left"], 2);
    assert_eq!(made["invite"]["note"], "team");
    for bad in [
        json!({"uses": 0}),
        json!({"valid_for": "1s"}),
        json!({"bogus": 1}),
    ] {
        let (status, body) = call(&server, "POST", "/admin/v1/invites", t, Some(bad)).await;
        assert_eq!(status, 422, "{body}");
    }
    let (status, single) = call(&server, "POST", "/admin/v1/invites", t, None).await;
    assert_eq!(
        (status, single["invite"]["uses_left"].as_u64()),
        (201, Some(1))
    );

    for name in ["ann", "bea"] {
        let (status, body) = public_post(&server, "register", register(name, Some(&code))).await;
        assert_eq!(status, 201, "{name}: {body}");
    }
    let (status, body) = public_post(&server, "register", register("cid", Some(&code))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("proof_required")),
        "used up"
    );

    let (_, listed) = call(&server, "GET", "/admin/v1/invites", t, None).await;
    let uses: Vec<u64> = listed["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uses_left"].as_u64().unwrap())
        .collect();
    assert_eq!(uses, [1, 0], "newest first: {listed}");
    let id = single["invite"]["id"].as_str().unwrap();
    let path = format!("/admin/v1/invites/{id}");
    let (status, _) = call(&server, "DELETE", &path, t, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&server, "DELETE", &path, t, None).await;
    assert_eq!(status, 404);
    let withdrawn = single["code"].as_str().unwrap();
    let (status, body) = public_post(&server, "register", register("dee", Some(withdrawn))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("proof_required")),
        "withdrawn"
    );
}

#[test]
fn the_admin_document_validates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/admin-openapi.json");
    let output = Command::new("python3")
        .args(["-m", "openapi_spec_validator", path])
        .output();
    let required = std::env::var("IM_REQUIRE_OPENAPI_VALIDATOR").as_deref() == Ok("1");
    match output {
        Ok(out) if out.status.success() => {
            assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
        }
        Ok(out)
            if String::from_utf8_lossy(&out.stderr).contains("No module named") && !required =>
        {
            eprintln!("SKIPPED: openapi-spec-validator is not installed");
        }
        Ok(out) => panic!(
            "admin-openapi.json does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if !required => eprintln!("SKIPPED: no python3 to validate the document: {e}"),
        Err(e) => panic!("python3 is needed to validate admin-openapi.json: {e}"),
    }
}
