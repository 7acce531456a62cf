//! `connect-storm` (im): registers N users, then logs each in on a fresh connection (C at
//! a time), then resumes each with its token on a fresh connection.

use crate::cli::{Common, StormOpts};
use crate::im;
use crate::report::Report;
use crate::scenarios::accounts::{self, im_only};
use crate::scenarios::group::ServerWatch;

/// Runs the scenario.
pub(crate) async fn run(common: &Common, opts: &StormOpts) -> anyhow::Result<Report> {
    let target = im_only(common, "connect-storm")?;
    let mut report = Report::new("connect-storm", common);
    report.param("users", opts.users as u64);
    report.param("concurrency", opts.concurrency as u64);
    let mut watch = ServerWatch::new(common);
    let prefix = common
        .run_prefix
        .clone()
        .unwrap_or_else(|| im::run_prefix("c"));
    let names = accounts::names(&prefix, "u", opts.users);
    let registered = accounts::register_all(&target, &names, opts.concurrency).await;
    registered.report("register", &mut report);
    watch.start();
    let (logins, tokens) = accounts::login_each(&target, &names, opts.concurrency, "storm").await;
    logins.report("login", &mut report);
    let tokens: Vec<String> = tokens.into_iter().flatten().collect();
    let resumes = accounts::resume_each(&target, &tokens, opts.concurrency).await;
    resumes.report("resume", &mut report);
    watch.finish(&mut report, logins.ok + resumes.ok, "login_or_resume");
    Ok(report)
}
