//! `group-paced`: like `group-burst`, but open loop: R messages per second for S seconds,
//! each with an intended send time, latency counted from it (no coordinated omission).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli::{Common, PacedOpts};
use crate::clock;
use crate::report::Report;
use crate::scenarios::group::{self, ServerWatch};
use crate::stats::{rate, round3};

/// Runs the scenario.
pub(crate) async fn run(common: &Common, opts: &PacedOpts) -> anyhow::Result<Report> {
    anyhow::ensure!(opts.rate > 0.0, "--rate must be above 0");
    let members = opts.group.members;
    let total = (opts.rate * opts.duration as f64).round() as u64;
    let mut report = Report::new("group-paced", common);
    report.param("members", members as u64);
    report.param("rate", opts.rate);
    report.param("duration_s", opts.duration);
    let mut watch = ServerWatch::new(common);
    let mut group = group::setup(common, members, 0, None, opts.group.sample_every).await?;
    let stats = group.stats.clone();
    let expected = group.reading as u64 * total;
    let deadline =
        Instant::now() + Duration::from_secs(common.deadline.unwrap_or(opts.duration + 60));
    watch.start();
    let interval_ns = 1e9 / opts.rate;
    let t0 = clock::now_ns() + 50_000_000;
    let done = AtomicBool::new(false);
    let mut max_lag_ns = 0;
    let sender = &mut group.sender;
    let send = async {
        let _ = tokio::time::timeout_at(deadline.into(), async {
            for i in 0..total {
                let intended = t0 + (i as f64 * interval_ns) as u64;
                tokio::time::sleep_until(clock::at_ns(intended).into()).await;
                max_lag_ns = max_lag_ns.max(clock::now_ns().saturating_sub(intended));
                if sender.send(Some(intended)).await.is_err() {
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
    let stall = Duration::from_secs(opts.group.stall_secs);
    let ((), complete) = tokio::join!(
        send,
        group::wait(&stats, expected, deadline, stall, || done
            .load(Ordering::Relaxed))
    );
    watch.stop();
    group.stop_readers().await;
    group::sender_closed_note(&group.sender, &mut report);
    if !complete {
        report.incomplete(format!(
            "{} of {expected} deliveries before the deadline or a {}s stall",
            stats.delivered(),
            stall.as_secs()
        ));
    }
    let delivered = stats.delivered();
    let sender = &group.sender;
    let last_push = stats.last_push_ns.load(Ordering::Relaxed);
    report.figure("receivers", group.reading as u64);
    report.figure("expected_deliveries", expected);
    report.figure("delivered", delivered);
    report.figure("sent", sender.sent);
    report.figure(
        "deliveries_per_sec",
        rate(delivered, clock::secs_between(t0, last_push)),
    );
    report.figure("sender_max_lag_ms", round3(max_lag_ns as f64 / 1e6));
    report.figures(stats.latency.figures("latency"));
    if common.system == crate::cli::System::Im {
        sender
            .acks
            .report(sender.first_send_ns.unwrap_or(0), &mut report);
    }
    group::group_figures(&group, &mut report);
    watch.finish(&mut report, delivered, "delivery");
    watch.redis_figures(&mut report, group.sender.sent, "message");
    group.close().await;
    Ok(report)
}
