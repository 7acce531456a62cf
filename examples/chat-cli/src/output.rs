//! What goes to stdout: one line per reply, message or event, as text for people or,
//! with `--json`, as one JSON object per line for scripts.
//!
//! Messages print the same everywhere (`history`, `sync`, `listen`):
//!
//! ```text
//! [d:1:2 #3] bob: hello
//! {"type":"message","message":{…the protocol's message…},"sender_username":"bob"}
//! ```
//!
//! Events print as the protocol's event object, plus `username` when the event is about
//! a user.

use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};

use im_core::model::{Body, Message, Role, SystemEvent};
use im_core::protocol::{Event, ReceiptKind};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::CliError;
use crate::names::{self, Names};

/// Prints to stdout in the chosen format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    /// One JSON object per line instead of text.
    pub(crate) json: bool,
}

impl Out {
    /// Prints `text` in text mode or `json` in JSON mode; each is built only if used.
    pub(crate) fn emit(
        &self,
        text: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
    ) -> Result<(), CliError> {
        if self.json {
            self.line(&json().to_string())
        } else {
            self.line(&text())
        }
    }

    /// Prints one line and flushes it, so a reader of a pipe sees it at once. Control
    /// characters are shown as `\u001b` escapes: text from other users must not move
    /// the cursor, set the terminal's clipboard, or start a line of its own.
    pub(crate) fn line(&self, line: &str) -> Result<(), CliError> {
        let line = printable(line);
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            Ok(()) => Ok(()),
            // The reader went away (`chat-cli history @bob | head -1`): nothing more
            // can be shown, and that is not a failure of the command.
            Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
            Err(e) => Err(CliError::new("io", format!("writing to stdout: {e}"))),
        }
    }

    /// Prints a message (its names resolved beforehand).
    pub(crate) fn message(&self, message: &Message, names: &Names) -> Result<(), CliError> {
        self.emit(
            || message_line(message, names),
            || {
                json!({
                    "type": "message",
                    "message": message,
                    "sender_username": names.get(message.sender),
                })
            },
        )
    }

    /// Prints an event (its names resolved beforehand).
    pub(crate) fn event(&self, event: &Event, names: &Names) -> Result<(), CliError> {
        if let Event::Message { message } = event {
            return self.message(message, names);
        }
        self.emit(
            || event_line(event, names),
            || {
                let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
                let username = names::in_event(event).and_then(|id| names.get(id));
                if let (Value::Object(map), Some(username)) = (&mut value, username) {
                    map.insert("username".to_owned(), username.into());
                }
                value
            },
        )
    }
}

/// `line` with every control character but tab (the column separator) written as a
/// `\uXXXX` escape (also valid inside a JSON string, where serde_json leaves DEL and
/// the C1 controls raw).
fn printable(line: &str) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && c != '\t';
    if !line.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if escaped(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `[d:1:2 #3] bob: hello`, `[d:1:2 #4] alice (re #3): hi`, or
/// `[g:4 #1] * alice created the group "x" with alice, bob`.
pub(crate) fn message_line(message: &Message, names: &Names) -> String {
    let mut line = format!("[{} #{}] ", message.conversation, message.seq);
    match &message.body {
        Body::System { event } => {
            let _ = write!(line, "* {}", system_text(event, names));
        }
        body => {
            let _ = write!(line, "{}", names.name(message.sender));
            if let Some(quoted) = message.reply_to {
                let _ = write!(line, " (re #{quoted})");
            }
            if let Some(origin) = message.forwarded {
                let _ = write!(line, " (forwarded from {})", names.name(origin.sender));
            }
            let _ = write!(line, ": {}", body_text(body, names));
        }
    }
    if message.edited_at.is_some() {
        line.push_str(" (edited)");
    }
    line
}

/// A body in one line of text.
fn body_text(body: &Body, names: &Names) -> String {
    match body {
        Body::Text { text } => text.clone(),
        Body::Image {
            url,
            mime,
            width,
            height,
            ..
        } => match (width, height) {
            (Some(w), Some(h)) => format!("[image {mime} {w}x{h}] {url}"),
            _ => format!("[image {mime}] {url}"),
        },
        Body::File {
            url, name, size, ..
        } => format!("[file \"{name}\", {size} bytes] {url}"),
        Body::Custom { data } => format!("[custom] {data}"),
        Body::System { event } => format!("* {}", system_text(event, names)),
    }
}

/// A change to a conversation, in words.
fn system_text(event: &SystemEvent, names: &Names) -> String {
    let list = |ids: &[im_core::model::UserId]| {
        ids.iter()
            .map(|id| names.name(*id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match event {
        SystemEvent::GroupCreated { by, name, members } => format!(
            "{} created the group \"{name}\" with {}",
            names.name(*by),
            list(members)
        ),
        SystemEvent::MembersAdded { by, users } => {
            format!("{} added {}", names.name(*by), list(users))
        }
        SystemEvent::MemberJoined { user } => format!("{} joined", names.name(*user)),
        SystemEvent::MemberLeft { user } => format!("{} left", names.name(*user)),
        SystemEvent::MemberKicked { by, user } => {
            format!("{} removed {}", names.name(*by), names.name(*user))
        }
        SystemEvent::Renamed { by, name } => {
            format!("{} renamed the group to \"{name}\"", names.name(*by))
        }
        SystemEvent::RoleChanged { by, user, role } => {
            let role = match role {
                Role::Owner => "the owner",
                Role::Admin => "an admin",
                Role::Member => "a plain member",
            };
            format!("{} made {} {role}", names.name(*by), names.name(*user))
        }
        SystemEvent::OwnerChanged { from, to } => {
            format!(
                "{} handed the group to {}",
                names.name(*from),
                names.name(*to)
            )
        }
        SystemEvent::MessageRecalled { seq, by } => {
            format!("{} recalled #{seq}", names.name(*by))
        }
        SystemEvent::MessageEdited { seq, body } => {
            format!("#{seq} edited: {}", body_text(body, names))
        }
    }
}

/// An event other than a message, compactly.
fn event_line(event: &Event, names: &Names) -> String {
    match event {
        Event::Message { message } => message_line(message, names),
        Event::FriendRequest { request } if request.note.is_empty() => {
            format!("* friend request from {}", names.name(request.from))
        }
        Event::FriendRequest { request } => format!(
            "* friend request from {}: {:?}",
            names.name(request.from),
            request.note
        ),
        Event::FriendAdded { user } => {
            format!("* you and {} are now friends", names.name(*user))
        }
        Event::FriendRequestDeclined { user } => format!(
            "* the friend request between you and {} was declined",
            names.name(*user)
        ),
        Event::FriendRemoved { user } => {
            format!("* you and {} are no longer friends", names.name(*user))
        }
        Event::Blocked { user } => format!("* you blocked {}", names.name(*user)),
        Event::Unblocked { user } => format!("* you unblocked {}", names.name(*user)),
        Event::Resync { reason } => format!("* resync: {reason}"),
        Event::Kicked { code, reason } => format!("* kicked ({}): {reason}", wire_name(code)),
        Event::Receipt {
            conversation,
            user,
            kind,
            seq,
        } => {
            let what = match kind {
                ReceiptKind::Delivered => "received",
                ReceiptKind::Read => "read",
            };
            format!(
                "* [{conversation}] {} has {what} up to #{seq}",
                names.name(*user)
            )
        }
        Event::Typing {
            conversation,
            user,
            active,
            ..
        } => {
            let what = if *active {
                "is typing"
            } else {
                "stopped typing"
            };
            format!("* [{conversation}] {} {what}", names.name(*user))
        }
        Event::Presence { user, online, .. } => {
            let what = if *online { "is online" } else { "went offline" };
            format!("* {} {what}", names.name(*user))
        }
        Event::Signal {
            from,
            call_id,
            signal,
            ..
        } => format!(
            "* call {call_id}: {} from {}",
            wire_name(signal),
            names.name(*from)
        ),
        Event::CallHandled {
            call_id,
            device,
            answered,
        } => {
            let what = if *answered { "answered" } else { "declined" };
            format!("* call {call_id} {what} on your device {device}")
        }
        Event::MessageHidden { conversation, seq } => {
            format!("* [{conversation} #{seq}] hidden")
        }
        Event::Pinned {
            conversation,
            seq,
            by,
            pinned,
        } => {
            let what = if *pinned { "pinned" } else { "unpinned" };
            format!("* [{conversation} #{seq}] {what} by {}", names.name(*by))
        }
        Event::Reaction {
            conversation,
            seq,
            user,
            emoji,
            ..
        } => match emoji {
            Some(emoji) => format!(
                "* [{conversation} #{seq}] {} reacted {emoji}",
                names.name(*user)
            ),
            None => format!(
                "* [{conversation} #{seq}] {} took their reaction back",
                names.name(*user)
            ),
        },
        other => format!("* {}", wire_name(other)),
    }
}

/// How a value is named on the wire: a string enum's value, or a tagged enum's `type`.
fn wire_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        Ok(Value::Object(map)) => match map.get("type") {
            Some(Value::String(name)) => name.clone(),
            _ => "event".to_owned(),
        },
        _ => "event".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use im_core::model::{ConversationId, DeviceId, MessageId, Seq, Timestamp, UserId};
    use im_core::protocol::KickCode;

    use super::*;

    fn text_message(text: &str) -> Message {
        Message {
            id: MessageId(9),
            conversation: ConversationId::direct(UserId(1), UserId(2)),
            seq: Seq(3),
            sender: UserId(2),
            sender_device: DeviceId::new("phone").unwrap(),
            client_id: "c1".to_owned(),
            body: Body::Text {
                text: text.to_owned(),
            },
            sent_at: Timestamp(1_700_000_000_000),
            edited_at: None,
            reply_to: None,
            forwarded: None,
            mentions: Vec::new(),
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain text"), "plain text");
        assert_eq!(
            printable("a\u{1b}]52;c;aGk=\u{7}b\nc\u{9b}"),
            "a\\u001b]52;c;aGk=\\u0007b\\u000ac\\u009b"
        );
        let json = serde_json::json!({"text": "x\u{9b}y"}).to_string();
        let shown = printable(&json);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&shown).unwrap()["text"],
            "x\u{9b}y"
        );
    }

    #[test]
    fn messages_and_events_read_well() {
        let names = Names::default();
        assert_eq!(
            message_line(&text_message("hi"), &names),
            "[d:1:2 #3] user:2: hi"
        );
        let reply = Message {
            reply_to: Some(im_core::model::Seq(1)),
            ..text_message("hi back")
        };
        assert_eq!(
            message_line(&reply, &names),
            "[d:1:2 #3] user:2 (re #1): hi back"
        );
        let kicked = Event::Kicked {
            code: KickCode::Replaced,
            reason: "again".to_owned(),
        };
        assert_eq!(event_line(&kicked, &names), "* kicked (replaced): again");
        let created = SystemEvent::GroupCreated {
            by: UserId(1),
            name: "x".to_owned(),
            members: vec![UserId(1), UserId(2)],
        };
        assert_eq!(
            system_text(&created, &names),
            "user:1 created the group \"x\" with user:1, user:2"
        );
    }
}
