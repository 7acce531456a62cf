//! `soak` (im): a bounded run of steady traffic, logins and resumes that checks the
//! server does not leak.
//!
//! U users log in and stay: U/2 senders, each with a peer of its own (direct
//! conversations), send R messages per second in all, open loop. C connections per
//! second log in afresh (users of their own, one device each, so no device record
//! piles up), send one message to a steady peer and close; C more resume with a token
//! saved at set-up and close. Every 5 s the soak reads the server's RSS, open files and
//! threads from /proc, and its sessions and runtime tasks from `/metrics`. When
//! `--seconds` are up (set-up included) every client disconnects and, after a 10 s pause,
//! a last reading is taken.
//!
//! The run fails (exit 2, with why) when, from the end of the warm-up (the first 20 % of
//! the traffic, at least 10 s) to the average of the last 20 %, RSS grew by more than
//! max(25 %, 30 MiB) and was still growing by more than 1 MiB a minute over the second
//! half (memory that fills up and levels off is a cache: SQLite's writer keeps up to
//! 64 MiB of pages, full after about 14 minutes at 200 messages a second), open files
//! grew by more than 20 or tasks by more than 10 % + 50; when,
//! after the disconnect, the sessions are not back to their count before the soak or the
//! tasks not within 50 of theirs; or when any traffic failed other than by
//! `rate_limited` (a refused send or login, a connection the server closed, a message
//! not delivered).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;

use crate::cli::{Common, SoakOpts, System};
use crate::clock;
use crate::conn::Transport;
use crate::im::{self, ImClient, ImError, Target};
use crate::payload;
use crate::receiver::{Readers, RecvMode};
use crate::report::Report;
use crate::rss::{CpuMeter, Proc};
use crate::scenarios::accounts::{self, im_only};
use crate::scenarios::group;
use crate::scrape::MetricsUrl;
use crate::sender::{AckStats, Sender};
use crate::stats::{rate, round3};

/// How often the server is read.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The pause after every client disconnected, before the last reading.
const PAUSE: Duration = Duration::from_secs(10);

/// How long the replies to the last sends (and the pushes they cause) may take once the
/// traffic stops; churn connections still open then are cut off.
const DRAIN: Duration = Duration::from_secs(5);

/// Sends one steady sender may have awaiting their reply: bounds its queue if the
/// server falls behind (the open-loop markers then show the delay as latency).
const WINDOW: usize = 32;

/// How long one churn connection (connect, hello, login or resume, send) may take.
const CHURN_TIMEOUT: Duration = Duration::from_secs(30);

/// Churn users per churn connection per second: each logs in again every 20 s, so two
/// logins of one user never overlap.
const POOL_SECONDS: f64 = 20.0;

/// The traffic phase must leave at least this share of `--seconds` after the set-up.
const MIN_TRAFFIC_SHARE: f64 = 0.5;

/// Warm-up: this share of the traffic phase, at least [`MIN_WARMUP_S`].
const WARMUP_SHARE: f64 = 0.2;
const MIN_WARMUP_S: f64 = 10.0;

/// The final samples: this last share of the traffic phase.
const FINAL_SHARE: f64 = 0.2;

/// Flatness limits (see the module docs).
const RSS_GROWTH_SHARE: f64 = 0.25;
const RSS_GROWTH_MIN_KIB: f64 = 30.0 * 1024.0;
/// RSS growth past the limit above is a leak only while it goes on: at most this much a
/// minute over the second half is memory that has levelled off.
const RSS_TREND_MAX_KIB_PER_MIN: f64 = 1024.0;
const FD_GROWTH: f64 = 20.0;
const TASK_GROWTH_SHARE: f64 = 0.10;
const TASK_GROWTH_MIN: f64 = 50.0;
const TASKS_AFTER_SLACK: u64 = 50;

/// One reading of the server.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the traffic started (negative: before).
    t: f64,
    rss_kib: Option<u64>,
    fds: Option<u64>,
    threads: Option<u64>,
    tasks: Option<u64>,
    sessions: Option<u64>,
}

/// What the soak watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gauge {
    Rss,
    Fds,
    Threads,
    Tasks,
    Sessions,
}

impl Gauge {
    const ALL: [Gauge; 5] = [
        Gauge::Rss,
        Gauge::Fds,
        Gauge::Threads,
        Gauge::Tasks,
        Gauge::Sessions,
    ];

    /// The figure's name in the JSON line.
    fn key(self) -> &'static str {
        match self {
            Gauge::Rss => "rss_kib",
            Gauge::Fds => "fds",
            Gauge::Threads => "threads",
            Gauge::Tasks => "tasks",
            Gauge::Sessions => "sessions",
        }
    }

    /// The row's name in the table.
    fn label(self) -> &'static str {
        match self {
            Gauge::Rss => "RSS (MiB)",
            Gauge::Fds => "open fds",
            Gauge::Threads => "threads",
            Gauge::Tasks => "tasks",
            Gauge::Sessions => "sessions",
        }
    }

    fn of(self, sample: &Sample) -> Option<u64> {
        match self {
            Gauge::Rss => sample.rss_kib,
            Gauge::Fds => sample.fds,
            Gauge::Threads => sample.threads,
            Gauge::Tasks => sample.tasks,
            Gauge::Sessions => sample.sessions,
        }
    }

    /// A value for people (RSS in MiB).
    fn show(self, value: Option<f64>) -> String {
        match (self, value) {
            (_, None) => "—".into(),
            (Gauge::Rss, Some(kib)) => format!("{:.1}", kib / 1024.0),
            (_, Some(v)) if v.fract() == 0.0 => format!("{v:.0}"),
            (_, Some(v)) => format!("{v:.1}"),
        }
    }
}

/// One gauge over the run.
#[derive(Debug, Clone, Copy)]
struct Course {
    start: Option<f64>,
    warmup: Option<f64>,
    peak: Option<f64>,
    end: Option<f64>,
    final_avg: Option<f64>,
    after: Option<f64>,
    /// Change per minute over the last half of the traffic (least squares): near zero
    /// for a gauge that levelled off, whatever it did before. Shown, not judged.
    trend: Option<f64>,
}

/// The least-squares slope of `points` (seconds, value), per minute; `None` under three
/// points.
fn slope_per_min(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points
        .iter()
        .map(|(t, v)| (t - mean_t) * (v - mean_v))
        .sum();
    let var: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    (var > 0.0).then(|| cov / var * 60.0)
}

/// How churn operations of one kind went.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    rate_limited: u64,
    failed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn count(&mut self, result: &anyhow::Result<()>) {
        match result {
            Ok(()) => self.ok += 1,
            Err(e) if is_rate_limited(e) => self.rate_limited += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    fn report(&self, name: &str, report: &mut Report) {
        report.figure(&format!("{name}_ok"), self.ok);
        report.figure(&format!("{name}_rate_limited"), self.rate_limited);
        report.figure(&format!("{name}_failed"), self.failed);
        if let Some(error) = &self.first_error {
            report.incomplete(format!("{} {name} failed (first: {error})", self.failed));
        }
    }
}

fn is_rate_limited(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<ImError>()
        .is_some_and(|e| e.code == "rate_limited")
}

/// The churn connections' traffic.
#[derive(Debug, Default)]
struct Churn {
    logins: Tally,
    sends: Tally,
    resumes: Tally,
    /// Ticks skipped because too many churn connections were still open.
    skipped: u64,
    /// Churn connections still open at the end of the drain, cut off.
    cut_off: u64,
}

/// What the churn connections use, shared by their tasks.
#[derive(Debug)]
struct ChurnPlan {
    target: Target,
    /// Users that log in afresh, in turn.
    logins: Vec<String>,
    /// Tokens from set-up logins, resumed in turn.
    tokens: Vec<String>,
    /// The steady peers' user ids: churn user `i` writes to peer `i % len`.
    peers: Vec<u64>,
}

/// What one churn connection did.
enum ChurnOutcome {
    /// A login, and the send after it (if the login succeeded).
    Login(anyhow::Result<()>, Option<anyhow::Result<()>>),
    /// A resume.
    Resume(anyhow::Result<()>),
}

impl ChurnPlan {
    /// Logs in the `i`-th churn user (device `soak`), sends one message to its peer and
    /// closes.
    async fn login_and_send(self: Arc<Self>, i: usize) -> ChurnOutcome {
        let user = i % self.logins.len();
        let run = async {
            let mut client = ImClient::connect(&self.target).await?;
            let session = match client.login(&self.logins[user], "soak").await {
                Ok(session) => session,
                Err(e) => {
                    client.close().await;
                    return Err(e);
                }
            };
            let peer = self.peers[user % self.peers.len()];
            let send = client
                .request(json!({
                    "type": "send",
                    "conversation": im::direct_conversation(session.user, peer),
                    "client_id": im::client_id(),
                    "body": {"type": "text", "text": payload::text(clock::now_ns())},
                }))
                .await
                .map(|_| ());
            client.close().await;
            Ok(send)
        };
        match tokio::time::timeout(CHURN_TIMEOUT, run).await {
            Ok(Ok(send)) => ChurnOutcome::Login(Ok(()), Some(send)),
            Ok(Err(e)) => ChurnOutcome::Login(Err(e), None),
            Err(_) => ChurnOutcome::Login(
                Err(anyhow::anyhow!(
                    "a login and send took longer than {CHURN_TIMEOUT:?}"
                )),
                None,
            ),
        }
    }

    /// Resumes with the `i`-th saved token and closes.
    async fn resume(self: Arc<Self>, i: usize) -> ChurnOutcome {
        let token = &self.tokens[i % self.tokens.len()];
        let run = async {
            let mut client = ImClient::connect(&self.target).await?;
            let resumed = client.resume(token).await.map(|_| ());
            client.close().await;
            resumed
        };
        ChurnOutcome::Resume(
            tokio::time::timeout(CHURN_TIMEOUT, run)
                .await
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "a resume took longer than {CHURN_TIMEOUT:?}"
                    ))
                }),
        )
    }
}

impl Churn {
    fn record(&mut self, outcome: ChurnOutcome) {
        match outcome {
            ChurnOutcome::Login(login, send) => {
                self.logins.count(&login);
                if let Some(send) = send {
                    self.sends.count(&send);
                }
            }
            ChurnOutcome::Resume(resumed) => self.resumes.count(&resumed),
        }
    }
}

/// Opens `per_sec` login-and-send connections and as many resumes per second until
/// `until`, then waits up to [`DRAIN`] for those still open and cuts off the rest.
async fn churn(plan: Arc<ChurnPlan>, per_sec: f64, until: Instant, churn: &RefCell<Churn>) {
    if per_sec <= 0.0 {
        return;
    }
    let period = Duration::from_secs_f64(1.0 / per_sec);
    let max_in_flight = ((per_sec * 10.0).ceil() as usize).max(16);
    let mut tasks = JoinSet::new();
    let mut next = Instant::now();
    let mut i = 0;
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        while let Some(done) = tasks.try_join_next() {
            if let Ok(outcome) = done {
                churn.borrow_mut().record(outcome);
            }
        }
        if tasks.len() + 2 > max_in_flight {
            churn.borrow_mut().skipped += 1;
        } else {
            tasks.spawn(plan.clone().login_and_send(i));
            tasks.spawn(plan.clone().resume(i));
        }
        i += 1;
        next += period;
    }
    let drain_until = Instant::now() + DRAIN;
    while let Ok(Some(done)) = tokio::time::timeout_at(drain_until.into(), tasks.join_next()).await
    {
        if let Ok(outcome) = done {
            churn.borrow_mut().record(outcome);
        }
    }
    churn.borrow_mut().cut_off += tasks.len() as u64;
    tasks.shutdown().await;
}

/// Reads the server: RSS, open files and threads from /proc, sessions and tasks from
/// its metrics page (the first failure to read it kept in `scrape_error`).
async fn read_server(
    pid: u32,
    metrics: &MetricsUrl,
    t: f64,
    scrape_error: &RefCell<Option<String>>,
) -> Sample {
    let (sessions, tasks) = match metrics
        .gauges(&["im_sessions", "im_runtime_alive_tasks"])
        .await
    {
        Ok(values) => (values[0].map(|v| v as u64), values[1].map(|v| v as u64)),
        Err(e) => {
            scrape_error
                .borrow_mut()
                .get_or_insert_with(|| format!("{e:#}"));
            (None, None)
        }
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok();
    Sample {
        t,
        rss_kib: Proc::new(&[pid]).rss_kib(),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(|dir| dir.count() as u64),
        threads: status.as_deref().and_then(|s| {
            s.lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        }),
        tasks,
        sessions,
    }
}

/// One progress line.
fn progress_line(sample: &Sample, acked: u64, churn: &Churn, errors: u64) {
    let show = |gauge: Gauge| gauge.show(gauge.of(sample).map(|v| v as f64));
    eprintln!(
        "soak {:>6.0} s  rss {:>7} MiB  fds {:>5}  threads {:>3}  tasks {:>6}  sessions {:>5}  \
         acked {acked}  logins {}  resumes {}  errors {errors}",
        sample.t,
        show(Gauge::Rss),
        show(Gauge::Fds),
        show(Gauge::Threads),
        show(Gauge::Tasks),
        show(Gauge::Sessions),
        churn.logins.ok,
        churn.resumes.ok,
    );
}

/// Runs the scenario.
pub(crate) async fn run(common: &Common, opts: &SoakOpts) -> anyhow::Result<Report> {
    let target = im_only(common, "soak")?;
    let started = Instant::now();
    let until = started + Duration::from_secs(opts.seconds);
    let &[pid] = common.server_pid.as_slice() else {
        anyhow::bail!("soak needs the server's PID: --server-pid PID (one server)");
    };
    let metrics = match &opts.metrics {
        Some(url) => MetricsUrl::parse(url)?,
        None if common.transport == Transport::Ws => MetricsUrl::on(common.addr()),
        None => anyhow::bail!("soak over TCP needs --metrics http://HOST:PORT/metrics"),
    };
    anyhow::ensure!(
        opts.rate >= 0.0 && opts.churn >= 0.0,
        "--rate and --churn cannot be negative"
    );
    let pairs = (opts.users / 2).max(1);
    let mut report = Report::new("soak", common);
    report.param("seconds", opts.seconds);
    report.param("users", (2 * pairs) as u64);
    report.param("rate", opts.rate);
    report.param("churn", opts.churn);
    report.param("metrics", metrics.to_string());
    let scrape_error = RefCell::new(None);
    let start = read_server(
        pid,
        &metrics,
        -started.elapsed().as_secs_f64(),
        &scrape_error,
    )
    .await;
    anyhow::ensure!(
        start.rss_kib.is_some(),
        "cannot read /proc/{pid}/status: is the server running as PID {pid}?"
    );
    if let Some(error) = scrape_error.borrow().as_ref() {
        anyhow::bail!("cannot read the server's metrics: {error}");
    }
    anyhow::ensure!(
        start.sessions.is_some() && start.tasks.is_some(),
        "{metrics} has no im_sessions or im_runtime_alive_tasks: a chat-server from before \
         these gauges?"
    );

    // Set-up: the steady users (logged in, connections kept), the churn users
    // (registered), the resume users (registered and logged in once, tokens kept).
    let prefix = common
        .run_prefix
        .clone()
        .unwrap_or_else(|| im::run_prefix("k"));
    let pool = ((opts.churn * POOL_SECONDS).ceil() as usize).max(1);
    let setup = async {
        let mut names = accounts::names(&prefix, "s", pairs);
        names.extend(accounts::names(&prefix, "p", pairs));
        let mut clients = accounts::register_and_login_all(
            &target,
            &names,
            common.setup_concurrency,
            "steady users",
        )
        .await?;
        let peers = clients.split_off(pairs);
        let (churn_names, tokens) = if opts.churn > 0.0 {
            let churn_names = accounts::names(&prefix, "c", pool);
            let resume_names = accounts::names(&prefix, "r", pool);
            let mut both = churn_names.clone();
            both.extend(resume_names.iter().cloned());
            let registered = accounts::register_all(&target, &both, common.setup_concurrency).await;
            if let Some(error) = registered.first_error {
                anyhow::bail!("registering the churn users: {error}");
            }
            let (logins, tokens) =
                accounts::login_each(&target, &resume_names, common.setup_concurrency, "soak-r")
                    .await;
            if let Some(error) = logins.first_error {
                anyhow::bail!("logging in the resume users: {error}");
            }
            (churn_names, tokens.into_iter().flatten().collect())
        } else {
            (Vec::new(), Vec::new())
        };
        anyhow::Ok((clients, peers, churn_names, tokens))
    };
    let (clients, peers, churn_names, tokens) = tokio::time::timeout_at(until.into(), setup)
        .await
        .map_err(|_| anyhow::anyhow!("the set-up took longer than --seconds"))??;
    let setup_s = started.elapsed().as_secs_f64();
    let traffic_start = Instant::now();
    let traffic_s = until.saturating_duration_since(traffic_start).as_secs_f64();
    report.figure("setup_s", round3(setup_s));
    report.figure("traffic_s", round3(traffic_s));
    anyhow::ensure!(
        traffic_s >= opts.seconds as f64 * MIN_TRAFFIC_SHARE && traffic_s >= 30.0,
        "the set-up took {setup_s:.0} s of the {} s: {traffic_s:.0} s of traffic are too \
         few to judge (cheaper password hashing, fewer --users or more --seconds)",
        opts.seconds
    );

    let mut readers = Readers::new();
    let stats = readers.stats.clone();
    let acks = Arc::new(AckStats::default());
    let mut senders = Vec::with_capacity(pairs);
    let mut peer_ids = Vec::with_capacity(pairs);
    for ((client, session), (peer, peer_session)) in clients.into_iter().zip(peers) {
        let (conn, next_id) = client.into_parts();
        senders.push(Sender::with_acks(
            System::Im,
            conn,
            next_id,
            im::direct_conversation(session.user, peer_session.user),
            Some(WINDOW),
            acks.clone(),
        ));
        peer_ids.push(peer_session.user);
        let mode = RecvMode {
            system: System::Im,
            ping: true,
            sample_every: 64,
        };
        readers.spawn(peer.into_parts().0, mode);
    }
    let plan = Arc::new(ChurnPlan {
        target,
        logins: churn_names,
        tokens,
        peers: peer_ids,
    });

    // The traffic, and the readings beside it, until `until`.
    let cpu = CpuMeter::start(Proc::new(&[pid]));
    let churn_tally = RefCell::new(Churn::default());
    let samples = RefCell::new(Vec::new());
    let t0 = clock::now_ns() + 50_000_000;
    let steady_rate = opts.rate;
    let sending = futures::future::join_all(senders.iter_mut().enumerate().map(
        |(i, sender)| async move {
            if steady_rate <= 0.0 {
                return;
            }
            for j in 0u64.. {
                let at = t0 + ((i as u64 + j * pairs as u64) as f64 / steady_rate * 1e9) as u64;
                let at_instant = clock::at_ns(at);
                if at_instant >= until {
                    break;
                }
                tokio::time::sleep_until(at_instant.into()).await;
                match tokio::time::timeout_at(until.into(), sender.send(Some(at))).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
        },
    ));
    let every_sample = opts.seconds <= 300;
    let sampling = async {
        for k in 0u32.. {
            let at = traffic_start + SAMPLE_EVERY * k;
            if at > until {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
            let sample = read_server(
                pid,
                &metrics,
                traffic_start.elapsed().as_secs_f64(),
                &scrape_error,
            )
            .await;
            if every_sample || k % 12 == 0 {
                let churn = churn_tally.borrow();
                let errors = acks.errors.load(Ordering::Relaxed)
                    - acks.rate_limited.load(Ordering::Relaxed)
                    + churn.logins.failed
                    + churn.sends.failed
                    + churn.resumes.failed;
                progress_line(&sample, acks.acked.load(Ordering::Relaxed), &churn, errors);
            }
            samples.borrow_mut().push(sample);
        }
    };
    tokio::join!(
        sending,
        churn(plan, opts.churn, until, &churn_tally),
        sampling
    );
    let server_cpu = cpu.reading();

    // The end: the last replies and pushes, then every client disconnects.
    let drain_until = Instant::now() + DRAIN;
    while !senders.iter().all(Sender::all_answered) && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let churn = churn_tally.into_inner();
    let acked = acks.acked.load(Ordering::Relaxed);
    let expected_pushes = acked + churn.sends.ok;
    group::wait(
        &stats,
        expected_pushes,
        Instant::now() + DRAIN,
        Duration::from_secs(2),
        || true,
    )
    .await;
    let senders_closed = senders.iter().filter(|s| s.closed_by_server()).count() as u64;
    let sent: u64 = senders.iter().map(|s| s.sent).sum();
    for sender in senders {
        sender.close().await;
    }
    readers.stop().await;
    tokio::time::sleep(PAUSE).await;
    let after = read_server(
        pid,
        &metrics,
        traffic_start.elapsed().as_secs_f64(),
        &scrape_error,
    )
    .await;
    let samples = samples.into_inner();

    // The courses of the gauges.
    let warmup_s = (traffic_s * WARMUP_SHARE).max(MIN_WARMUP_S);
    let final_from = traffic_s * (1.0 - FINAL_SHARE);
    let warm_sample = samples.iter().find(|s| s.t >= warmup_s);
    let finals: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= final_from && s.t > warmup_s)
        .collect();
    let course = |gauge: Gauge| {
        let values = |list: &[&Sample]| -> Vec<f64> {
            list.iter()
                .filter_map(|s| gauge.of(s))
                .map(|v| v as f64)
                .collect()
        };
        let all: Vec<&Sample> = samples.iter().collect();
        let last = values(&finals);
        Course {
            start: gauge.of(&start).map(|v| v as f64),
            warmup: warm_sample.and_then(|s| gauge.of(s)).map(|v| v as f64),
            peak: values(&all).into_iter().reduce(f64::max),
            end: samples.last().and_then(|s| gauge.of(s)).map(|v| v as f64),
            final_avg: (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64),
            after: gauge.of(&after).map(|v| v as f64),
            trend: slope_per_min(
                &samples
                    .iter()
                    .filter(|s| s.t >= traffic_s / 2.0)
                    .filter_map(|s| Some((s.t, gauge.of(s)? as f64)))
                    .collect::<Vec<_>>(),
            ),
        }
    };
    let courses: Vec<(Gauge, Course)> = Gauge::ALL.iter().map(|&g| (g, course(g))).collect();

    eprintln!(
        "\nsoak: {} samples; warm-up ends at {warmup_s:.0} s, final samples from {final_from:.0} s \
         of {traffic_s:.0} s of traffic; after: {} s after the disconnect",
        samples.len(),
        PAUSE.as_secs()
    );
    eprintln!(
        "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>15}",
        "", "start", "warm-up", "peak", "end", "final avg", "after", "/min, 2nd half"
    );
    for (gauge, c) in &courses {
        eprintln!(
            "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>15}",
            gauge.label(),
            gauge.show(c.start),
            gauge.show(c.warmup),
            gauge.show(c.peak),
            gauge.show(c.end),
            gauge.show(c.final_avg),
            gauge.show(c.after),
            gauge.show(c.trend),
        );
    }
    report.figure("samples", samples.len() as u64);
    report.figure("warmup_s", round3(warmup_s));
    for (gauge, c) in &courses {
        let key = gauge.key();
        let num = |v: Option<f64>| match v {
            None => serde_json::Value::Null,
            Some(v) if v.fract() == 0.0 && v >= 0.0 => json!(v as u64),
            Some(v) => round3(v),
        };
        report.figure(&format!("{key}_start"), num(c.start));
        report.figure(&format!("{key}_warmup"), num(c.warmup));
        report.figure(&format!("{key}_peak"), num(c.peak));
        report.figure(&format!("{key}_end"), num(c.end));
        report.figure(&format!("{key}_final_avg"), num(c.final_avg));
        report.figure(&format!("{key}_after"), num(c.after));
        report.figure(&format!("{key}_per_min_2nd_half"), num(c.trend));
    }

    // The traffic.
    let send_errors = acks.errors.load(Ordering::Relaxed);
    let send_rate_limited = acks.rate_limited.load(Ordering::Relaxed);
    let delivered = stats.delivered();
    report.figure("sent", sent);
    report.figure("acked", acked);
    report.figure("sends_per_sec", rate(acked, traffic_s));
    report.figure("send_rate_limited", send_rate_limited);
    report.figure("send_errors", send_errors - send_rate_limited);
    report.figures(acks.latency.figures("ack"));
    churn.logins.report("churn_login", &mut report);
    churn.sends.report("churn_send", &mut report);
    churn.resumes.report("churn_resume", &mut report);
    report.figure("churn_skipped", churn.skipped);
    report.figure("churn_cut_off", churn.cut_off);
    report.figure("pushes", delivered);
    report.figures(stats.latency.figures("push"));
    report.figure("kicked", stats.kicked.load(Ordering::Relaxed));
    report.figure(
        "closed_by_server",
        stats.closed.load(Ordering::Relaxed) + senders_closed,
    );
    report.figure_opt("server_cpu_util", server_cpu.util().map(round3));
    group::protocol_figures(&stats, &mut report);

    if send_errors > send_rate_limited {
        let first = acks
            .first_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_default();
        report.incomplete(format!(
            "{} sends refused other than rate_limited (first error: {first})",
            send_errors - send_rate_limited
        ));
    }
    let closed = stats.closed.load(Ordering::Relaxed) + senders_closed;
    let kicked = stats.kicked.load(Ordering::Relaxed);
    if closed > 0 || kicked > 0 {
        report.incomplete(format!(
            "the server closed {closed} steady connections and kicked {kicked} sessions"
        ));
    }
    if delivered < expected_pushes {
        report.incomplete(format!(
            "{} of {expected_pushes} acknowledged messages never reached their peer",
            expected_pushes - delivered
        ));
    }
    if churn.skipped > 0 {
        report.note(format!(
            "{} churn ticks skipped: too many churn connections were still open",
            churn.skipped
        ));
    }
    if opts.rate > 0.0 && (sent as f64) < opts.rate * traffic_s * 0.9 {
        report.note(format!(
            "the senders fell behind: {sent} of about {:.0} messages sent",
            opts.rate * traffic_s
        ));
    }

    // Flatness.
    if let Some(error) = scrape_error.borrow().as_ref() {
        report.note(format!("a scrape of {metrics} failed: {error}"));
    }
    let get = |gauge: Gauge| courses.iter().find(|(g, _)| *g == gauge).map(|(_, c)| *c);
    let growth_check =
        |report: &mut Report, gauge: Gauge, limit: &dyn Fn(f64) -> f64, rule: &str| {
            let Some(c) = get(gauge) else { return };
            match (c.warmup, c.final_avg) {
                (Some(warm), Some(last)) => {
                    let limit = limit(warm);
                    let levelled = gauge == Gauge::Rss
                        && c.trend.is_some_and(|t| t <= RSS_TREND_MAX_KIB_PER_MIN);
                    if last - warm > limit && levelled {
                        report.note(format!(
                            "{} grew by {} after the warm-up, past {rule}, but levelled off \
                             ({} a minute over the second half): a cache filling, not a leak",
                            gauge.label(),
                            gauge.show(Some(last - warm)),
                            gauge.show(c.trend),
                        ));
                    } else if last - warm > limit {
                        report.incomplete(format!(
                            "NOT FLAT: {} grew from {} at the end of the warm-up to {} on average \
                         over the last 20 % (+{}; the limit is {rule}: +{})",
                            gauge.label(),
                            gauge.show(Some(warm)),
                            gauge.show(Some(last)),
                            gauge.show(Some(last - warm)),
                            gauge.show(Some(limit)),
                        ));
                    }
                }
                _ => report.incomplete(format!(
                    "{}: no reading at the end of the warm-up or in the last 20 %",
                    gauge.label()
                )),
            }
        };
    growth_check(
        &mut report,
        Gauge::Rss,
        &|warm| (warm * RSS_GROWTH_SHARE).max(RSS_GROWTH_MIN_KIB),
        "max(25 %, 30 MiB) while still growing by over 1 MiB a minute",
    );
    growth_check(&mut report, Gauge::Fds, &|_| FD_GROWTH, "20");
    growth_check(
        &mut report,
        Gauge::Tasks,
        &|warm| warm * TASK_GROWTH_SHARE + TASK_GROWTH_MIN,
        "10 % + 50",
    );
    match (start.sessions, after.sessions) {
        (Some(before), Some(now)) if before == now => {}
        (before, now) => report.incomplete(format!(
            "NOT FLAT: {} sessions {}s after every client disconnected; {} before the soak",
            now.map_or("unknown".into(), |n| n.to_string()),
            PAUSE.as_secs(),
            before.map_or("unknown".into(), |n| n.to_string()),
        )),
    }
    match (start.tasks, after.tasks) {
        (Some(before), Some(now)) if now.abs_diff(before) <= TASKS_AFTER_SLACK => {}
        (before, now) => report.incomplete(format!(
            "NOT FLAT: {} runtime tasks {} s after every client disconnected; {} before the \
             soak (the limit is ±{TASKS_AFTER_SLACK})",
            now.map_or("unknown".into(), |n| n.to_string()),
            PAUSE.as_secs(),
            before.map_or("unknown".into(), |n| n.to_string()),
        )),
    }
    if report.is_complete() {
        eprintln!("soak: flat");
    } else {
        eprintln!("soak: FAILED (see the notes below)");
    }
    Ok(report)
}
