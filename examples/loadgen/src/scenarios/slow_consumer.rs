//! `slow-consumer`: a group burst where a share of the members never read their socket.
//! The reading members' deliveries and latency, whether any of them got `resync` (none
//! should), and what became of the stalled ones.

use std::time::Duration;

use crate::cli::{Common, SlowOpts, System};
use crate::report::Report;
use crate::scenarios::group::{self, ServerWatch};

/// Runs the scenario.
pub(crate) async fn run(common: &Common, opts: &SlowOpts) -> anyhow::Result<Report> {
    let members = opts.group.members;
    let stalled = ((members as f64) * opts.stalled_percent / 100.0).round() as usize;
    let mut report = Report::new("slow-consumer", common);
    report.param("members", members as u64);
    report.param("messages", opts.messages as u64);
    report.param("stalled_percent", opts.stalled_percent);
    if common.system == System::Im {
        report.param("window", opts.window as u64);
    }
    let mut watch = ServerWatch::new(common);
    let mut group = group::setup(
        common,
        members,
        stalled,
        Some(opts.window),
        opts.group.sample_every,
    )
    .await?;
    let stalled_count = group.stalled.len() as u64;
    group::burst(
        &mut group,
        common,
        opts.messages,
        Duration::from_secs(opts.group.stall_secs),
        &mut watch,
        &mut report,
    )
    .await;
    let outcomes = group.close().await;
    let closed = outcomes.iter().filter(|o| o.closed).count() as u64;
    let resync = outcomes.iter().filter(|o| o.resync).count() as u64;
    let kicked = outcomes.iter().filter(|o| o.kicked).count() as u64;
    let mut got: Vec<u64> = outcomes.iter().map(|o| o.messages).collect();
    got.sort_unstable();
    report.figure("stalled", stalled_count);
    report.figure("stalled_closed_by_server", closed);
    report.figure("stalled_with_resync", resync);
    report.figure("stalled_kicked", kicked);
    report.figure("stalled_messages_min", got.first().copied().unwrap_or(0));
    report.figure(
        "stalled_messages_median",
        got.get(got.len() / 2).copied().unwrap_or(0),
    );
    report.figure("stalled_messages_max", got.last().copied().unwrap_or(0));
    report.note(
        "stalled members are read only after the burst, until closed or quiet for 2 s: \
         `stalled_messages_*` is what each still had buffered (or got before its close)",
    );
    Ok(report)
}
