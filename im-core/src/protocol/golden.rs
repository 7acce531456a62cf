//! Golden tests: exact bytes in, exact bytes out. A change here is a protocol change:
//! update `docs/protocol.md` with it, and think about old clients.

use super::*;
use crate::model::{
    Body, ConversationId, DeviceId, GroupId, Message, MessageId, Platform, Seq, Timestamp, UserId,
};

fn json<T: serde::Serialize>(v: &T) -> String {
    String::from_utf8(Codec::Json.encode(v).unwrap().to_vec()).unwrap()
}

fn client(s: &str) -> ClientFrame {
    Codec::Json.decode(s.as_bytes()).unwrap()
}

#[test]
fn hello_request_and_reply() {
    let raw = r#"{"id":0,"type":"hello","versions":[1],"client":"web/1.0"}"#;
    let frame = client(raw);
    assert_eq!(
        frame,
        ClientFrame {
            id: 0,
            request: Request::Hello(request::Hello {
                versions: vec![1],
                client: "web/1.0".into(),
                codec: None,
            }),
        }
    );
    assert_eq!(json(&frame), raw);
    let reply = ServerFrame::Reply {
        id: 0,
        reply: Reply::Hello(reply::Hello {
            version: 1,
            server: "im-core/0.1.0".into(),
            max_frame_bytes: 65536,
            idle_timeout_ms: 90_000,
        }),
    };
    assert_eq!(
        json(&reply),
        r#"{"type":"reply","id":0,"reply":{"type":"hello","version":1,"server":"im-core/0.1.0","max_frame_bytes":65536,"idle_timeout_ms":90000}}"#
    );
}

#[test]
fn login_request() {
    let raw = r#"{"id":2,"type":"login","username":"alice","password":"pw","device":{"id":"phone-1","name":"Alice's phone","platform":"mobile"}}"#;
    let frame = client(raw);
    match &frame.request {
        Request::Login(request::Login { device, .. }) => {
            assert_eq!(device.id, DeviceId::new("phone-1").unwrap());
            assert_eq!(device.platform, Platform::Mobile);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(json(&frame), raw);
    // Name and platform are optional.
    let short =
        client(r#"{"id":3,"type":"login","username":"a","password":"b","device":{"id":"x"}}"#);
    match short.request {
        Request::Login(request::Login { device, .. }) => {
            assert_eq!(device.platform, Platform::Other)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn send_request_and_sent_reply() {
    let raw = r#"{"id":7,"type":"send","conversation":"d:1:2","client_id":"c-1","body":{"type":"text","text":"hi"}}"#;
    let frame = client(raw);
    assert_eq!(
        frame.request,
        Request::Send(request::Send {
            conversation: ConversationId::direct(UserId(2), UserId(1)),
            client_id: "c-1".into(),
            body: Body::Text { text: "hi".into() },
            reply_to: None,
            mentions: Vec::new(),
        })
    );
    assert_eq!(json(&frame), raw);
    let ack = ServerFrame::Reply {
        id: 7,
        reply: Reply::Sent(reply::Sent {
            conversation: ConversationId::direct(UserId(1), UserId(2)),
            message_id: MessageId(42),
            seq: Seq(5),
            sent_at: Timestamp(1_700_000_000_000),
            duplicate: false,
        }),
    };
    assert_eq!(
        json(&ack),
        r#"{"type":"reply","id":7,"reply":{"type":"sent","conversation":"d:1:2","message_id":42,"seq":5,"sent_at":1700000000000,"duplicate":false}}"#
    );
}

#[test]
fn history_request_flattens_its_query() {
    let raw = r#"{"id":9,"type":"history","conversation":"g:3","after":10,"limit":50}"#;
    let frame = client(raw);
    assert_eq!(
        frame.request,
        Request::History(request::History {
            conversation: ConversationId::Group(GroupId(3)),
            query: HistoryQuery {
                after: Some(Seq(10)),
                before: None,
                limit: Some(50),
            },
        })
    );
    assert_eq!(json(&frame), raw);
}

#[test]
fn message_event() {
    let frame = ServerFrame::Event {
        event: Event::Message {
            message: Message {
                id: MessageId(42),
                conversation: ConversationId::Group(GroupId(3)),
                seq: Seq(5),
                sender: UserId(1),
                sender_device: DeviceId::new("phone-1").unwrap(),
                client_id: "c-1".into(),
                body: Body::Image {
                    url: "/files/abc".into(),
                    mime: "image/png".into(),
                    size: 1024,
                    width: Some(64),
                    height: None,
                },
                sent_at: Timestamp(1_700_000_000_000),
                edited_at: None,
                reply_to: None,
                forwarded: None,
                mentions: Vec::new(),
            },
        },
    };
    let bytes = r#"{"type":"event","event":{"type":"message","message":{"id":42,"conversation":"g:3","seq":5,"sender":1,"sender_device":"phone-1","client_id":"c-1","body":{"type":"image","url":"/files/abc","mime":"image/png","size":1024,"width":64},"sent_at":1700000000000}}}"#;
    assert_eq!(json(&frame), bytes);
    assert_eq!(
        Codec::Json.decode::<ServerFrame>(bytes.as_bytes()).unwrap(),
        frame
    );
}

#[test]
fn errors_with_and_without_an_id() {
    let frame = ServerFrame::Error {
        id: Some(4),
        error: ErrorBody::new(ErrorCode::Forbidden, "you can only message friends"),
    };
    assert_eq!(
        json(&frame),
        r#"{"type":"error","id":4,"error":{"code":"forbidden","message":"you can only message friends"}}"#
    );
    let limited = ServerFrame::Error {
        id: None,
        error: ErrorBody {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms: Some(1500),
            proof: None,
        },
    };
    assert_eq!(
        json(&limited),
        r#"{"type":"error","error":{"code":"rate_limited","message":"slow down","retry_after_ms":1500}}"#
    );
    let asked = ServerFrame::Error {
        id: Some(5),
        error: ErrorBody::proof_required(ProofKind::Invite, "enter your invite code"),
    };
    assert_eq!(
        json(&asked),
        r#"{"type":"error","id":5,"error":{"code":"proof_required","message":"enter your invite code","proof":"invite"}}"#
    );
}

#[test]
fn resync_and_kicked_events() {
    let resync = ServerFrame::Event {
        event: Event::Resync {
            reason: "session queue overflowed".into(),
        },
    };
    assert_eq!(
        json(&resync),
        r#"{"type":"event","event":{"type":"resync","reason":"session queue overflowed"}}"#
    );
    let kicked = ServerFrame::Event {
        event: Event::Kicked {
            code: KickCode::Revoked,
            reason: "this device was logged out".into(),
        },
    };
    assert_eq!(
        json(&kicked),
        r#"{"type":"event","event":{"type":"kicked","code":"revoked","reason":"this device was logged out"}}"#
    );
    // A code this version does not know (a newer server's) reads as `other`, so the
    // client still learns it was kicked.
    let newer: ServerFrame = serde_json::from_str(
        r#"{"type":"event","event":{"type":"kicked","code":"some_future_reason","reason":"later"}}"#,
    )
    .expect("an unknown kick code decodes");
    assert!(
        matches!(
            newer,
            ServerFrame::Event {
                event: Event::Kicked {
                    code: KickCode::Other,
                    ..
                }
            }
        ),
        "{newer:?}"
    );
    // Droppable events are marked so; the rest are durable.
    let typing = Event::Typing {
        conversation: ConversationId::Group(GroupId(3)),
        user: UserId(1),
        active: true,
        expires_ms: 6000,
    };
    assert_eq!(typing.class(), FrameClass::Droppable);
    assert_eq!(
        serde_json::to_string(&typing).unwrap(),
        r#"{"type":"typing","conversation":"g:3","user":1,"active":true,"expires_ms":6000}"#
    );
    let receipt = Event::Receipt {
        conversation: ConversationId::direct(UserId(1), UserId(2)),
        user: UserId(2),
        kind: ReceiptKind::Read,
        seq: Seq(7),
    };
    assert_eq!(receipt.class(), FrameClass::Durable);
}

#[test]
fn malformed_frames_are_errors_not_panics() {
    for raw in [
        "",
        "{",
        "null",
        "[]",
        r#"{"type":"ping"}"#,
        r#"{"id":-1,"type":"ping"}"#,
        r#"{"id":1}"#,
        r#"{"id":1,"type":"send","conversation":"d:1:1","client_id":"x","body":{"type":"text","text":"x"}}"#,
        r#"{"id":1,"type":"send","conversation":"g:1","client_id":"x","body":{"type":"video"}}"#,
    ] {
        assert!(
            Codec::Json.decode::<ClientFrame>(raw.as_bytes()).is_err(),
            "{raw} was accepted"
        );
    }
}

#[cfg(feature = "msgpack")]
#[test]
fn msgpack_round_trips_the_same_frames() {
    let frame = client(
        r#"{"id":7,"type":"send","conversation":"d:1:2","client_id":"c-1","body":{"type":"custom","data":{"k":[1,2]}}}"#,
    );
    let bytes = Codec::MessagePack.encode(&frame).unwrap();
    assert!(bytes.len() < json(&frame).len());
    assert_eq!(
        Codec::MessagePack.decode::<ClientFrame>(&bytes).unwrap(),
        frame
    );
}
