//! The web page end to end: the server binary on a free port, and `tests/browser/e2e.mjs`
//! driving two users in headless Chromium through it (register with a verification code
//! the server writes to its log, befriend, chat, typing,
//! read receipts, an image, an XSS attempt, a group with its previews and "seen by", two
//! tabs of one user on one connection, a message typed offline and kept across a reload,
//! a refused send with retry and discard), and a third user registering on a second
//! server, one that admits by invite, with a code made through its admin API.
//!
//! Needs `node`, `/usr/bin/chromium` and `tests/browser/node_modules/playwright-core`
//! (`npm ci` in `tests/browser`). Without them the test prints `SKIPPED` and passes,
//! unless `IM_REQUIRE_BROWSER=1` (as in CI), where it fails. The screenshots land in
//! `target/browser-e2e.png` (desktop) and `target/browser-e2e-375.png` (a phone's width).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the browser run may take (the script bounds itself at 120 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// A child process, killed when the test ends however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `name` on `PATH`, if there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Reads a pipe to the end on a thread of its own, so the child never blocks on it.
fn drain(pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut out = String::new();
        let _ = BufReader::new(pipe).read_to_string(&mut out);
        out
    })
}

/// Starts the server on free ports, as it runs by default (SQLite on a file, uploads in
/// a directory), both in `dir`, and returns it with its `http://` base URL.
/// Starts the server with registration by verification code, its log (where the codes
/// go) in `log`.
fn start_server(dir: &Path, log: &Path) -> (Guard, String) {
    let (server, base, _) = start_with(dir, log, &["--registration", "code"]);
    (server, base)
}

/// The admin token of the server started by invite.
const ADMIN_TOKEN: &str = "browser-test-admin-token";

/// Starts a second server, which admits by invite, in `dir`, and makes an invite of one
/// use on it through its admin API: the server, its base URL and the code.
fn start_invite_server(dir: &Path) -> (Guard, String, String) {
    let (server, base, admin) = start_with(
        dir,
        &dir.join("server.log"),
        &[
            "--registration",
            "invite",
            "--admin",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN_TOKEN,
        ],
    );
    let admin = admin.expect("the server printed its admin address");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let made: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{admin}/admin/v1/invites"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"uses": 1, "note": "browser test"}))
            .send()
            .await
            .expect("the admin API answers")
            .json()
            .await
            .expect("an invite")
    });
    let code = made["code"].as_str().expect("a code").to_owned();
    (server, base, code)
}

/// Starts the server with these arguments besides its ports, database and uploads in
/// `dir` and its log in `log`: it, its base URL and its admin URL if it has one.
fn start_with(dir: &Path, log: &Path, args: &[&str]) -> (Guard, String, Option<String>) {
    std::fs::create_dir_all(dir).expect("the server directory is made");
    let log = std::fs::File::create(log).expect("the server log is created");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args([
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--log",
            "warn",
        ])
        .args(args)
        .arg("--database")
        .arg(format!(
            "sqlite://{}?mode=rwc",
            dir.join("chat.db").display()
        ))
        .arg("--uploads")
        .arg(dir.join("uploads"))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the server binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let server = Guard(child);
    // Lines go through a channel so that waiting for the address has a deadline; the
    // thread keeps reading afterwards so the server never blocks on a full pipe.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Once nobody listens, sending fails: the loop goes on draining.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let wants_admin = args.contains(&"--admin");
    let (mut base, mut admin) = (None, None);
    while base.is_none() || (wants_admin && admin.is_none()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("the server printed no http:// address ({e})"));
        if let Some(at) = line.find("http://") {
            let url = line[at..].trim().trim_end_matches('/').to_owned();
            if line.contains("admin") {
                admin = Some(url);
            } else {
                base = Some(url);
            }
        }
    }
    (server, base.expect("checked above"), admin)
}

#[test]
fn web_page_end_to_end() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .ancestors()
        .nth(2)
        .expect("examples/chat-server is two below the root");
    let script_dir = manifest.join("tests/browser");

    let node = on_path("node");
    let mut missing = Vec::new();
    if node.is_none() {
        missing.push("`node` on PATH".to_owned());
    }
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("{CHROMIUM} (apt-get install chromium)"));
    }
    if !script_dir.join("node_modules/playwright-core").is_dir() {
        missing.push(format!(
            "{}/node_modules/playwright-core (npm ci there)",
            script_dir.display()
        ));
    }
    if !missing.is_empty() {
        let what = missing.join(", ");
        if std::env::var("IM_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("IM_REQUIRE_BROWSER=1 but missing: {what}");
        }
        eprintln!("SKIPPED: browser end-to-end test: missing {what}");
        eprintln!("SKIPPED: (set IM_REQUIRE_BROWSER=1 to make this a failure)");
        return;
    }
    let node = node.expect("checked above");

    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the test directory is created");
    let log = dir.join("server.log");
    let (_server, base) = start_server(&dir, &log);
    let (_invites, invite_base, invite_code) = start_invite_server(&dir.join("by-invite"));

    let screenshot = workspace.join("target/browser-e2e.png");
    let started = Instant::now();
    let mut child = Command::new(&node)
        .arg(script_dir.join("e2e.mjs"))
        .arg(&base)
        .arg(&screenshot)
        .arg(&log)
        .arg(&invite_base)
        .arg(&invite_code)
        .current_dir(&script_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let out = drain(child.stdout.take().expect("stdout is piped"));
    let err = drain(child.stderr.take().expect("stderr is piped"));
    let mut e2e = Guard(child);
    let status = loop {
        if let Some(status) = e2e.0.try_wait().expect("waiting for node") {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            break None; // the guard kills it
        }
        thread::sleep(Duration::from_millis(100));
    };
    drop(e2e);
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    println!("{out}");
    eprintln!("{err}");
    if !matches!(status, Some(s) if s.success()) {
        eprintln!(
            "server log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    match status {
        None => panic!("the browser test ran over {RUN_TIMEOUT:?} and was killed"),
        Some(status) => assert!(
            status.success(),
            "the browser test failed ({status}); output above, screenshots next to {}",
            screenshot.display()
        ),
    }
    println!("screenshot: {}", screenshot.display());
}
