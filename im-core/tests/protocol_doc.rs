//! Every example frame in docs/protocol.md decodes, and re-encodes to the same JSON (so a
//! misspelt or missing field in the docs fails here). Every request, reply and event type
//! has an example.

use std::collections::BTreeSet;

use im_core::protocol::{ClientFrame, Event, Reply, Request, ServerFrame};

const DOC: &str = include_str!("../../docs/protocol.md");

fn blocks(kind: &str) -> Vec<&'static str> {
    let fence = format!("```json {kind}\n");
    DOC.split(fence.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or("").trim())
        .collect()
}

fn round_trips<T: serde::Serialize + serde::de::DeserializeOwned>(raw: &str) -> T {
    let frame: T = serde_json::from_str(raw)
        .unwrap_or_else(|e| panic!("docs/protocol.md example does not decode ({e}):\n{raw}"));
    let again = serde_json::to_value(&frame).unwrap();
    let original: serde_json::Value = serde_json::from_str(raw).unwrap();
    assert_eq!(again, original, "example does not round-trip:\n{raw}");
    frame
}

/// The `type` field of an example, as written in the document.
fn type_of(raw: &str, path: &[&str]) -> String {
    let mut value: serde_json::Value = serde_json::from_str(raw).unwrap();
    for key in path {
        value = value[*key].take();
    }
    value["type"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn every_client_example_decodes_and_round_trips() {
    let mut documented = BTreeSet::new();
    for raw in blocks("client") {
        let frame: ClientFrame = round_trips(raw);
        let name = frame.request.name();
        // The wire name (serde's snake_case of the variant) is the one in the table
        // that routes, metrics and the OpenAPI document use.
        assert_eq!(name, type_of(raw, &[]), "{raw}");
        documented.insert(name);
    }
    let missing: Vec<_> = Request::NAMES
        .iter()
        .filter(|n| !documented.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "requests without an example: {missing:?}"
    );
}

#[test]
fn every_server_example_decodes_and_round_trips() {
    let mut events = BTreeSet::new();
    let mut replies = BTreeSet::new();
    let examples = blocks("server");
    assert!(examples.len() > 20);
    for raw in examples {
        match round_trips::<ServerFrame>(raw) {
            ServerFrame::Event { event } => {
                events.insert(match event {
                    Event::Message { .. } => "message",
                    Event::FriendRequest { .. } => "friend_request",
                    Event::FriendAdded { .. } => "friend_added",
                    Event::FriendRequestDeclined { .. } => "friend_request_declined",
                    Event::FriendRemoved { .. } => "friend_removed",
                    Event::Blocked { .. } => "blocked",
                    Event::Unblocked { .. } => "unblocked",
                    Event::Resync { .. } => "resync",
                    Event::Kicked { .. } => "kicked",
                    Event::Receipt { .. } => "receipt",
                    Event::Typing { .. } => "typing",
                    Event::Presence { .. } => "presence",
                    Event::Signal { .. } => "signal",
                    Event::CallHandled { .. } => "call_handled",
                    Event::MessageHidden { .. } => "message_hidden",
                    Event::Reaction { .. } => "reaction",
                    Event::Pinned { .. } => "pinned",
                    Event::UserUpdated { .. } => "user_updated",
                    _ => "new event: add it to this test",
                });
            }
            ServerFrame::Reply { reply, .. } => {
                assert_eq!(reply.name(), type_of(raw, &["reply"]), "{raw}");
                replies.insert(reply.name());
            }
            ServerFrame::Error { .. } => {}
        }
    }
    let all_events = [
        "message",
        "friend_request",
        "friend_added",
        "friend_request_declined",
        "friend_removed",
        "blocked",
        "unblocked",
        "resync",
        "kicked",
        "receipt",
        "typing",
        "presence",
        "signal",
        "call_handled",
        "message_hidden",
        "reaction",
        "pinned",
        "user_updated",
    ];
    let missing: Vec<_> = all_events.iter().filter(|n| !events.contains(*n)).collect();
    assert!(missing.is_empty(), "events without an example: {missing:?}");
    assert_eq!(
        events.len(),
        all_events.len(),
        "events with an example: {events:?}"
    );
    let missing: Vec<_> = Reply::NAMES
        .iter()
        .filter(|n| !replies.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "replies without an example: {missing:?}"
    );
}
