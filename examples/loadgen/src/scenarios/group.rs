//! What the group scenarios share: one sender and M receivers in one group (im: an open
//! group the receivers join; ceiling and socket.io: everyone is in the broadcast), a
//! barrier so that sending starts only once every reader is in, and the wait for the
//! deliveries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;

use crate::cli::{Common, System};
use crate::conn::Conn;
use crate::im::{self, ImClient, Target};
use crate::progress;
use crate::receiver::{self, Readers, RecvMode, RecvStats, StalledOutcome};
use crate::redis_stats::RedisCounts;
use crate::report::Report;
use crate::rss::{CpuMeter, CpuUse, OthersMeter, OthersUse, PeakSampler, Proc};
use crate::sender::Sender;
use crate::stats::{rate, round3};
use crate::{ceiling_client, clock, socketio};

/// How long the barrier may take.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(120);

/// A group set up and read.
#[derive(Debug)]
pub(crate) struct Group {
    /// The sender.
    pub(crate) sender: Sender,
    /// What the reading receivers saw.
    pub(crate) stats: Arc<RecvStats>,
    /// Receivers being read.
    pub(crate) reading: usize,
    /// Receivers that are never read (slow-consumer).
    pub(crate) stalled: Vec<Conn>,
    /// Receivers that could not be set up.
    pub(crate) setup_failures: usize,
    /// The first set-up error.
    pub(crate) first_error: Option<String>,
    /// Seconds the set-up took.
    pub(crate) setup_secs: f64,
    /// Reading receivers that did not see the barrier in time.
    pub(crate) not_ready: u64,
    readers: Readers,
}

/// Opens one receiver connection for a non-im system.
async fn connect_plain(common: &Common) -> anyhow::Result<Conn> {
    match common.system {
        System::Ceiling => ceiling_client::connect(common.addr()).await,
        System::Socketio => socketio::connect(common.addr()).await,
        System::Im => unreachable!("im receivers log in"),
    }
}

/// Sets up the sender and `members` receivers, the last `stalled` of which are never read,
/// then waits for the barrier. `window` bounds the im sender's sends awaiting replies.
pub(crate) async fn setup(
    common: &Common,
    members: usize,
    stalled: usize,
    window: Option<usize>,
    sample_every: u64,
) -> anyhow::Result<Group> {
    let started = Instant::now();
    let concurrency = common.setup_concurrency.max(1);
    let bar = progress::bar(members as u64, "members");
    let (sender, results): (Sender, Vec<anyhow::Result<Conn>>) = match common.system {
        System::Im => {
            let target = Target {
                addr: common.addr(),
                transport: common.transport,
            };
            // Members over the nodes of a cluster in turn.
            let member_target = |i: usize| Target {
                addr: common.addr_for(i),
                transport: common.transport,
            };
            let prefix = common
                .run_prefix
                .clone()
                .unwrap_or_else(|| im::run_prefix("g"));
            let (mut owner, _) = im::register_and_login(&target, &format!("{prefix}o"))
                .await
                .context("setting up the sender")?;
            let group = owner.create_open_group("loadgen").await?;
            // The sender's tasks start now: they keep its connection alive (pings) while
            // the members are set up.
            let (conn, next_id) = owner.into_parts();
            let sender = Sender::new(System::Im, conn, next_id, format!("g:{group}"), window);
            // Join on a first connection that is closed at once, then go online with
            // `resume` once everyone has joined: members online while the others join
            // would each get every later `member_joined` (M²/2 pushes).
            let joined: Vec<anyhow::Result<String>> = futures::stream::iter(0..members)
                .map(|i| {
                    let prefix = &prefix;
                    let bar = &bar;
                    let target = member_target(i);
                    async move {
                        let name = format!("{prefix}m{i}");
                        let (mut client, session) = im::register_and_login(&target, &name).await?;
                        client.join_group(group).await?;
                        client.close().await;
                        bar.inc(1);
                        Ok(session.token)
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            bar.set_position(0);
            bar.set_message("online");
            let online: Vec<anyhow::Result<Conn>> =
                futures::stream::iter(joined.into_iter().enumerate())
                    .map(|(i, token)| {
                        let bar = &bar;
                        let target = member_target(i);
                        async move {
                            let token = token?;
                            let mut client = ImClient::connect(&target).await?;
                            client.resume(&token).await?;
                            bar.inc(1);
                            Ok(client.into_parts().0)
                        }
                    })
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
            (sender, online)
        }
        System::Ceiling | System::Socketio => {
            let conn = connect_plain(common)
                .await
                .context("connecting the sender")?;
            let sender = Sender::new(common.system, conn, 0, String::new(), None);
            let results = futures::stream::iter(0..members)
                .map(|_| {
                    let bar = &bar;
                    async move {
                        let conn = connect_plain(common).await?;
                        bar.inc(1);
                        Ok(conn)
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            (sender, results)
        }
    };
    bar.finish_and_clear();

    let mut conns = Vec::with_capacity(members);
    let mut setup_failures = 0;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(conn) => conns.push(conn),
            Err(e) => {
                setup_failures += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    anyhow::ensure!(
        !conns.is_empty() || members == 0,
        "no receiver could be set up: {}",
        first_error.unwrap_or_default()
    );
    let stalled_conns = conns.split_off(conns.len().saturating_sub(stalled));
    let mode = RecvMode {
        system: common.system,
        ping: true,
        sample_every,
    };
    let mut readers = Readers::new();
    for conn in conns {
        readers.spawn(conn, mode);
    }
    let mut group = Group {
        sender,
        stats: readers.stats.clone(),
        reading: readers.len(),
        stalled: stalled_conns,
        setup_failures,
        first_error,
        setup_secs: 0.0,
        not_ready: 0,
        readers,
    };
    group.barrier().await?;
    group.setup_secs = started.elapsed().as_secs_f64();
    Ok(group)
}

impl Group {
    /// Sends barrier messages until every reading receiver has seen one (or the barrier
    /// times out: `not_ready` says how many had not).
    async fn barrier(&mut self) -> anyhow::Result<()> {
        let until = Instant::now() + BARRIER_TIMEOUT;
        let reading = self.reading as u64;
        while Instant::now() < until {
            self.sender.send_sync()?;
            let resend = Instant::now() + Duration::from_secs(3);
            while Instant::now() < resend {
                if self.stats.synced.load(Ordering::Relaxed) >= reading {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.not_ready = reading.saturating_sub(self.stats.synced.load(Ordering::Relaxed));
        Ok(())
    }

    /// Stops the reading receivers and waits until each has added its figures to
    /// `stats` (and closed its connection). Call before reading latency and last-push
    /// figures.
    pub(crate) async fn stop_readers(&mut self) {
        self.readers.stop().await;
    }

    /// Stops reading, closes every connection, and drains the stalled ones (each until it
    /// ends or is quiet for 2 s).
    pub(crate) async fn close(mut self) -> Vec<StalledOutcome> {
        let stalled: Vec<StalledOutcome> = futures::stream::iter(self.stalled)
            .map(|conn| receiver::drain_stalled(conn, Duration::from_secs(2)))
            .buffer_unordered(1024)
            .collect()
            .await;
        self.readers.stop().await;
        self.sender.close().await;
        stalled
    }
}

/// Waits until `expected` deliveries arrived (true), the deadline passed, or nothing
/// arrived for `stall` once `sending_done()` (false). Shows a progress bar.
pub(crate) async fn wait(
    stats: &RecvStats,
    expected: u64,
    deadline: Instant,
    stall: Duration,
    sending_done: impl Fn() -> bool,
) -> bool {
    let bar = progress::bar(expected, "deliveries");
    let mut last = 0;
    let mut last_change = Instant::now();
    let complete = loop {
        let delivered = stats.delivered();
        bar.set_position(delivered);
        if delivered >= expected {
            break true;
        }
        let now = Instant::now();
        if delivered != last {
            last = delivered;
            last_change = now;
        }
        if now >= deadline {
            break false;
        }
        if sending_done() && now.duration_since(last_change) >= stall {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    bar.finish_and_clear();
    complete
}

/// Generator CPU utilisation from which a run counts as generator-bound (with the
/// server under [`SERVER_NOT_BUSY`]).
const GENERATOR_BUSY: f64 = 0.90;

/// Server CPU utilisation under which a busy generator is what limits the run.
const SERVER_NOT_BUSY: f64 = 0.80;

/// CPU of other processes (in cores) from which a run counts as disturbed: the machine
/// has two cores, the server's and the generator's.
const OTHERS_DISTURB: f64 = 0.10;

/// Whether a phase of `wall_s` seconds in which the server used `server_util` of its core
/// and the generator `generator_util` of its own measured the generator. Under half a
/// second, 10 ms ticks make the ratios too rough to judge by.
fn generator_bound(server_util: f64, generator_util: f64, wall_s: f64) -> bool {
    wall_s >= 0.5 && generator_util >= GENERATOR_BUSY && server_util < SERVER_NOT_BUSY
}

/// Server-side readings around a measured phase, the generator's own CPU time, and
/// other processes' (a run they used a core's share in is disturbed).
#[derive(Debug)]
pub(crate) struct ServerWatch {
    proc: Proc,
    system_pids: Vec<u32>,
    rss_start: Option<u64>,
    rss_ready: Option<u64>,
    cpu: Option<CpuMeter>,
    generator_cpu: Option<CpuMeter>,
    others: Option<OthersMeter>,
    /// CPU use over the measured phase, once it ended.
    stopped: Option<Stopped>,
    /// The Redis the servers use, and its command counts when the phase started.
    redis: Option<SocketAddr>,
    redis_start: Option<RedisCounts>,
    /// The commands Redis ran over the measured phase.
    redis_used: Option<RedisCounts>,
    peak: Option<PeakSampler>,
}

/// CPU use over a measured phase.
#[derive(Debug)]
struct Stopped {
    server: CpuUse,
    generator: CpuUse,
    others: Option<OthersUse>,
}

impl ServerWatch {
    /// Reads the server's RSS before anything is set up.
    pub(crate) fn new(common: &Common) -> Self {
        let proc = Proc::new(&common.server_pid);
        ServerWatch {
            proc,
            system_pids: common.system_pids.clone(),
            rss_start: proc.rss_kib(),
            rss_ready: None,
            cpu: None,
            generator_cpu: None,
            others: None,
            stopped: None,
            peak: None,
            redis: common.redis,
            redis_start: None,
            redis_used: None,
        }
    }

    /// Redis's counts now, or `None` (said) when they cannot be read.
    fn redis_counts(&self) -> Option<RedisCounts> {
        let addr = self.redis?;
        match RedisCounts::read(addr) {
            Ok(counts) => Some(counts),
            Err(e) => {
                eprintln!("loadgen: reading Redis's command counts failed: {e:#}");
                None
            }
        }
    }

    /// Adds Redis's commands over the phase, per `count` items named `per`.
    pub(crate) fn redis_figures(&self, report: &mut Report, count: u64, per: &str) {
        let Some(used) = &self.redis_used else { return };
        let per_item = |n: u64| {
            if count > 0 {
                round3(n as f64 / count as f64)
            } else {
                serde_json::Value::Null
            }
        };
        report.figure("redis_commands", used.total());
        report.figure(&format!("redis_commands_per_{per}"), per_item(used.total()));
        report.figure(
            &format!("redis_publishes_per_{per}"),
            per_item(used.of(&["publish", "spublish"])),
        );
        report.figure(
            &format!("redis_scripts_per_{per}"),
            per_item(used.of(&["evalsha", "eval", "evalsha_ro", "eval_ro"])),
        );
        report.figure("redis_cpu_ms", used.cpu_us() / 1000);
        report.figure(&format!("redis_cpu_us_per_{per}"), per_item(used.cpu_us()));
        report.figure("redis_command_counts", used.listing().join(", "));
    }

    /// Starts the measured phase: RSS now, CPU time from now, RSS peak from now.
    pub(crate) fn start(&mut self) {
        self.rss_ready = self.proc.rss_kib();
        self.cpu = Some(CpuMeter::start(self.proc));
        self.generator_cpu = Some(CpuMeter::start(Proc::this()));
        let mut ours = vec![std::process::id()];
        ours.extend(self.proc.pids());
        ours.extend(&self.system_pids);
        self.others = Some(OthersMeter::start(ours));
        self.stopped = None;
        self.redis_start = self.redis_counts();
        self.redis_used = None;
        self.peak = self
            .proc
            .known()
            .then(|| self.proc.sample_peak(Duration::from_millis(100)));
    }

    /// Ends the measured phase for CPU time (the first call counts; `finish` calls it if
    /// nothing did): what follows (stopping receivers, closing) is not measured.
    pub(crate) fn stop(&mut self) {
        if self.stopped.is_none()
            && let (Some(server), Some(generator)) = (self.cpu, self.generator_cpu)
        {
            self.stopped = Some(Stopped {
                server: server.reading(),
                generator: generator.reading(),
                others: self.others.as_ref().map(OthersMeter::reading),
            });
            if let (Some(start), Some(end)) = (&self.redis_start, self.redis_counts()) {
                self.redis_used = Some(end.since(start));
            }
        }
    }

    /// Ends the phase: adds the RSS and CPU figures, CPU per `work` item named `per`,
    /// the server's and the generator's CPU utilisation, and a loud warning when the
    /// generator was the bottleneck.
    pub(crate) fn finish(&mut self, report: &mut Report, work: u64, per: &str) {
        self.stop();
        let (server, generator, others) = match self.stopped.take() {
            Some(s) => (Some(s.server), Some(s.generator), s.others),
            None => (None, None, None),
        };
        let cpu_us = server.and_then(|s| s.cpu_us);
        report.figure_opt("server_rss_start_kib", self.rss_start);
        report.figure_opt("server_rss_ready_kib", self.rss_ready);
        report.figure_opt(
            "server_rss_peak_kib",
            self.peak.as_ref().map(|p| p.peak_kib()),
        );
        report.figure_opt("server_rss_end_kib", self.proc.rss_kib());
        report.figure_opt("server_cpu_ms", cpu_us.map(|us| us / 1000));
        report.figure(
            &format!("server_cpu_us_per_{per}"),
            match cpu_us {
                Some(us) if work > 0 => round3(us as f64 / work as f64),
                _ => serde_json::Value::Null,
            },
        );
        let server_util = server.and_then(|s| s.util());
        let generator_util = generator.and_then(|g| g.util());
        let wall_s = generator.map_or(0.0, |g| g.wall_us as f64 / 1e6);
        report.figure("cpu_wall_s", round3(wall_s));
        report.figure_opt("server_cpu_util", server_util.map(round3));
        report.figure_opt("generator_cpu_util", generator_util.map(round3));
        if let (Some(s), Some(g)) = (server_util, generator_util) {
            let bound = generator_bound(s, g, wall_s);
            report.figure("generator_bound", bound);
            if bound {
                let warning = format!(
                    "GENERATOR-BOUND: the generator used {:.0}% of its core and the server only \
                     {:.0}% of its own over {wall_s:.1} s: this run's throughput and latency \
                     measure the load generator, not the server",
                    g * 100.0,
                    s * 100.0
                );
                eprintln!("\nloadgen: WARNING: {warning}\n");
                report.note(warning);
            }
        }
        if let Some(OthersUse { cores, top }) = others {
            report.figure("others_cpu_util", round3(cores));
            let disturbed = cores > OTHERS_DISTURB;
            report.figure("disturbed", disturbed);
            if disturbed {
                let warning = format!(
                    "DISTURBED: other processes used {:.0}% of a core during the measured \
                     phase ({}): on two cores, figures of this run are not comparable",
                    cores * 100.0,
                    top.join(", ")
                );
                eprintln!("\nloadgen: WARNING: {warning}\n");
                report.note(warning);
            }
        }
        self.peak = None;
    }
}

/// Sends `messages` as fast as the sender may (im: within its window), waits for the
/// deliveries, and adds the figures of a burst to `report`.
pub(crate) async fn burst(
    group: &mut Group,
    common: &Common,
    messages: usize,
    stall: Duration,
    watch: &mut ServerWatch,
    report: &mut Report,
) {
    let stats = group.stats.clone();
    let expected = group.reading as u64 * messages as u64;
    let deadline = Instant::now() + Duration::from_secs(common.deadline.unwrap_or(300));
    watch.start();
    let done = AtomicBool::new(false);
    let sender = &mut group.sender;
    let send = async {
        let _ = tokio::time::timeout_at(deadline.into(), async {
            for _ in 0..messages {
                if sender.send(None).await.is_err() {
                    break;
                }
            }
            while !sender.all_answered() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        done.store(true, Ordering::Relaxed);
    };
    let ((), complete) = tokio::join!(
        send,
        wait(&stats, expected, deadline, stall, || done
            .load(Ordering::Relaxed))
    );
    watch.stop();
    group.stop_readers().await;
    sender_closed_note(&group.sender, report);
    let sender = &group.sender;
    if !complete {
        report.incomplete(format!(
            "{} of {expected} deliveries before the deadline or a {}s stall",
            stats.delivered(),
            stall.as_secs()
        ));
    }
    let first = sender.first_send_ns.unwrap_or(0);
    let delivered = stats.delivered();
    let last_push = stats.last_push_ns.load(Ordering::Relaxed);
    report.figure("receivers", group.reading as u64);
    report.figure("expected_deliveries", expected);
    report.figure("delivered", delivered);
    report.figure("sent", sender.sent);
    report.figure("duration_s", round3(clock::secs_between(first, last_push)));
    report.figure(
        "deliveries_per_sec",
        rate(delivered, clock::secs_between(first, last_push)),
    );
    if common.system == System::Im {
        sender.acks.report(first, report);
    } else {
        report.figure(
            "sends_per_sec",
            rate(sender.sent, clock::secs_between(first, sender.last_send_ns)),
        );
    }
    report.figures(stats.latency.figures("latency"));
    group_figures(group, report);
    watch.finish(report, delivered, "delivery");
    watch.redis_figures(report, sender.sent, "message");
}

/// Notes a sender whose connection the server closed during the run (the deliveries then
/// stop short of the expected count).
pub(crate) fn sender_closed_note(sender: &Sender, report: &mut Report) {
    if sender.closed_by_server() {
        report.note(
            "the server closed the sender's connection during the run \
             (socket.io: a `ping timeout` when the sender's pong waits behind its own queued messages)",
        );
    }
}

/// The receivers' and set-up figures every group scenario reports.
pub(crate) fn group_figures(group: &Group, report: &mut Report) {
    let stats = &group.stats;
    report.figure("resync_events", stats.resync_events.load(Ordering::Relaxed));
    report.figure("resynced_receivers", stats.resynced.load(Ordering::Relaxed));
    report.figure("kicked", stats.kicked.load(Ordering::Relaxed));
    report.figure("closed_receivers", stats.closed.load(Ordering::Relaxed));
    report.figure("sampled_frames", stats.sampled.load(Ordering::Relaxed));
    report.figure("sampled_bad", stats.sample_bad.load(Ordering::Relaxed));
    report.figure("setup_s", round3(group.setup_secs));
    report.figure("setup_failures", group.setup_failures as u64);
    report.figure("not_ready", group.not_ready);
    if let Some(error) = &group.first_error {
        report.note(format!("first set-up error: {error}"));
    }
    if stats.sample_bad.load(Ordering::Relaxed) > 0 {
        report.incomplete("some sampled pushes were not the expected message");
    }
    protocol_figures(stats, report);
}

/// The receivers' protocol errors (frames these servers never send): a figure, and an
/// incomplete run if there were any.
pub(crate) fn protocol_figures(stats: &RecvStats, report: &mut Report) {
    let errors = stats.protocol_errors.load(Ordering::Relaxed);
    report.figure("protocol_errors", errors);
    if errors > 0 {
        let first = stats
            .first_protocol_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_default();
        report.incomplete(format!(
            "{errors} connections ended on a frame the server should never send (first: {first})"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_bound_needs_a_busy_generator_an_idle_server_and_time() {
        assert!(generator_bound(0.5, 0.98, 2.0));
        assert!(
            !generator_bound(0.95, 0.98, 2.0),
            "both busy: the server is measured"
        );
        assert!(
            !generator_bound(0.5, 0.6, 2.0),
            "neither busy: something else limits"
        );
        assert!(!generator_bound(0.5, 0.98, 0.2), "too short to tell");
    }
}
