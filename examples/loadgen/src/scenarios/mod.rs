//! The scenarios, one per file.

mod accounts;
mod connect_storm;
mod direct_sends;
mod group;
mod group_burst;
mod group_paced;
mod idle;
mod login_flood;
mod offline_sync;
mod slow_consumer;
mod soak;

use crate::cli::Scenario;
use crate::report::Report;

/// Runs one scenario; `None` when this process is a shard reporting to its parent.
pub(crate) async fn run(scenario: &Scenario) -> anyhow::Result<Option<Report>> {
    Ok(Some(match scenario {
        Scenario::Idle { common, opts } => return idle::run(common, opts).await,
        Scenario::ConnectStorm { common, opts } => connect_storm::run(common, opts).await?,
        Scenario::GroupBurst { common, opts } => group_burst::run(common, opts).await?,
        Scenario::GroupPaced { common, opts } => group_paced::run(common, opts).await?,
        Scenario::DirectSends { common, opts } => direct_sends::run(common, opts).await?,
        Scenario::OfflineSync { common, opts } => offline_sync::run(common, opts).await?,
        Scenario::SlowConsumer { common, opts } => slow_consumer::run(common, opts).await?,
        Scenario::LoginFlood { common, opts } => login_flood::run(common, opts).await?,
        Scenario::Soak { common, opts } => soak::run(common, opts).await?,
    }))
}
