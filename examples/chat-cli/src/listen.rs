//! `listen`: stay connected, print every event, reconnect when the connection drops.
//!
//! Pushes are best effort and storage is the truth (`docs/protocol.md`, "Staying in
//! sync"), so the listener keeps, per conversation, the last seq it has accounted for:
//!
//! - At start it takes the conversations' `last_seq` as that mark and prints only what
//!   is pushed from then on (`sync` is the command for the backlog).
//! - A pushed message more than one past the mark means pushes were missed: the gap is
//!   fetched with `history` and printed first.
//! - After a reconnect, and on `resync`, it catches up with [`Client::sync`].
//!
//! A push can race a catch-up (the message is stored after the session attached but
//! before `conversations` answered): it then arrives twice, and the second is dropped
//! because its seq was already printed. Pushed messages whose seq is at or below the
//! start mark were stored after the session attached, so they are new and are printed.
//!
//! Every message printed is acknowledged (`ack`), so its sender sees it delivered.
//!
//! `listen` resumes as its own device (`<device>-listen`), so the one-shot commands,
//! which resume the main device, do not kick it. It never moves `sync`'s cursors.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use im_core::client::{Client, Events};
use im_core::model::{ConversationId, Message, Seq, UserId};
use im_core::protocol::{ErrorCode, Event, HistoryQuery, KickCode};

use crate::context::Context;
use crate::error::CliError;
use crate::names::{self, Names};
use crate::output::Out;

/// First wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that lasted this long was healthy: the next drop starts the backoff over.
const HEALTHY: Duration = Duration::from_secs(30);
/// History page size when filling a gap.
const PAGE: u32 = 200;

/// `listen [--mark-read]`.
pub(crate) async fn listen(cx: &Context, mark_read: bool) -> Result<(), CliError> {
    let state = cx.logged_in()?;
    let token = state
        .listen_token
        .clone()
        .unwrap_or_else(|| state.token.clone());
    // Installed before the first connection, so Ctrl-C is ours from the moment the
    // "listening" line tells a script it may rely on it.
    let mut stop = Stop::new()?;
    let mut listener = Listener {
        out: cx.out,
        mark_read,
        me: state.user_id,
        names: Names::default(),
        seen: HashMap::new(),
        printed: HashMap::new(),
    };
    let mut backoff = Backoff::default();
    let mut connected_before = false;
    loop {
        if connected_before {
            let delay = backoff.next_delay();
            eprintln!("reconnecting in {:.1} s", delay.as_secs_f64());
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.wait() => return Ok(()),
            }
        }
        let attempt = async {
            let session = cx.resume_with(state.clone(), &token).await?;
            listener.me = session.me.id;
            listener.names.insert(&session.me);
            if connected_before {
                listener.catch_up(&session.client).await?;
            } else {
                listener.start(&session.client).await?;
            }
            Ok::<_, CliError>(session)
        };
        let attempt = tokio::select! {
            attempt = attempt => attempt,
            () = stop.wait() => return Ok(()),
        };
        let mut session = match attempt {
            Ok(session) => session,
            // The first connection must work, and a refused token never will.
            Err(e) if !connected_before || e.is_unauthorized() => return Err(e),
            Err(e) => {
                eprintln!("reconnect failed: {e}");
                continue;
            }
        };
        if connected_before {
            eprintln!("reconnected");
        } else {
            eprintln!(
                "listening as {} on {} (Ctrl-C to stop)",
                session.me.username, session.server
            );
        }
        connected_before = true;
        let since = Instant::now();
        let ended = tokio::select! {
            ended = listener.run(&session.client, &mut session.events) => ended,
            () = stop.wait() => return Ok(()),
        };
        if since.elapsed() >= HEALTHY {
            backoff = Backoff::default();
        }
        match ended {
            Ended::Closed => eprintln!("the connection was lost"),
            Ended::Kicked(KickCode::Shutdown, _) => eprintln!("the server is shutting down"),
            Ended::Kicked(code, reason) => return Err(kicked(code, &reason)),
            Ended::Failed(e) => return Err(e),
        }
    }
}

/// Why [`Listener::run`] returned.
#[derive(Debug)]
enum Ended {
    /// The connection closed (or a request found it closed): reconnect.
    Closed,
    /// The server closed the session on purpose.
    Kicked(KickCode, String),
    /// Printing failed: stop.
    Failed(CliError),
}

/// The error a kick ends `listen` with. Only `shutdown` is retried; the protocol leaves
/// the other codes to the user.
fn kicked(code: KickCode, reason: &str) -> CliError {
    match code {
        KickCode::Revoked | KickCode::PasswordChanged => {
            CliError::unauthorized(format!("kicked: {reason}; log in again"))
        }
        KickCode::Replaced => CliError::new(
            "kicked",
            format!("{reason} (is another `chat-cli listen` using this state file?)"),
        ),
        KickCode::DeviceLimit => CliError::new("device_limit", format!("kicked: {reason}")),
        _ => CliError::new("kicked", reason.to_owned()),
    }
}

/// What the listener remembers across reconnections.
#[derive(Debug)]
struct Listener {
    out: Out,
    mark_read: bool,
    me: UserId,
    names: Names,
    /// Per conversation, the last seq accounted for (printed, or there before `listen`
    /// started): where a catch-up starts.
    seen: HashMap<ConversationId, Seq>,
    /// Per conversation, the last seq printed: a push at or below it is a duplicate.
    printed: HashMap<ConversationId, Seq>,
}

impl Listener {
    /// Marks everything stored so far as seen, without printing it.
    async fn start(&mut self, client: &Client) -> Result<(), CliError> {
        for summary in client.conversations().await? {
            self.seen.insert(summary.conversation, summary.last_seq);
        }
        Ok(())
    }

    /// Prints everything stored since the marks (after a reconnect or a `resync`).
    async fn catch_up(&mut self, client: &Client) -> Result<(), CliError> {
        let missed = client.sync(&mut self.seen).await?;
        self.print(client, &missed).await?;
        for (conversation, seq) in &self.seen {
            let printed = self.printed.entry(*conversation).or_insert(*seq);
            *printed = (*printed).max(*seq);
        }
        Ok(())
    }

    /// Handles events until the connection ends.
    async fn run(&mut self, client: &Client, events: &mut Events) -> Ended {
        while let Some(event) = events.next().await {
            match self.handle(client, event).await {
                Ok(None) => {}
                Ok(Some(ended)) => return ended,
                Err(e) if e.code == ErrorCode::Unavailable.as_str() => return Ended::Closed,
                Err(e) if e.code == "io" => return Ended::Failed(e),
                // A refused side request (a `mark_read`, a `users`) is not worth
                // stopping for.
                Err(e) => eprintln!("warning: {e}"),
            }
        }
        Ended::Closed
    }

    async fn handle(&mut self, client: &Client, event: Event) -> Result<Option<Ended>, CliError> {
        match event {
            Event::Message { message } => {
                self.on_message(client, message).await?;
                Ok(None)
            }
            Event::Resync { .. } => {
                self.out.event(&event, &self.names)?;
                self.catch_up(client).await?;
                Ok(None)
            }
            Event::Kicked { code, reason } => {
                let event = Event::Kicked {
                    code,
                    reason: reason.clone(),
                };
                self.out.event(&event, &self.names)?;
                Ok(Some(Ended::Kicked(code, reason)))
            }
            event => {
                self.names.resolve(client, names::in_event(&event)).await?;
                self.out.event(&event, &self.names)?;
                Ok(None)
            }
        }
    }

    /// Prints a pushed message, after any the pushes skipped.
    async fn on_message(&mut self, client: &Client, message: Message) -> Result<(), CliError> {
        let conversation = message.conversation;
        if self
            .printed
            .get(&conversation)
            .is_some_and(|printed| message.seq <= *printed)
        {
            return Ok(());
        }
        let mut batch = match self.seen.get(&conversation) {
            Some(seen) if message.seq.0 > seen.0 + 1 => {
                self.between(client, conversation, *seen, message.seq)
                    .await?
            }
            _ => Vec::new(),
        };
        batch.push(message);
        self.print(client, &batch).await?;
        if self.mark_read
            && let Some(last) = batch.iter().rev().find(|m| m.sender != self.me)
        {
            client.mark_read(conversation, last.seq).await?;
        }
        Ok(())
    }

    /// The stored messages strictly between two seqs, oldest first.
    async fn between(
        &self,
        client: &Client,
        conversation: ConversationId,
        after: Seq,
        before: Seq,
    ) -> Result<Vec<Message>, CliError> {
        let mut found = Vec::new();
        let mut cursor = after;
        loop {
            let query = HistoryQuery {
                after: Some(cursor),
                before: None,
                limit: Some(PAGE),
            };
            let (page, more) = client.history(conversation, query).await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            found.extend(page.into_iter().filter(|m| m.seq < before));
            cursor = last;
            if !more || cursor.0 + 1 >= before.0 {
                break;
            }
        }
        Ok(found)
    }

    /// Prints messages not printed yet, moves both marks past them, and acknowledges
    /// them: what `listen` printed was delivered, and the sender sees it so.
    async fn print(&mut self, client: &Client, messages: &[Message]) -> Result<(), CliError> {
        self.names
            .resolve(client, messages.iter().flat_map(names::in_message))
            .await?;
        let mut delivered: Vec<(ConversationId, Seq)> = Vec::new();
        for message in messages {
            let conversation = message.conversation;
            let printed = self.printed.entry(conversation).or_insert(Seq::ZERO);
            if message.seq <= *printed {
                continue;
            }
            *printed = message.seq;
            let seen = self.seen.entry(conversation).or_insert(Seq::ZERO);
            *seen = (*seen).max(message.seq);
            self.out.message(message, &self.names)?;
            match delivered.iter_mut().find(|(c, _)| *c == conversation) {
                Some((_, seq)) => *seq = (*seq).max(message.seq),
                None => delivered.push((conversation, message.seq)),
            }
        }
        // After printing: a message is acknowledged once it has been shown.
        for (conversation, seq) in delivered {
            client.ack(conversation, seq).await?;
        }
        Ok(())
    }
}

/// Exponential backoff with some jitter, so that many clients dropped at once by a
/// restart do not all come back in the same instant.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: FIRST_BACKOFF,
        }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(MAX_BACKOFF);
        // Up to a quarter more; the clock's nanoseconds are random enough for this.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
    }
}

/// Ctrl-C, and on unix also SIGTERM: the ways to stop `listen` cleanly.
#[derive(Debug)]
struct Stop {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let install = |kind| {
                signal(kind)
                    .map_err(|e| CliError::new("io", format!("installing a signal handler: {e}")))
            };
            Ok(Stop {
                interrupt: install(SignalKind::interrupt())?,
                terminate: install(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Stop {})
    }

    /// Resolves when a stop signal arrives.
    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        let mut backoff = Backoff::default();
        let mut base = FIRST_BACKOFF;
        for _ in 0..10 {
            let delay = backoff.next_delay();
            assert!(
                delay >= base && delay <= base + base / 4,
                "{delay:?} vs {base:?}"
            );
            base = (base * 2).min(MAX_BACKOFF);
        }
        assert_eq!(backoff.next, MAX_BACKOFF);
    }
}
