//! The `chat-cli` binary against an in-process engine served over TCP and WebSocket on
//! 127.0.0.1, with memory storage. Every command runs as a child process with its own
//! state file; every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use im_core::auth::HashCost;
use im_core::engine::RateLimits;
use im_core::{Engine, EngineConfig};
use im_transport_tcp::{TcpConfig, TcpTransport};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::task::JoinHandle;

const PASSWORD: &str = "correct horse battery";
/// The longest any one wait may take.
const WAIT: Duration = Duration::from_secs(10);

/// An engine with a TCP transport and a WebSocket gateway on free ports.
struct Server {
    engine: Engine,
    tcp: String,
    ws: String,
    /// The task serving TCP; it ends (dropping the listener) when the engine shuts down.
    serving: JoinHandle<()>,
}

fn config() -> EngineConfig {
    // Cheap hashes and no rate limits: the tests log in often, all from 127.0.0.1.
    EngineConfig::default()
        .with_hash_cost(HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .with_rate_limits(RateLimits::unlimited())
}

async fn serve_tcp(engine: &Engine, addr: &str) -> (String, JoinHandle<()>) {
    let transport = TcpTransport::bind(addr, TcpConfig::default())
        .await
        .expect("the TCP transport binds");
    let url = format!("tcp://{}", transport.local_addr());
    let engine = engine.clone();
    let serving = tokio::spawn(async move { engine.serve(&transport).await });
    (url, serving)
}

async fn start() -> Server {
    start_on(Engine::builder().config(config()), "127.0.0.1:0").await
}

async fn start_on(builder: im_core::EngineBuilder, tcp_addr: &str) -> Server {
    let engine = builder.start().await.expect("the engine starts");
    let (tcp, serving) = serve_tcp(&engine, tcp_addr).await;
    let gateway =
        im_transport_ws::Gateway::new(engine.clone(), im_transport_ws::WsConfig::default(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("the WebSocket listener binds");
    let addr = listener.local_addr().expect("a local address");
    tokio::spawn(warp::serve(gateway.filter()).incoming(listener).run());
    Server {
        engine,
        tcp,
        ws: format!("ws://{addr}/ws"),
        serving,
    }
}

/// A fresh directory for one test's state files.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chat-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the scratch directory is created");
    dir
}

/// What a finished command printed.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn ok(self) -> Self {
        assert!(self.status.success(), "command failed: {self:#?}");
        self
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
            .collect()
    }
}

/// One user of the CLI: a state file and a server address.
struct User {
    name: &'static str,
    state: PathBuf,
    server: String,
}

impl User {
    fn new(dir: &Path, name: &'static str, server: &str) -> Self {
        User {
            name,
            state: dir.join(format!("{name}.json")),
            server: server.to_owned(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat-cli"));
        command
            .env_remove("IM_SERVER")
            .env_remove("IM_CLI_STATE")
            .env("RUST_LOG", "warn")
            .arg("--server")
            .arg(&self.server)
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs a command to its end, feeding it `stdin` if given.
    async fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = self.command(args);
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().expect("chat-cli starts");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(input.as_bytes())
                .await
                .expect("stdin takes the input");
            drop(pipe);
        }
        let output = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`chat-cli {}` did not finish in {WAIT:?}", args.join(" ")))
            .expect("chat-cli runs");
        Output {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None).await
    }

    async fn register_and_login(&self) {
        self.run(&["register", self.name, PASSWORD]).await.ok();
        let login = self.run(&["login", self.name, PASSWORD]).await.ok();
        assert!(!login.stdout.trim().is_empty(), "login prints the token");
    }
}

/// Makes two users friends.
async fn befriend(a: &User, b: &User) {
    a.run(&["add-friend", b.name, "--note", "hi"]).await.ok();
    b.run(&["accept", a.name]).await.ok();
}

/// The next line of a child's pipe, within the bound.
async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Lines<R>, what: &str) -> String {
    match tokio::time::timeout(WAIT, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => panic!("the pipe closed while waiting for {what}"),
        Ok(Err(e)) => panic!("reading while waiting for {what}: {e}"),
        Err(_) => panic!("nothing within {WAIT:?} while waiting for {what}"),
    }
}

/// Reads lines until one contains `needle`; returns the lines read.
async fn wait_for<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut Lines<R>,
    needle: &str,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let line = match tokio::time::timeout(left, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!("no line with {needle:?} ({other:?}); got {seen:#?}"),
        };
        let found = line.contains(needle);
        seen.push(line);
        if found {
            return seen;
        }
    }
}

/// A running `listen`, killed when dropped.
struct Listening {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
}

impl Listening {
    async fn start(user: &User, args: &[&str]) -> Self {
        let mut child = user.command(args).spawn().expect("chat-cli listen starts");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let stderr = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let mut listening = Listening {
            child,
            stdout,
            stderr,
        };
        let line = next_line(&mut listening.stderr, "the listening line").await;
        assert!(
            line.starts_with(&format!("listening as {}", user.name)),
            "{line}"
        );
        listening
    }

    /// Ctrl-C, then the exit status (bounded; killed if it hangs).
    async fn interrupt(mut self) -> ExitStatus {
        let pid = self.child.id().expect("still running");
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.expect("waiting for listen"),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!("listen did not stop within {WAIT:?} of SIGINT");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_over_tcp_and_websocket() {
    let server = start().await;
    let dir = scratch("chat");
    let alice = User::new(&dir, "alice", &server.tcp);
    let bob = User::new(&dir, "bob", &server.ws);
    alice.register_and_login().await;
    bob.register_and_login().await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&alice.state)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the state file holds tokens");
    }
    let who = alice.run(&["whoami"]).await.ok();
    assert!(who.stdout.starts_with("alice (id "), "{}", who.stdout);
    // The session belongs to the server, not to the transport it was made over.
    let mut alice_ws = User::new(&dir, "alice", &server.ws);
    alice_ws.state = alice.state.clone();
    let who = alice_ws.run(&["whoami", "--json"]).await.ok();
    assert_eq!(who.json_lines()[0]["user"]["username"], "alice");

    // Friends.
    alice
        .run(&["add-friend", "bob", "--note", "hi from alice"])
        .await
        .ok();
    let requests = bob.run(&["requests"]).await.ok();
    assert!(
        requests
            .stdout
            .contains("incoming\tfrom alice\t\"hi from alice\""),
        "{}",
        requests.stdout
    );
    bob.run(&["accept", "alice"]).await.ok();
    let friends = bob.run(&["--json", "friends"]).await.ok().json_lines();
    assert_eq!(friends.len(), 1);
    assert_eq!(friends[0]["user"]["username"], "alice");
    let friends = alice.run(&["friends"]).await.ok();
    assert!(friends.stdout.starts_with("bob\t"), "{}", friends.stdout);

    // Bob writes; Alice's sync shows it once.
    let sent = bob.run(&["send", "@alice", "hello alice"]).await.ok();
    assert_eq!(sent.stdout.trim(), "sent d:1:2 #1");
    let sync = alice.run(&["sync"]).await.ok();
    assert_eq!(sync.stdout, "[d:1:2 #1] bob: hello alice\n");
    let again = alice.run(&["sync"]).await.ok();
    assert_eq!(again.stdout, "", "a second sync has nothing new");
    let history = alice.run(&["history", "@bob"]).await.ok();
    assert!(
        history.stdout.contains("[d:1:2 #1] bob: hello alice"),
        "{}",
        history.stdout
    );

    // Lines from stdin go out in order, blank ones skipped.
    let piped = alice
        .run_with(&["send", "@bob", "-"], Some("one\ntwo\n\nthree\n"))
        .await
        .ok();
    assert_eq!(piped.stdout.lines().count(), 3, "{}", piped.stdout);
    let history = bob
        .run(&["history", "d:1:2", "--json", "--limit", "10"])
        .await
        .ok()
        .json_lines();
    let texts: Vec<&str> = history
        .iter()
        .map(|m| m["message"]["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello alice", "one", "two", "three"]);
    let seqs: Vec<u64> = history
        .iter()
        .map(|m| m["message"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(history[1]["sender_username"], "alice");
    let sync = alice.run(&["sync", "--json"]).await.ok().json_lines();
    let texts: Vec<&str> = sync
        .iter()
        .map(|m| m["message"]["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["one", "two", "three"],
        "sync resumes after its cursor"
    );

    // A group.
    let group = alice
        .run(&["create-group", "club", "--members", "bob", "--json"])
        .await
        .ok()
        .json_lines();
    let id = group[0]["id"].as_u64().expect("a group id");
    assert_eq!(group[0]["owner_username"], "alice");
    let to = format!("#{id}");
    bob.run(&["send", &to, "hi club"]).await.ok();
    let history = alice.run(&["history", &to]).await.ok();
    let lines: Vec<&str> = history.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("[g:{id} #1] * alice created the group \"club\" with alice, bob"),
            format!("[g:{id} #2] bob: hi club"),
        ]
    );
    let groups = bob.run(&["groups"]).await.ok();
    assert_eq!(groups.stdout, format!("#{id}\tclub\towner alice\n"));

    // Logging out forgets the session; the next command must log in again.
    alice.run(&["logout"]).await.ok();
    assert!(!alice.state.exists());
    let after = alice.run(&["whoami"]).await;
    assert_eq!(after.status.code(), Some(2), "{after:#?}");
    assert!(
        after.stderr.starts_with("error: unauthorized: "),
        "{}",
        after.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_print_a_code_and_exit_non_zero() {
    let server = start().await;
    let dir = scratch("errors");
    let carol = User::new(&dir, "carol", &server.tcp);
    carol.run(&["register", "carol", PASSWORD]).await.ok();

    let wrong = carol.run(&["login", "carol", "not the password"]).await;
    assert_eq!(wrong.status.code(), Some(2), "{wrong:#?}");
    assert!(
        wrong.stderr.starts_with("error: unauthorized: "),
        "{}",
        wrong.stderr
    );
    assert_eq!(wrong.stdout, "");
    assert!(!carol.state.exists(), "a failed login saves nothing");

    let nobody = carol.run(&["sync"]).await;
    assert_eq!(nobody.status.code(), Some(2), "{nobody:#?}");

    let taken = carol.run(&["register", "carol", PASSWORD]).await;
    assert_eq!(taken.status.code(), Some(1), "{taken:#?}");
    assert!(
        taken.stderr.starts_with("error: conflict: "),
        "{}",
        taken.stderr
    );

    carol.run(&["login", "carol", PASSWORD]).await.ok();
    let unknown = carol.run(&["add-friend", "nobody"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        unknown.stderr.starts_with("error: not_found: "),
        "{}",
        unknown.stderr
    );
    let bad = carol.run(&["send", "bob", "hi"]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(bad.stderr.starts_with("error: invalid: "), "{}", bad.stderr);

    let usage = carol.run(&["send"]).await;
    assert_eq!(usage.status.code(), Some(64), "{usage:#?}");

    let down = User::new(&dir, "carol", "tcp://127.0.0.1:1");
    let unreachable = down.run(&["whoami"]).await;
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        unreachable.stderr.starts_with("error: unavailable: "),
        "{}",
        unreachable.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_prints_messages_as_they_arrive() {
    let server = start().await;
    let dir = scratch("listen");
    let alice = User::new(&dir, "alice", &server.tcp);
    let bob = User::new(&dir, "bob", &server.ws);
    alice.register_and_login().await;
    bob.register_and_login().await;
    befriend(&alice, &bob).await;

    let mut listening = Listening::start(&bob, &["listen", "--mark-read"]).await;
    alice.run(&["send", "@bob", "are you there?"]).await.ok();
    wait_for(&mut listening.stdout, "[d:1:2 #1] alice: are you there?").await;
    // --mark-read moves Bob's read cursor past what it printed.
    unread_becomes(&server, "bob", 0).await;
    // Bob's one-shot commands use another device, so they do not kick the listener;
    // it shows Bob's own message from that device too.
    let mut alice_listening = Listening::start(&alice, &["listen", "--json"]).await;
    bob.run(&["send", "@alice", "yes"]).await.ok();
    wait_for(&mut listening.stdout, "[d:1:2 #2] bob: yes").await;
    let lines = wait_for(&mut alice_listening.stdout, r#""text":"yes""#).await;
    let event: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(event["type"], "message");
    assert_eq!(event["sender_username"], "bob");
    assert_eq!(event["message"]["seq"], 2);
    // What a listener printed is acknowledged (Alice's has no --mark-read): Bob sees his
    // message delivered.
    peer_delivered_becomes(&server, "bob", 2).await;
    let status = listening.interrupt().await;
    assert!(status.success(), "Ctrl-C is a clean exit: {status:?}");
    assert!(alice_listening.interrupt().await.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (bounded) until `username`'s one direct chat shows the peer's delivered cursor
/// at `seq`, asking with the library's own client.
async fn peer_delivered_becomes(server: &Server, username: &str, seq: u64) {
    let client = probe(server, username).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let conversations = client.conversations().await.unwrap();
        let now = conversations
            .iter()
            .find_map(|c| c.peer_delivered_seq)
            .map(|s| s.0);
        if now == Some(seq) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{username}'s peer has delivered {now:?}, not {seq}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `username` logged in on a device of its own over TCP, with the library's client.
async fn probe(server: &Server, username: &str) -> im_core::client::Client {
    let conn = im_transport_tcp::connect(
        server.tcp.trim_start_matches("tcp://"),
        &TcpConfig::default(),
    )
    .await
    .unwrap();
    let (client, _events) = im_core::client::Client::connect(conn).await.unwrap();
    client
        .login(username, PASSWORD, "test-probe")
        .await
        .unwrap();
    client
}

/// Waits (bounded) until `username` has `unread` unread messages in all, asking with
/// the library's own client.
async fn unread_becomes(server: &Server, username: &str, unread: u64) {
    let client = probe(server, username).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now: u64 = client
            .conversations()
            .await
            .unwrap()
            .iter()
            .map(|c| c.unread)
            .sum();
        if now == unread {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{username} has {now} unread, not {unread}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_reconnects_after_a_server_restart() {
    let server = start().await;
    let dir = scratch("restart");
    let alice = User::new(&dir, "alice", &server.tcp);
    let bob = User::new(&dir, "bob", &server.tcp);
    alice.register_and_login().await;
    bob.register_and_login().await;
    befriend(&alice, &bob).await;

    let mut listening = Listening::start(&bob, &["listen"]).await;
    alice.run(&["send", "@bob", "before"]).await.ok();
    wait_for(&mut listening.stdout, "alice: before").await;

    // Restart: the same storage (so the tokens still work) on the same port.
    let storage = server.engine.storage().clone();
    let addr = server.tcp.trim_start_matches("tcp://").to_owned();
    tokio::time::timeout(WAIT, server.engine.shutdown())
        .await
        .expect("the engine shuts down");
    tokio::time::timeout(WAIT, server.serving)
        .await
        .expect("the TCP listener closes")
        .unwrap();
    wait_for(&mut listening.stderr, "reconnecting").await;
    let restarted = start_on(Engine::builder().config(config()).storage(storage), &addr).await;
    assert_eq!(restarted.tcp, server.tcp);

    // Sent while the listener may still be away: it arrives by catch-up or by push.
    alice.run(&["send", "@bob", "after"]).await.ok();
    wait_for(&mut listening.stderr, "reconnected").await;
    let lines = wait_for(&mut listening.stdout, "[d:1:2 #2] alice: after").await;
    assert!(
        lines.iter().all(|l| !l.contains("#1]")),
        "nothing is printed twice: {lines:#?}"
    );
    alice.run(&["send", "@bob", "later"]).await.ok();
    wait_for(&mut listening.stdout, "[d:1:2 #3] alice: later").await;
    assert!(listening.interrupt().await.success());
    // Without --mark-read, nothing was marked read.
    unread_becomes(&restarted, "bob", 3).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gate that sends the code 424242 to any address, keeps one per address, and admits
/// the registration that shows it.
#[derive(Debug, Default)]
struct FixedCode {
    sent: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl im_core::gate::Gate for FixedCode {
    async fn admit(
        &self,
        r: &im_core::gate::Registration<'_>,
    ) -> Result<(), im_core::protocol::ErrorBody> {
        let mut sent = self.sent.lock().unwrap();
        let shown = r.contact.zip(r.proof);
        match shown.and_then(|(contact, code)| {
            (code == "424242").then_some(())?;
            sent.iter().position(|c| c == contact)
        }) {
            Some(at) => {
                sent.remove(at);
                Ok(())
            }
            None => Err(im_core::protocol::ErrorBody::new(
                im_core::protocol::ErrorCode::ProofRequired,
                "send-code first, then --contact and --code",
            )),
        }
    }

    async fn send_code(
        &self,
        contact: &str,
        _: &im_core::transport::PeerInfo,
    ) -> Result<(), im_core::protocol::ErrorBody> {
        self.sent.lock().unwrap().push(contact.to_owned());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_a_code_on_a_gated_server() {
    let gate = std::sync::Arc::new(FixedCode::default());
    let server = start_on(
        Engine::builder().config(config()).gate(gate.clone()),
        "127.0.0.1:0",
    )
    .await;
    let dir = scratch("gated");
    let dora = User::new(&dir, "dora", &server.tcp);

    let asked = dora.run(&["register", "dora", PASSWORD]).await;
    assert!(!asked.status.success());
    assert!(asked.stderr.contains("proof_required"), "{asked:#?}");
    let sent = dora.run(&["send-code", "dora@example.com"]).await.ok();
    assert!(sent.stdout.contains("dora@example.com"), "{sent:#?}");
    assert_eq!(*gate.sent.lock().unwrap(), ["dora@example.com"]);
    let wrong = dora
        .run(&[
            "register",
            "dora",
            PASSWORD,
            "--contact",
            "dora@example.com",
            "--code",
            "000000",
        ])
        .await;
    assert!(wrong.stderr.contains("proof_required"), "{wrong:#?}");
    let registered = dora
        .run(&[
            "--json",
            "register",
            "dora",
            PASSWORD,
            "--contact",
            "dora@example.com",
            "--code",
            "424242",
        ])
        .await
        .ok();
    assert_eq!(registered.json_lines()[0]["user"]["username"], "dora");
    dora.run(&["login", "dora", PASSWORD]).await.ok();
    server.serving.abort();
}

/// A certificate for localhost signed by an authority of the test's own: the server's
/// TLS config and the authority's PEM.
fn localhost_tls() -> (
    std::sync::Arc<im_transport_tcp::rustls::ServerConfig>,
    String,
) {
    use im_transport_tcp::rustls;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let chain = vec![rustls::pki_types::CertificateDer::from(cert.der().to_vec())];
    let private = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (std::sync::Arc::new(config), ca.as_ref().pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaks_tls_over_tcp_and_websocket_trusting_the_named_authority() {
    let (tls, ca_pem) = localhost_tls();
    let engine = Engine::builder().config(config()).start().await.unwrap();
    let transport = TcpTransport::bind_tls("127.0.0.1:0", TcpConfig::default(), tls.clone())
        .await
        .unwrap();
    let tcp_port = transport.local_addr().port();
    let serving = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.serve(&transport).await })
    };
    let gateway =
        im_transport_ws::Gateway::new(engine.clone(), im_transport_ws::WsConfig::default(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_port = listener.local_addr().unwrap().port();
    let web = tokio::spawn(im_transport_ws::serve_tls(
        listener,
        tls,
        gateway.filter(),
        std::future::pending(),
        Duration::from_secs(1),
    ));

    let dir = scratch("tls");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let run = |server: String, args: &'static [&'static str], trusted: bool| {
        let state = dir.join("erin.json");
        let ca = ca.clone();
        async move {
            let mut command = Command::new(env!("CARGO_BIN_EXE_chat-cli"));
            command
                .env_remove("IM_SERVER")
                .env_remove("IM_CLI_STATE")
                .env_remove("IM_CA_CERT")
                .env("RUST_LOG", "warn")
                .args(["--server", &server, "--state"])
                .arg(&state)
                .args(args)
                .stdin(Stdio::null())
                .kill_on_drop(true);
            if trusted {
                command.env("IM_CA_CERT", &ca);
            }
            let output = tokio::time::timeout(WAIT, command.output())
                .await
                .expect("chat-cli finishes")
                .expect("chat-cli runs");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let tls_server = format!("tls://localhost:{tcp_port}");
    let wss_server = format!("wss://localhost:{ws_port}/ws");
    let (ok, stderr) = run(tls_server.clone(), &["register", "erin", PASSWORD], false).await;
    assert!(
        !ok && stderr.contains("unavailable"),
        "an unknown authority: {stderr}"
    );
    let (ok, stderr) = run(tls_server.clone(), &["register", "erin", PASSWORD], true).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) = run(wss_server.clone(), &["login", "erin", PASSWORD], true).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) = run(wss_server, &["whoami"], true).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) = run(tls_server, &["whoami"], true).await;
    assert!(
        ok,
        "a session saved over wss:// works over tls://: {stderr}"
    );
    serving.abort();
    web.abort();
}
