//! Phases of account traffic shared by `connect-storm`, `login-flood`, `direct-sends` and
//! `soak`: registering users, logging each in on a fresh connection, resuming each on a
//! fresh connection, and setting up users whose connections stay open.

use std::time::Instant;

use futures::StreamExt as _;
use serde_json::Value;

use crate::clock;
use crate::im::{self, ImClient, Session, Target};
use crate::progress;
use crate::report::Report;
use crate::stats::{Latency, rate, round3};

/// What one phase did.
#[derive(Debug, Default)]
pub(crate) struct Phase {
    /// Operations that succeeded.
    pub(crate) ok: u64,
    /// Operations that failed.
    pub(crate) failed: u64,
    /// The first failure.
    pub(crate) first_error: Option<String>,
    /// Seconds the phase took.
    pub(crate) secs: f64,
    /// Latency of each operation (connect and hello included where a connection is new).
    pub(crate) latency: Latency,
}

impl Phase {
    fn count(&mut self, result: &anyhow::Result<impl Sized>) {
        match result {
            Ok(_) => self.ok += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    /// Adds `{name}_per_sec`, `{name}_failed`, `{name}_s` and latency percentiles.
    pub(crate) fn report(&self, name: &str, report: &mut Report) {
        report.figure(&format!("{name}_ok"), self.ok);
        report.figure(&format!("{name}_failed"), self.failed);
        report.figure(&format!("{name}_s"), round3(self.secs));
        report.figure(&format!("{name}_per_sec"), rate(self.ok, self.secs));
        report.figures(self.latency.figures(name));
        if let Some(error) = &self.first_error {
            report.note(format!("first {name} error: {error}"));
        }
        if self.failed > 0 {
            report.incomplete(format!("{} {name} operations failed", self.failed));
        }
    }
}

/// Usernames `{prefix}{tag}{i}` for `i` in `0..n`.
pub(crate) fn names(prefix: &str, tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{tag}{i}")).collect()
}

/// Registers every name, `concurrency` connections each registering its share in turn.
pub(crate) async fn register_all(target: &Target, names: &[String], concurrency: usize) -> Phase {
    let concurrency = concurrency.clamp(1, names.len().max(1));
    let bar = progress::bar(names.len() as u64, "register");
    let started = Instant::now();
    let chunks: Vec<&[String]> = names
        .chunks(names.len().div_ceil(concurrency).max(1))
        .collect();
    let results: Vec<Vec<(anyhow::Result<u64>, u64)>> =
        futures::future::join_all(chunks.into_iter().map(|chunk| {
            let bar = &bar;
            async move {
                let mut out = Vec::with_capacity(chunk.len());
                let mut client = match ImClient::connect(target).await {
                    Ok(client) => client,
                    Err(e) => {
                        let msg = format!("{e:#}");
                        return chunk
                            .iter()
                            .map(|_| (Err(anyhow::anyhow!(msg.clone())), 0))
                            .collect();
                    }
                };
                for name in chunk {
                    let t = clock::now_ns();
                    let result = client.register(name).await;
                    out.push((result, clock::now_ns() - t));
                    bar.inc(1);
                }
                client.close().await;
                out
            }
        }))
        .await;
    bar.finish_and_clear();
    let mut phase = Phase {
        secs: started.elapsed().as_secs_f64(),
        ..Phase::default()
    };
    for (result, ns) in results.into_iter().flatten() {
        phase.count(&result);
        if result.is_ok() {
            phase.latency.record_ns(ns);
        }
    }
    phase
}

/// For each name, on a fresh connection: connect, hello, `login`. Returns the tokens.
pub(crate) async fn login_each(
    target: &Target,
    names: &[String],
    concurrency: usize,
    device: &str,
) -> (Phase, Vec<Option<String>>) {
    each_on_a_fresh_connection(
        target,
        names,
        concurrency,
        "login",
        |mut client, name| async move {
            let session = client.login(name, device).await?;
            Ok((client, session.token))
        },
    )
    .await
}

/// For each token, on a fresh connection: connect, hello, `resume`.
pub(crate) async fn resume_each(target: &Target, tokens: &[String], concurrency: usize) -> Phase {
    each_on_a_fresh_connection(
        target,
        tokens,
        concurrency,
        "resume",
        |mut client, token| async move {
            client.resume(token).await?;
            Ok((client, ()))
        },
    )
    .await
    .0
}

/// Runs `step` for each item on a fresh connection (connect and hello included in its
/// latency), `concurrency` at a time, closing each connection after its step. Returns
/// the phase and what each step returned (`None` where it failed), in completion order.
async fn each_on_a_fresh_connection<'a, T, R, F, Fut>(
    target: &Target,
    items: &'a [T],
    concurrency: usize,
    label: &'static str,
    step: F,
) -> (Phase, Vec<Option<R>>)
where
    F: Fn(ImClient, &'a T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(ImClient, R)>>,
{
    let bar = progress::bar(items.len() as u64, label);
    let started = Instant::now();
    let mut closing = Vec::new();
    let results: Vec<(anyhow::Result<R>, u64)> = futures::stream::iter(items)
        .map(|item| {
            let (bar, step) = (&bar, &step);
            async move {
                let t = clock::now_ns();
                let result = match ImClient::connect(target).await {
                    Ok(client) => step(client, item).await,
                    Err(e) => Err(e),
                };
                let ns = clock::now_ns() - t;
                bar.inc(1);
                (result, ns)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .map(|(result, ns)| {
            let result = result.map(|(client, r)| {
                closing.push(tokio::spawn(client.close()));
                r
            });
            (result, ns)
        })
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    for close in closing {
        let _ = close.await;
    }
    let mut phase = Phase {
        secs,
        ..Phase::default()
    };
    let mut outputs = Vec::with_capacity(results.len());
    for (result, ns) in results {
        phase.count(&result);
        if result.is_ok() {
            phase.latency.record_ns(ns);
        }
        outputs.push(result.ok());
    }
    (phase, outputs)
}

/// Registers and logs in each name on a connection of its own that stays open
/// (`concurrency` at a time; `rate_limited` steps are tried again): the clients in the
/// order of `names`, or the first failure.
pub(crate) async fn register_and_login_all(
    target: &Target,
    names: &[String],
    concurrency: usize,
    label: &str,
) -> anyhow::Result<Vec<(ImClient, Session)>> {
    let bar = progress::bar(names.len() as u64, label);
    let mut users: Vec<(usize, anyhow::Result<(ImClient, Session)>)> =
        futures::stream::iter(names.iter().enumerate())
            .map(|(i, name)| {
                let bar = &bar;
                async move {
                    let result = im::register_and_login(target, name).await;
                    bar.inc(1);
                    (i, result)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    bar.finish_and_clear();
    users.sort_by_key(|(i, _)| *i);
    users.into_iter().map(|(_, result)| result).collect()
}

/// Refuses a scenario that only makes sense against the im server.
pub(crate) fn im_only(common: &crate::cli::Common, scenario: &str) -> anyhow::Result<Target> {
    anyhow::ensure!(
        common.system == crate::cli::System::Im,
        "{scenario} runs against the im server only (--system im)"
    );
    Ok(Target {
        addr: common.addr(),
        transport: common.transport,
    })
}

/// A JSON number of KiB, or null.
pub(crate) fn kib(value: Option<u64>) -> Value {
    value.map_or(Value::Null, Value::from)
}
