//! `offline-sync` (im): user A sends N messages to user B while B is offline; then B logs
//! in on a new connection and catches up as protocol.md's "Staying in sync" says:
//! `conversations`, then `history` with `after` and the largest `limit` until `more` is
//! false. Every seq must arrive.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cli::{Common, OfflineOpts, System};
use crate::clock;
use crate::im::{self, ImClient};
use crate::progress;
use crate::report::Report;
use crate::scenarios::accounts::im_only;
use crate::scenarios::group::ServerWatch;
use crate::sender::Sender;
use crate::stats::{rate, round3};

/// The largest `history` page.
const PAGE: u64 = 200;

/// Runs the scenario.
pub(crate) async fn run(common: &Common, opts: &OfflineOpts) -> anyhow::Result<Report> {
    let target = im_only(common, "offline-sync")?;
    let mut report = Report::new("offline-sync", common);
    report.param("messages", opts.messages as u64);
    report.param("window", opts.window as u64);
    let mut watch = ServerWatch::new(common);
    let prefix = common
        .run_prefix
        .clone()
        .unwrap_or_else(|| im::run_prefix("o"));
    let b_name = format!("{prefix}b");
    let mut b_setup = ImClient::connect(&target).await?;
    let b_id = b_setup.register(&b_name).await?;
    b_setup.close().await;
    let (a, a_session) = im::register_and_login(&target, &format!("{prefix}a")).await?;
    let conversation = im::direct_conversation(a_session.user, b_id);
    let (conn, next_id) = a.into_parts();
    let mut sender = Sender::new(
        System::Im,
        conn,
        next_id,
        conversation.clone(),
        Some(opts.window),
    );
    let deadline = Instant::now() + Duration::from_secs(common.deadline.unwrap_or(300));

    // A sends while B is offline.
    let bar = progress::bar(opts.messages as u64, "sends");
    let sent = tokio::time::timeout_at(deadline.into(), async {
        for _ in 0..opts.messages {
            sender.send(None).await?;
            bar.set_position(sender.acks.acked.load(Ordering::Relaxed));
        }
        while !sender.all_answered() {
            bar.set_position(sender.acks.acked.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(())
    })
    .await;
    bar.finish_and_clear();
    let acked = sender.acks.acked.load(Ordering::Relaxed);
    sender
        .acks
        .report(sender.first_send_ns.unwrap_or(0), &mut report);
    sender.close().await;
    if !matches!(sent, Ok(Ok(()))) || acked < opts.messages as u64 {
        report.incomplete(format!("{acked} of {} sends acked", opts.messages));
    }

    // B comes online and catches up.
    let mut b = ImClient::connect(&target).await?;
    b.login(&b_name, "sync").await?;
    watch.start();
    let bar = progress::bar(acked, "catch-up");
    let caught_up = tokio::time::timeout_at(deadline.into(), async {
        let started = clock::now_ns();
        let conversations = b.conversations().await?;
        let last_seq = conversations
            .iter()
            .find(|c| c["conversation"] == conversation.as_str())
            .and_then(|c| c["last_seq"].as_u64())
            .context("the conversation is not in B's conversations")?;
        let mut after = 0;
        let mut received = 0u64;
        let mut pages = 0u64;
        let mut gaps = 0u64;
        loop {
            let (messages, more) = b.history_after(&conversation, after, PAGE).await?;
            pages += 1;
            for message in &messages {
                let seq = message["seq"].as_u64().context("a message without seq")?;
                if seq != after + 1 {
                    gaps += 1;
                }
                after = seq;
                if message["body"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("~t"))
                {
                    received += 1;
                }
            }
            bar.set_position(received);
            if !more || messages.is_empty() {
                break;
            }
        }
        let ended = clock::now_ns();
        anyhow::Ok((started, ended, last_seq, after, received, pages, gaps))
    })
    .await;
    bar.finish_and_clear();
    match caught_up {
        Ok(Ok((started, ended, last_seq, last_read, received, pages, gaps))) => {
            let secs = clock::secs_between(started, ended);
            report.figure("last_seq", last_seq);
            report.figure("last_seq_read", last_read);
            report.figure("received", received);
            report.figure("pages", pages);
            report.figure("gaps", gaps);
            report.figure("catch_up_ms", round3(secs * 1000.0));
            report.figure("catch_up_messages_per_sec", rate(received, secs));
            if gaps > 0 || last_read < last_seq || received < acked {
                report.incomplete(format!(
                    "catch-up incomplete: {received} of {acked} messages, {gaps} gaps, read to seq {last_read} of {last_seq}"
                ));
            }
        }
        Ok(Err(e)) => report.incomplete(format!("catch-up failed: {e:#}")),
        Err(_) => report.incomplete("catch-up not done by the deadline"),
    }
    watch.finish(&mut report, acked, "message_synced");
    b.close().await;
    Ok(report)
}
