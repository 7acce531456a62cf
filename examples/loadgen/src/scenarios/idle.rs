//! `idle`: the server's RSS before, with N connections open (im: hello, register, login
//! each; `--no-hello`: the bare WebSocket), after a settling wait, and after closing them.
//! Above `--max-conns-per-process` connections the generator splits itself into several
//! processes (re-running itself with `--shard i --shards n`); the children report on
//! stdout and wait for a line on stdin before closing.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::cli::{Common, IdleOpts, System};
use crate::im::{self, Target};
use crate::progress;
use crate::receiver::{Readers, RecvMode};
use crate::report::Report;
use crate::rss::{CpuMeter, Proc};
use crate::scenarios::accounts::kib;
use crate::stats::round3;
use crate::{ceiling_client, socketio};

/// Connections held open by this process.
#[derive(Debug)]
struct Opened {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    readers: Readers,
}

impl Opened {
    /// Connections the server closed meanwhile.
    fn closed_early(&self) -> u64 {
        self.readers.stats.closed.load(Ordering::Relaxed)
    }

    async fn close(mut self) {
        self.readers.stop().await;
    }
}

/// Opens `n` connections (the `shard`-th share of the run) and keeps reading them.
async fn open(
    common: &Common,
    opts: &IdleOpts,
    n: usize,
    shard: usize,
    prefix: &str,
    tokens: Option<&[String]>,
) -> Opened {
    let bar = progress::bar(n as u64, "connections");
    let mode = RecvMode {
        system: common.system,
        ping: !opts.no_hello,
        sample_every: 64,
    };
    let mut opened = Opened {
        ok: 0,
        failed: 0,
        first_error: None,
        readers: Readers::new(),
    };
    // Each connection is read from the moment it is open (answering the server's pings),
    // not once all are: opening 100,000 takes minutes, longer than a ping timeout.
    let mut results = futures::stream::iter(0..n)
        .map(|i| {
            let bar = &bar;
            // The nodes of a cluster in turn.
            let target = Target {
                addr: common.addr_for(i),
                transport: common.transport,
            };
            async move {
                let target = &target;
                let conn = match common.system {
                    System::Im if opts.no_hello => target.open().await,
                    System::Im if tokens.is_some() => {
                        let token = tokens.and_then(|t| t.get(i)).cloned().unwrap_or_default();
                        match im::ImClient::connect(target).await {
                            Ok(mut client) => {
                                client.resume(&token).await.map(|_| client.into_parts().0)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    System::Im => {
                        let name = if shard == usize::MAX {
                            format!("{prefix}{i}")
                        } else {
                            format!("{prefix}c{shard}x{i}")
                        };
                        im::register_and_login(target, &name)
                            .await
                            .map(|(client, _)| client.into_parts().0)
                    }
                    System::Ceiling => ceiling_client::connect(target.addr).await,
                    System::Socketio => socketio::connect(target.addr).await,
                };
                bar.inc(1);
                conn
            }
        })
        .buffer_unordered(common.setup_concurrency.max(1));
    while let Some(result) = results.next().await {
        match result {
            Ok(conn) => {
                opened.ok += 1;
                opened.readers.spawn(conn, mode);
            }
            Err(e) => {
                opened.failed += 1;
                opened.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    drop(results);
    bar.finish_and_clear();
    opened
}

/// Runs the scenario (`None` in a child process, which reports through its own lines).
pub(crate) async fn run(common: &Common, opts: &IdleOpts) -> anyhow::Result<Option<Report>> {
    let prefix = common
        .run_prefix
        .clone()
        .unwrap_or_else(|| im::run_prefix("i"));
    if let Some(shard) = common.shard {
        child(common, opts, shard, &prefix).await?;
        return Ok(None);
    }
    let shards = opts
        .conns
        .div_ceil(common.max_conns_per_process.max(1))
        .max(1);
    let mut report = Report::new("idle", common);
    report.param("conns", opts.conns as u64);
    report.param("no_hello", opts.no_hello);
    report.param("resume", opts.resume);
    report.param("settle_s", opts.settle);
    report.param("processes", shards as u64);
    let proc = Proc::new(&common.server_pid);
    report.figure("server_rss_cold_kib", kib(proc.rss_kib()));
    let mut tokens = None;
    if common.system == System::Im && opts.resume {
        anyhow::ensure!(shards == 1, "--resume works in one generator process only");
        tokens = Some(login_first(common, opts.conns, &prefix).await?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    } else if common.system == System::Im && !opts.no_hello {
        // Password hashing allocates (1 MiB per hash even at the cheap cost) and the
        // allocator keeps what it freed: log in one batch of users first, so that the
        // per-connection figure is not mostly hashing memory kept for later.
        let warm = IdleOpts {
            conns: common.setup_concurrency.max(1),
            ..opts.clone()
        };
        open(
            common,
            &warm,
            warm.conns,
            usize::MAX,
            &format!("{prefix}w"),
            None,
        )
        .await
        .close()
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rss_before = proc.rss_kib();
    let started = Instant::now();
    let settle = Duration::from_secs(opts.settle);

    let (ok, failed, closed_early, rss_open, rss_settled, rss_closed, open_secs, held);
    if shards == 1 {
        let opened = open(common, opts, opts.conns, 0, &prefix, tokens.as_deref()).await;
        open_secs = started.elapsed().as_secs_f64();
        rss_open = proc.rss_kib();
        let hold = CpuMeter::start(proc);
        tokio::time::sleep(settle).await;
        rss_settled = proc.rss_kib();
        held = hold.reading();
        ok = opened.ok;
        failed = opened.failed;
        closed_early = opened.closed_early();
        if let Some(error) = &opened.first_error {
            report.note(format!("first connection error: {error}"));
        }
        opened.close().await;
    } else {
        let mut children = Children::spawn(common, opts, shards, &prefix)?;
        let opened = children.lines("opened").await?;
        open_secs = started.elapsed().as_secs_f64();
        rss_open = proc.rss_kib();
        let hold = CpuMeter::start(proc);
        tokio::time::sleep(settle).await;
        rss_settled = proc.rss_kib();
        held = hold.reading();
        ok = opened.iter().map(|l| l["ok"].as_u64().unwrap_or(0)).sum();
        failed = opened
            .iter()
            .map(|l| l["failed"].as_u64().unwrap_or(0))
            .sum();
        if let Some(error) = opened.iter().find_map(|l| l["first_error"].as_str()) {
            report.note(format!("first connection error: {error}"));
        }
        children.tell("close").await?;
        let closed = children.lines("closed").await?;
        closed_early = closed
            .iter()
            .map(|l| l["closed_early"].as_u64().unwrap_or(0))
            .sum();
        children.wait().await;
    }
    tokio::time::sleep(settle.max(Duration::from_secs(2))).await;
    rss_closed = proc.rss_kib();

    if failed > 0 {
        report.incomplete(format!("{failed} connections could not be opened"));
    }
    report.figure("opened", ok);
    report.figure("failed", failed);
    report.figure("open_s", round3(open_secs));
    report.figure("closed_by_server", closed_early);
    report.figure("server_rss_before_kib", kib(rss_before));
    report.figure("server_rss_open_kib", kib(rss_open));
    report.figure("server_rss_settled_kib", kib(rss_settled));
    report.figure("server_rss_after_close_kib", kib(rss_closed));
    // What holding the connections costs (pings, presence refreshes), over the settle.
    report.figure_opt("server_cpu_util_held", held.util().map(round3));
    report.figure_opt("server_cpu_ms_held", held.cpu_us.map(|us| us / 1000));
    let per_conn = match (rss_before, rss_settled) {
        (Some(before), Some(settled)) if ok > 0 => {
            round3((settled as f64 - before as f64) / opts.conns as f64)
        }
        _ => Value::Null,
    };
    report.figure("kib_per_conn", per_conn);
    Ok(Some(report))
}

/// Registers and logs in `n` users on connections closed at once; returns their tokens.
async fn login_first(common: &Common, n: usize, prefix: &str) -> anyhow::Result<Vec<String>> {
    let bar = progress::bar(n as u64, "log in first");
    let tokens: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|i| {
            let bar = &bar;
            let target = Target {
                addr: common.addr_for(i),
                transport: common.transport,
            };
            async move {
                let target = &target;
                let (client, session) =
                    im::register_and_login(target, &format!("{prefix}r{i}")).await?;
                client.close().await;
                bar.inc(1);
                Ok(session.token)
            }
        })
        .buffered(common.setup_concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    tokens.into_iter().collect()
}

/// A child process's part: open, say so, wait for "close", close, say so.
async fn child(common: &Common, opts: &IdleOpts, shard: usize, prefix: &str) -> anyhow::Result<()> {
    let opened = open(common, opts, opts.conns, shard, prefix, None).await;
    println!(
        "{}",
        json!({"shard":shard,"event":"opened","ok":opened.ok,"failed":opened.failed,"first_error":opened.first_error})
    );
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = stdin.next_line().await? {
        if line.trim() == "close" {
            break;
        }
    }
    let closed_early = opened.closed_early();
    opened.close().await;
    println!(
        "{}",
        json!({"shard":shard,"event":"closed","closed_early":closed_early})
    );
    Ok(())
}

/// `--addr` as given: the addresses, comma-separated.
fn addr_list(common: &Common) -> String {
    common
        .addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The child processes of a split run.
#[derive(Debug)]
struct Children {
    procs: Vec<tokio::process::Child>,
    stdins: Vec<tokio::process::ChildStdin>,
    stdouts: Vec<tokio::io::Lines<BufReader<tokio::process::ChildStdout>>>,
}

impl Children {
    /// Starts `shards` copies of this program, each with its share of the connections.
    fn spawn(
        common: &Common,
        opts: &IdleOpts,
        shards: usize,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this program")?;
        let mut children = Children {
            procs: Vec::new(),
            stdins: Vec::new(),
            stdouts: Vec::new(),
        };
        for shard in 0..shards {
            let share = opts.conns / shards + usize::from(shard < opts.conns % shards);
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.arg("idle")
                .args(["--system", system_name(common.system)])
                .args(["--addr", &addr_list(common)])
                .args(["--transport", transport_name(common)])
                .args(["--conns", &share.to_string()])
                .args(["--settle", &opts.settle.to_string()])
                .args(["--setup-concurrency", &common.setup_concurrency.to_string()])
                .args(["--run-prefix", prefix])
                .args(["--shard", &shard.to_string()])
                .args(["--shards", &shards.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            if opts.no_hello {
                cmd.arg("--no-hello");
            }
            let mut child = cmd.spawn().context("starting a generator process")?;
            children
                .stdins
                .push(child.stdin.take().context("child stdin")?);
            children
                .stdouts
                .push(BufReader::new(child.stdout.take().context("child stdout")?).lines());
            children.procs.push(child);
        }
        Ok(children)
    }

    /// One JSON line with `"event": event` from each child.
    async fn lines(&mut self, event: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        for stdout in &mut self.stdouts {
            loop {
                let Some(line) = stdout.next_line().await? else {
                    bail!("a generator process ended before saying {event}");
                };
                if let Ok(value) = serde_json::from_str::<Value>(&line)
                    && value["event"] == event
                {
                    out.push(value);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Writes `line` to every child.
    async fn tell(&mut self, line: &str) -> anyhow::Result<()> {
        for stdin in &mut self.stdins {
            stdin.write_all(format!("{line}\n").as_bytes()).await?;
            stdin.flush().await?;
        }
        Ok(())
    }

    /// Waits for every child to exit.
    async fn wait(mut self) {
        self.stdins.clear();
        for child in &mut self.procs {
            let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        }
    }
}

fn system_name(system: System) -> &'static str {
    match system {
        System::Im => "im",
        System::Ceiling => "ceiling",
        System::Socketio => "socketio",
    }
}

fn transport_name(common: &Common) -> &'static str {
    match common.transport {
        crate::conn::Transport::Ws => "ws",
        crate::conn::Transport::Tcp => "tcp",
    }
}
