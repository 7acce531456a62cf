//! `send`, `history`, `sync`, and how `<to>` names a conversation.

use std::time::Duration;

use im_core::client::{Client, ClientError, Sent, new_client_id};
use im_core::model::{Body, ConversationId, GroupId, Message, Seq, UserId};
use im_core::protocol::{ErrorCode, HistoryQuery};
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

use crate::context::Context;
use crate::error::CliError;
use crate::names::{self, Names, find_user};
use crate::output::Out;

/// How often one message is retried when the server says `rate_limited`.
const RATE_LIMIT_RETRIES: u32 = 20;

/// The conversation `to` names: `@username` (the direct chat, `d:<lo>:<hi>`), `#<group
/// id>`, or a conversation id as the protocol writes it (`d:1:2`, `g:3`).
pub(crate) async fn conversation(
    client: &Client,
    me: UserId,
    to: &str,
) -> Result<ConversationId, CliError> {
    if let Some(username) = to.strip_prefix('@') {
        let user = find_user(client, username).await?;
        if user.id == me {
            return Err(CliError::invalid(format!(
                "{to} is you; a direct chat needs another user"
            )));
        }
        Ok(ConversationId::direct(me, user.id))
    } else if let Some(id) = to.strip_prefix('#') {
        let id = id
            .parse::<u64>()
            .map_err(|_| CliError::invalid(format!("{to}: expected #<group id>, like #3")))?;
        Ok(ConversationId::Group(GroupId(id)))
    } else {
        to.parse().map_err(|_| {
            CliError::invalid(format!(
                "{to:?}: expected @username, #<group id> or a conversation id (d:1:2, g:3)"
            ))
        })
    }
}

/// `send <to> <text>`, or `send <to> -` for each line of stdin.
pub(crate) async fn send(cx: &Context, to: &str, text: &str) -> Result<(), CliError> {
    let session = cx.session().await?;
    let conversation = conversation(&session.client, session.me.id, to).await?;
    if text != "-" {
        let sent = send_text(&session.client, conversation, text).await?;
        return print_sent(cx.out, &sent);
    }
    // One at a time, each acknowledged before the next: the order of the lines is the
    // order of the seqs, and a failure stops at the first line not sent.
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut count = 0usize;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| CliError::new("io", format!("reading stdin: {e}")))?
    {
        if line.trim().is_empty() {
            continue;
        }
        let sent = send_text(&session.client, conversation, &line).await?;
        print_sent(cx.out, &sent)?;
        count += 1;
    }
    if count == 0 && !cx.out.json {
        eprintln!("(stdin had no lines to send)");
    }
    Ok(())
}

/// Sends one text, waiting out `rate_limited` answers. Every attempt carries the same
/// client id, so a retry can never store the message twice.
async fn send_text(
    client: &Client,
    conversation: ConversationId,
    text: &str,
) -> Result<Sent, CliError> {
    let client_id = new_client_id();
    let body = Body::Text {
        text: text.to_owned(),
    };
    let mut attempt = 0;
    loop {
        match client.send(conversation, &client_id, body.clone()).await {
            Err(ClientError::Server(e))
                if e.code == ErrorCode::RateLimited && attempt < RATE_LIMIT_RETRIES =>
            {
                attempt += 1;
                let wait = e.retry_after_ms.unwrap_or(1000).clamp(50, 10_000);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            result => return Ok(result?),
        }
    }
}

fn print_sent(out: Out, sent: &Sent) -> Result<(), CliError> {
    out.emit(
        || {
            let again = if sent.duplicate {
                " (already sent)"
            } else {
                ""
            };
            format!("sent {} #{}{again}", sent.conversation, sent.seq)
        },
        || {
            // `Sent` has no `Serialize`; these are the fields of the protocol's `sent`.
            json!({
                "type": "sent",
                "conversation": sent.conversation,
                "message_id": sent.message_id,
                "seq": sent.seq,
                "sent_at": sent.sent_at,
                "duplicate": sent.duplicate,
            })
        },
    )
}

/// `history <to> [--limit N] [--before SEQ]`: the newest page, oldest first.
pub(crate) async fn history(
    cx: &Context,
    to: &str,
    limit: u32,
    before: Option<u64>,
) -> Result<(), CliError> {
    let session = cx.session().await?;
    let conversation = conversation(&session.client, session.me.id, to).await?;
    let query = HistoryQuery {
        after: None,
        before: before.map(Seq),
        limit: Some(limit.max(1)),
    };
    let (messages, more) = session.client.history(conversation, query).await?;
    print_messages(cx.out, &session.client, &messages).await?;
    if !cx.out.json {
        match messages.first() {
            Some(first) if more => eprintln!("(older messages: --before {})", first.seq),
            None => eprintln!("(no messages)"),
            _ => {}
        }
    }
    Ok(())
}

/// `sync`: every message after the saved cursors, then the cursors moved past them.
pub(crate) async fn sync(cx: &Context) -> Result<(), CliError> {
    let session = cx.session().await?;
    let mut seen = session.state.seen_map();
    let messages = session.client.sync(&mut seen).await?;
    print_messages(cx.out, &session.client, &messages).await?;
    // Only the cursors change, on the file as it is now (a `login` may have run
    // meanwhile, for someone else even).
    let mut state = cx.load()?.unwrap_or(session.state);
    if state.user_id == session.me.id {
        state.seen.extend(seen);
        cx.save(&state)?;
    }
    if messages.is_empty() && !cx.out.json {
        eprintln!("(no new messages)");
    }
    Ok(())
}

/// Prints messages with their senders' names.
pub(crate) async fn print_messages(
    out: Out,
    client: &Client,
    messages: &[Message],
) -> Result<(), CliError> {
    let mut names = Names::default();
    names
        .resolve(client, messages.iter().flat_map(names::in_message))
        .await?;
    for message in messages {
        out.message(message, &names)?;
    }
    Ok(())
}
