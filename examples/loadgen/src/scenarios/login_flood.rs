//! `login-flood` (im, default password-hash cost): registers N users, then logs them in,
//! C at a time, on fresh connections from source addresses spread over 127.0.0.1–8,
//! sampling the server's RSS every 100 ms: before, peak, and some seconds after.

use std::time::Duration;

use crate::cli::{Common, FloodOpts};
use crate::im;
use crate::report::Report;
use crate::rss::Proc;
use crate::scenarios::accounts::{self, im_only, kib};
use crate::stats::round3;

/// Runs the scenario.
pub(crate) async fn run(common: &Common, opts: &FloodOpts) -> anyhow::Result<Report> {
    let target = im_only(common, "login-flood")?;
    let mut report = Report::new("login-flood", common);
    report.param("logins", opts.logins as u64);
    report.param("concurrency", opts.concurrency as u64);
    report.param("after_s", opts.after);
    let proc = Proc::new(&common.server_pid);
    let sampler = proc.sample_peak(Duration::from_millis(100));
    let rss_start = proc.rss_kib();
    let prefix = common
        .run_prefix
        .clone()
        .unwrap_or_else(|| im::run_prefix("f"));
    let names = accounts::names(&prefix, "u", opts.logins);
    let registered = accounts::register_all(&target, &names, opts.concurrency).await;
    registered.report("register", &mut report);
    let register_peak = sampler.peak_kib();
    let rss_before = proc.rss_kib();
    sampler.reset(rss_before.unwrap_or(0));
    let cpu = crate::rss::CpuMeter::start(proc);
    let (logins, _tokens) = accounts::login_each(&target, &names, opts.concurrency, "flood").await;
    logins.report("login", &mut report);
    let cpu_us = cpu.used_us();
    let login_peak = sampler.peak_kib();
    let rss_end = proc.rss_kib();
    tokio::time::sleep(Duration::from_secs(opts.after)).await;
    let rss_after = proc.rss_kib();
    report.figure("server_rss_start_kib", kib(rss_start));
    report.figure(
        "server_rss_register_peak_kib",
        kib(proc.known().then_some(register_peak)),
    );
    report.figure("server_rss_before_logins_kib", kib(rss_before));
    report.figure(
        "server_rss_peak_kib",
        kib(proc.known().then_some(login_peak)),
    );
    report.figure("server_rss_end_kib", kib(rss_end));
    report.figure("server_rss_after_kib", kib(rss_after));
    report.figure_opt("server_cpu_ms", cpu_us.map(|us| us / 1000));
    report.figure(
        "server_cpu_ms_per_login",
        match cpu_us {
            Some(us) if logins.ok > 0 => round3(us as f64 / 1000.0 / logins.ok as f64),
            _ => serde_json::Value::Null,
        },
    );
    Ok(report)
}
