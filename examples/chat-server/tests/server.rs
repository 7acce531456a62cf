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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_goes_out_gzipped_and_is_not_sent_again_while_current() {
    let server = start();
    let http = reqwest::Client::new();
    for (path, file) in [
        ("/", include_str!("../web/index.html")),
        ("/app.js", include_str!("../web/app.js")),
        ("/style.css", include_str!("../web/style.css")),
    ] {
        let url = format!("http://{}{path}", server.http);
        let plain = http.get(&url).send().await.unwrap();
        assert_eq!(plain.status(), 200);
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(plain.text().await.unwrap(), file, "{path}");

        let zipped = http
            .get(&url)
            .header("accept-encoding", "br;q=1.0, gzip;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(zipped.headers()["etag"], etag.as_str());
        assert_eq!(zipped.headers()["vary"], "Accept-Encoding");
        let bytes = zipped.bytes().await.unwrap();
        assert!(
            bytes.len() * 2 < file.len(),
            "{path}: {} bytes gzipped of {}",
            bytes.len(),
            file.len()
        );
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut unzipped)
            .unwrap();
        assert_eq!(unzipped, file, "{path}");

        let refused = http
            .get(&url)
            .header("accept-encoding", "gzip;q=0")
            .send()
            .await
            .unwrap();
        assert!(refused.headers().get("content-encoding").is_none());

        let current = http
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(current.status(), 304, "{path}");
        assert!(current.bytes().await.unwrap().is_empty());
        let stale = http
            .get(&url)
            .header("if-none-match", "W/\"0123456789abcdef\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200, "{path}");
    }
}

/// Runs the binary to its end with `args`, in `dir`, and returns its exit status and
/// what it wrote to stdout and stderr.
fn run_to_end(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_BACKTRACE");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("the server binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The names in `dir`.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_failed_start_leaves_no_files_and_says_why() {
    // An address in use: found before the database or the uploads directory is made.
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let (ok, _, stderr) = run_to_end(dir.path(), &["--http", &taken, "--tcp", "127.0.0.1:0"], &[]);
    assert!(!ok);
    assert!(
        stderr.contains("--http") && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert_eq!(listing(dir.path()), Vec::<String>::new());

    // A database that cannot open, after the uploads directory was made: it goes again.
    let (ok, _, stderr) = run_to_end(
        dir.path(),
        &[
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--database",
            "sqlite://missing/chat.db?mode=rwc",
        ],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("opening the database"), "{stderr}");
    assert_eq!(listing(dir.path()), Vec::<String>::new());

    // A setting that cannot work: refused before anything is bound or made.
    let (ok, _, stderr) = run_to_end(dir.path(), &["--max-sessions", "0"], &[]);
    assert!(!ok);
    assert!(stderr.contains("--max-sessions"), "{stderr}");
    assert_eq!(listing(dir.path()), Vec::<String>::new());
}

/// A build without the cluster's features says so, with the command that builds them,
/// before anything is made; and tests/cluster.rs is skipped, loudly.
#[cfg(not(all(feature = "postgres", feature = "redis")))]
#[test]
fn a_build_without_the_cluster_features_refuses_cluster_mode_at_once() {
    eprintln!("SKIPPED: tests/cluster.rs needs `--features cluster` (CI runs --all-features)");
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run_to_end(
        dir.path(),
        &[
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--database",
            "postgres://postgres@127.0.0.1/im",
            "--redis",
            "redis://127.0.0.1:6379",
        ],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("--features"), "{stderr}");
    assert_eq!(listing(dir.path()), Vec::<String>::new());
}

#[cfg(feature = "postgres")]
#[test]
fn an_unreachable_database_server_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let started = std::time::Instant::now();
    let (ok, _, stderr) = run_to_end(
        dir.path(),
        &[
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--database",
            &format!("postgres://postgres@127.0.0.1:{port}/im"),
        ],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("Connection refused"), "{stderr}");
    // A pool would have retried for its whole acquire timeout (10 s).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(listing(dir.path()), Vec::<String>::new());
}

#[test]
fn print_config_shows_flags_over_variables_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("chat.toml"),
        "log = \"warn\"\n[engine]\nmax_pins = 7\nmax_friends = 70\n[engine.rate_limits]\nsearches_per_user_per_minute = 5\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = run_to_end(
        dir.path(),
        &[
            "--config",
            "chat.toml",
            "--print-config",
            "--max-pins",
            "9",
            "--recall-window",
            "30s",
        ],
        &[("IM_MAX_FRIENDS", "80"), ("IM_MAX_PINS", "8")],
    );
    assert!(ok, "{stderr}");
    let printed: toml::Table = toml::from_str(&stdout).unwrap();
    let engine = &printed["engine"];
    assert_eq!(engine["max_pins"].as_integer(), Some(9), "the flag wins");
    assert_eq!(
        engine["max_friends"].as_integer(),
        Some(80),
        "the variable wins over the file"
    );
    assert_eq!(
        engine["rate_limits"]["searches_per_user_per_minute"].as_integer(),
        Some(5)
    );
    assert_eq!(engine["recall_window"].as_str(), Some("30s"));
    assert_eq!(
        engine["max_group_members"].as_integer(),
        Some(2000),
        "the library's default"
    );
    assert_eq!(printed["log"].as_str(), Some("warn"));
    // Printing opens nothing.
    assert_eq!(listing(dir.path()), vec!["chat.toml".to_owned()]);
    // What was printed, read back as a file, is the same settings.
    std::fs::write(dir.path().join("printed.toml"), &stdout).unwrap();
    let (ok, again, _) = run_to_end(
        dir.path(),
        &["--config", "printed.toml", "--print-config"],
        &[],
    );
    assert!(ok);
    assert_eq!(again, stdout);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .current_dir(dir.path())
        .args([
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--database",
            "memory",
        ])
        .args(["--log-format", "json", "--log", "info"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    out.next().unwrap().unwrap();
    out.next().unwrap().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 2, "{stderr}");
    for line in &lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            event["timestamp"].is_string() && event["level"].is_string(),
            "{line}"
        );
    }
    assert!(
        stderr.contains("\"message\":\"chat-server listening\""),
        "{stderr}"
    );
}

#[test]
fn sigterm_with_no_sessions_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .current_dir(dir.path())
        .args([
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--log",
            "warn",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    out.next().unwrap().unwrap();
    out.next().unwrap().unwrap();
    let started = std::time::Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    // Measured at about 5 ms; nothing waits on a timer when nobody is connected.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_and_nobody_else_can() {
    // Two registrations per address per minute: the third from one address is refused.
    let register = |http: reqwest::Client, base: String, name: String, forwarded: &'static str| async move {
        http.post(format!("{base}/v1/register"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", forwarded)
            .body(format!(
                r#"{{"username":"{name}","password":"correct horse","display_name":"{name}"}}"#
            ))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let limits = "[engine]\nhash_cost = { memory_kib = 1024, iterations = 1 }\n[engine.rate_limits]\nauth_per_address_per_minute = 2\n";

    let behind_proxy = start_with(
        &format!("{limits}[gateway]\ntrusted_proxies = [\"127.0.0.0/8\"]\n"),
        2,
    );
    let base = format!("http://{}", behind_proxy.http);
    let http = reqwest::Client::new();
    for (i, client) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        for j in 0..2 {
            let status = register(http.clone(), base.clone(), format!("p{i}x{j}"), client).await;
            assert_eq!(status, 201, "client {client}, registration {j}");
        }
    }
    let third = register(http.clone(), base.clone(), "p0x2".into(), "203.0.113.1").await;
    assert_eq!(third, 429, "a third from one client behind the proxy");

    // Without trusted proxies the header is the client's word and counts for nothing:
    // every request is the peer's, 127.0.0.1.
    let direct = start_with(limits, 2);
    let base = format!("http://{}", direct.http);
    let statuses = [
        register(http.clone(), base.clone(), "direct1".into(), "203.0.113.1").await,
        register(http.clone(), base.clone(), "direct2".into(), "203.0.113.2").await,
        register(http.clone(), base.clone(), "direct3".into(), "203.0.113.3").await,
    ];
    assert_eq!(statuses, [201, 201, 429]);
}

/// POSTs JSON to the server and returns the status and the body.
async fn post(
    http: &reqwest::Client,
    url: String,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_by_a_code_the_operators_program_sends() {
    use std::os::unix::fs::PermissionsExt as _;
    let scripts = tempfile::tempdir().unwrap();
    let sent = scripts.path().join("sent.txt");
    let script = scripts.path().join("send-code");
    // The operator's sender: here it appends what it was given to a file.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$IM_CODE_CONTACT $IM_CODE $#\" >> '{}'\n",
            sent.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = start_with(
        &format!(
            "registration = \"code\"\ncode_command = \"{}\"\n[engine.hash_cost]\nmemory_kib = 1024\niterations = 1\n",
            script.display()
        ),
        2,
    );
    let base = format!("http://{}/v1", server.http);
    let http = reqwest::Client::new();
    let account = |proof: Option<&str>| {
        let mut body = serde_json::json!({
            "username": "coded", "password": "correct horse", "display_name": "Coded",
            "contact": "Coded@Example.com",
        });
        if let Some(proof) = proof {
            body["proof"] = proof.into();
        }
        body
    };

    let (status, body) = post(&http, format!("{base}/register"), account(None)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("proof_required")),
        "{body}"
    );
    let (status, body) = post(
        &http,
        format!("{base}/codes"),
        serde_json::json!({"contact": "not an address"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid")),
        "{body}"
    );
    let (status, _) = post(
        &http,
        format!("{base}/codes"),
        serde_json::json!({"contact": "Coded@Example.com"}),
    )
    .await;
    assert_eq!(status, 204);
    let line = std::fs::read_to_string(&sent).unwrap();
    let mut words = line.split_whitespace();
    assert_eq!(
        words.next(),
        Some("coded@example.com"),
        "the address, normalised: {line}"
    );
    let code = words.next().unwrap().to_owned();
    assert_eq!(
        words.next(),
        Some("0"),
        "nothing on the command line: {line}"
    );
    // Asking again at once is refused, with when to retry.
    let (status, body) = post(
        &http,
        format!("{base}/codes"),
        serde_json::json!({"contact": "coded@example.com"}),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 30_000)
    );

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (status, body) = post(&http, format!("{base}/register"), account(Some(wrong))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("proof_required")),
        "{body}"
    );
    let (status, body) = post(&http, format!("{base}/register"), account(Some(&code))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["username"], "coded");
    // One code, one account.
    let mut again = account(Some(&code));
    again["username"] = "coded2".into();
    let (status, _) = post(&http, format!("{base}/register"), again).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_refuses_everyone_and_a_failing_sender_says_so() {
    let closed = start_with("registration = \"closed\"\n", 2);
    let http = reqwest::Client::new();
    let (status, body) = post(
        &http,
        format!("http://{}/v1/register", closed.http),
        serde_json::json!({"username": "nobody", "password": "correct horse", "display_name": "N"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    let failing = start_with(
        "registration = \"code\"\ncode_command = \"/bin/false\"\n",
        2,
    );
    let (status, body) = post(
        &http,
        format!("http://{}/v1/codes", failing.http),
        serde_json::json!({"contact": "someone@example.com"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    // Nothing was sent, so asking again is not held back.
    let (status, _) = post(
        &http,
        format!("http://{}/v1/codes", failing.http),
        serde_json::json!({"contact": "someone@example.com"}),
    )
    .await;
    assert_eq!(status, 503);

    let open = start();
    let (status, body) = post(
        &http,
        format!("http://{}/v1/codes", open.http),
        serde_json::json!({"contact": "someone@example.com"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
}
