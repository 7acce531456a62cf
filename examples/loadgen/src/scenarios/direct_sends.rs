//! `direct-sends` (im): S senders, each with its own peer (2S users, `d:<lo>:<hi>`
//! conversations; the server must allow direct messages to anyone), each sending K
//! messages with at most W awaiting their ack (closed loop), or open loop at R sends per
//! second in all. Acked sends per second and ack latency.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::cli::{Common, DirectOpts, System};
use crate::clock;
use crate::im;
use crate::progress;
use crate::receiver::{Readers, RecvMode};
use crate::report::Report;
use crate::scenarios::accounts::{self, im_only};
use crate::scenarios::group::{self, ServerWatch};
use crate::sender::{AckStats, Sender};
use crate::stats::{rate, round3};

/// Runs the scenario.
pub(crate) async fn run(common: &Common, opts: &DirectOpts) -> anyhow::Result<Report> {
    let target = im_only(common, "direct-sends")?;
    let pairs = opts.senders;
    let mut report = Report::new("direct-sends", common);
    report.param("senders", pairs as u64);
    report.param("messages", opts.messages as u64);
    match opts.rate {
        Some(r) => report.param("rate", r),
        None => report.param("window", opts.window as u64),
    }
    let mut watch = ServerWatch::new(common);
    let prefix = common
        .run_prefix
        .clone()
        .unwrap_or_else(|| im::run_prefix("d"));
    let setup_started = Instant::now();
    let mut names = accounts::names(&prefix, "s", pairs);
    names.extend(accounts::names(&prefix, "p", pairs));
    let mut clients =
        accounts::register_and_login_all(&target, &names, common.setup_concurrency, "users")
            .await?;
    let peers = clients.split_off(pairs);
    let mut readers = Readers::new();
    let stats = readers.stats.clone();
    let acks = Arc::new(AckStats::default());
    let mut senders = Vec::with_capacity(pairs);
    for ((client, session), (peer, peer_session)) in clients.into_iter().zip(peers) {
        let (conn, next_id) = client.into_parts();
        senders.push(Sender::with_acks(
            System::Im,
            conn,
            next_id,
            im::direct_conversation(session.user, peer_session.user),
            if opts.rate.is_some() {
                None
            } else {
                Some(opts.window)
            },
            acks.clone(),
        ));
        let mode = RecvMode {
            system: System::Im,
            ping: true,
            sample_every: 64,
        };
        readers.spawn(peer.into_parts().0, mode);
    }
    report.figure("setup_s", round3(setup_started.elapsed().as_secs_f64()));

    let total = (pairs * opts.messages) as u64;
    let deadline = Instant::now() + Duration::from_secs(common.deadline.unwrap_or(300));
    watch.start();
    let t0 = clock::now_ns() + 50_000_000;
    let bar = progress::bar(total, "acks");
    let pace = opts.rate;
    let sending = futures::future::join_all(senders.iter_mut().enumerate().map(|(i, sender)| {
        let messages = opts.messages;
        async move {
            for j in 0..messages {
                let intended = pace.map(|r| t0 + ((i + j * pairs) as f64 / r * 1e9) as u64);
                if let Some(at) = intended {
                    tokio::time::sleep_until(clock::at_ns(at).into()).await;
                }
                if sender.send(intended).await.is_err() {
                    break;
                }
            }
            while !sender.all_answered() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }));
    let progress = async {
        loop {
            bar.set_position(acks.acked.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let finished = tokio::time::timeout_at(deadline.into(), async {
        tokio::select! {
            _ = sending => {}
            () = progress => {}
        }
    })
    .await
    .is_ok();
    watch.stop();
    bar.finish_and_clear();
    // Pushes to the peers trail the acks a little.
    let _ = group::wait(
        &stats,
        total,
        Instant::now() + Duration::from_secs(5),
        Duration::from_secs(2),
        || true,
    )
    .await;
    readers.stop().await;

    let acked = acks.acked.load(Ordering::Relaxed);
    let errors = acks.errors.load(Ordering::Relaxed);
    let first = senders
        .iter()
        .filter_map(|s| s.first_send_ns)
        .min()
        .unwrap_or(0);
    let last_ack = acks.last_ack_ns.load(Ordering::Relaxed);
    if !finished {
        report.incomplete(format!(
            "{acked} of {total} sends acked before the deadline"
        ));
    }
    if errors > 0 {
        report.incomplete(format!("{errors} sends failed"));
        if let Some(error) = acks.first_error.lock().ok().and_then(|e| e.clone()) {
            report.note(format!("first send error: {error}"));
        }
    }
    report.figure("expected", total);
    report.figure("acked", acked);
    report.figure("send_errors", errors);
    report.figure("duration_s", round3(clock::secs_between(first, last_ack)));
    report.figure(
        "sends_per_sec",
        rate(acked, clock::secs_between(first, last_ack)),
    );
    report.figures(acks.latency.figures("ack"));
    report.figure("peer_deliveries", stats.delivered());
    report.figures(stats.latency.figures("push"));
    report.figure("resync_events", stats.resync_events.load(Ordering::Relaxed));
    group::protocol_figures(&stats, &mut report);
    watch.finish(&mut report, acked, "send");

    for sender in senders {
        sender.close().await;
    }
    Ok(report)
}
