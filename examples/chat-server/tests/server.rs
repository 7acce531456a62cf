//! The server binary as an operator runs it: settings from a TOML file, the page with its
//! security headers, `/healthz`, `/metrics`, and a graceful stop on SIGTERM that tells
//! connected clients why.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use im_core::client::Client;
use im_core::protocol::{Event, KickCode};

struct Server {
    child: Child,
    http: String,
    admin: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with its settings in a TOML file: listeners on port 0, memory
/// storage, uploads in a temporary directory.
fn start() -> Server {
    start_with("", 2)
}

/// [`start`] with more settings, reading `lines` address lines.
fn start_with(extra: &str, lines: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chat.toml");
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:0\"\ntcp = \"127.0.0.1:0\"\ndatabase = \"memory\"\nuploads = \"{}\"\nlog = \"warn\"\n{extra}",
            dir.path().join("uploads").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server binary starts");
    let mut read = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut http, mut admin) = (None, None);
    for _ in 0..lines {
        let line = read
            .next()
            .expect("the server prints its addresses")
            .unwrap();
        let addr = line.split("http://").nth(1).map(|a| a.trim().to_owned());
        if line.contains("admin") {
            admin = addr;
        } else if addr.is_some() {
            http = addr;
        }
    }
    Server {
        child,
        http: http.expect("an http:// line"),
        admin,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_health_and_metrics_are_served() {
    let server = start();
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.http);

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("app.js") && !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    for asset in ["/app.js", "/style.css"] {
        let response = http.get(format!("{base}{asset}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }

    let health: serde_json::Value = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let registered = http
        .post(format!("{base}/v1/register"))
        .header("content-type", "application/json")
        .body(r#"{"username":"ops","password":"correct horse","display_name":"Ops"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("im_requests_total{type=\"register\"} 1"),
        "metrics:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_clients_and_stops() {
    let mut server = start();
    let socket = im_transport_ws::connect(&format!("ws://{}/ws", server.http), 64 * 1024)
        .await
        .unwrap();
    let (client, mut events) = Client::connect(socket).await.unwrap();
    client
        .register("eve", "correct horse", "Eve")
        .await
        .unwrap();
    client
        .login("eve", "correct horse", "laptop")
        .await
        .unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let kicked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.next().await {
                Some(Event::Kicked { code, .. }) => return Some(code),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .expect("the client hears from the server in time");
    assert_eq!(kicked, Some(KickCode::Shutdown));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(exit.success(), "the server exits cleanly: {exit}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_can_have_an_address_of_their_own() {
    let server = start_with("admin = \"127.0.0.1:0\"\n", 3);
    let admin = server.admin.clone().expect("an admin address line");
    let http = reqwest::Client::new();
    for path in ["/healthz", "/metrics"] {
        let public = http
            .get(format!("http://{}{path}", server.http))
            .send()
            .await
            .unwrap();
        assert_eq!(public.status(), 404, "{path} is off the public address");
        let private = http
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(private.status(), 200, "{path} on the admin address");
    }
    let page = http
        .get(format!("http://{}/", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}
