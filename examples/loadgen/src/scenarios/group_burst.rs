//! `group-burst`: M receivers online in one group plus one sender, which sends K messages
//! as fast as it may. Deliveries per second, push latency from the actual send time,
//! server CPU per delivery.

use std::time::Duration;

use crate::cli::{BurstOpts, Common, System};
use crate::report::Report;
use crate::scenarios::group::{self, ServerWatch};

/// Runs the scenario.
pub(crate) async fn run(common: &Common, opts: &BurstOpts) -> anyhow::Result<Report> {
    let members = opts.group.members;
    let messages = opts
        .messages
        .unwrap_or(if members >= 5000 { 50 } else { 200 });
    let mut report = Report::new("group-burst", common);
    report.param("members", members as u64);
    report.param("messages", messages as u64);
    if common.system == System::Im {
        report.param("window", opts.window as u64);
    }
    let mut watch = ServerWatch::new(common);
    let mut group = group::setup(
        common,
        members,
        0,
        Some(opts.window),
        opts.group.sample_every,
    )
    .await?;
    group::burst(
        &mut group,
        common,
        messages,
        Duration::from_secs(opts.group.stall_secs),
        &mut watch,
        &mut report,
    )
    .await;
    group.close().await;
    Ok(report)
}
