//! Encode and decode of the frames that dominate the wire, with JSON and MessagePack.
//!
//! Every request a connection sends is decoded once, and every push is encoded once per
//! codec in use and then shared by all its recipients, so the codec sits on the path of
//! every message: a `send` request (100-byte text), the `message` event pushed to the
//! recipients, the `sent` reply to the sender, and a `history` page of 50 messages (what
//! a reconnecting client asks for). Throughput is in bytes of the encoded frame.
//!
//! Run with `cargo bench -p im-core --bench codec`.

use im_core::protocol::reply;
use im_core::protocol::request;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use im_core::client::new_client_id;
use im_core::model::{
    Body, ConversationId, DeviceId, GroupId, Message, MessageId, Seq, Timestamp, UserId,
};
use im_core::protocol::{ClientFrame, Codec, Event, Reply, Request, ServerFrame};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A 100-byte text body.
fn text() -> Body {
    let text: String = "The quick brown fox jumps over the lazy dog. "
        .chars()
        .cycle()
        .take(100)
        .collect();
    assert_eq!(text.len(), 100);
    Body::Text { text }
}

/// A stored group message as the engine pushes it.
fn message(seq: u64) -> Message {
    Message {
        id: MessageId(1_000_000 + seq),
        conversation: ConversationId::Group(GroupId(42)),
        seq: Seq(seq),
        sender: UserId(1_234),
        sender_device: DeviceId::new("phone-1").expect("a valid device id"),
        client_id: new_client_id(),
        body: text(),
        sent_at: Timestamp(1_764_000_000_000 + seq as i64),
        edited_at: None,
        reply_to: None,
        forwarded: None,
        mentions: Vec::new(),
    }
}

/// Benchmarks encode and decode of `frame` as `T`, in both codecs, in group `name`.
fn frame<T>(c: &mut Criterion, name: &str, frame: &T)
where
    T: Serialize + DeserializeOwned,
{
    let mut group = c.benchmark_group(format!("codec/{name}"));
    for codec in [Codec::Json, Codec::MessagePack] {
        let label = match codec {
            Codec::Json => "json",
            Codec::MessagePack => "msgpack",
        };
        let bytes = codec.encode(frame).expect("the frame encodes");
        codec.decode::<T>(&bytes).expect("the frame decodes back");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", label), frame, |b, frame| {
            b.iter(|| codec.encode(black_box(frame)).expect("the frame encodes"));
        });
        group.bench_with_input(BenchmarkId::new("decode", label), &bytes, |b, bytes| {
            b.iter(|| {
                codec
                    .decode::<T>(black_box(bytes))
                    .expect("the frame decodes")
            });
        });
    }
    group.finish();
}

fn codec(c: &mut Criterion) {
    let conversation = ConversationId::Group(GroupId(42));

    let send = ClientFrame {
        id: 17,
        request: Request::Send(request::Send {
            conversation,
            client_id: new_client_id(),
            body: text(),
            reply_to: None,
            mentions: Vec::new(),
        }),
    };
    frame(c, "send_request", &send);

    let push = ServerFrame::Event {
        event: Event::Message {
            message: message(7),
        },
    };
    frame(c, "message_push", &push);

    let sent = ServerFrame::Reply {
        id: 17,
        reply: Reply::Sent(reply::Sent {
            conversation,
            message_id: MessageId(1_000_007),
            seq: Seq(7),
            sent_at: Timestamp(1_764_000_000_007),
            duplicate: false,
        }),
    };
    frame(c, "sent_reply", &sent);

    let history = ServerFrame::Reply {
        id: 18,
        reply: Reply::History(reply::History {
            messages: (1..=50).map(message).collect(),
            more: true,
            reactions: Vec::new(),
        }),
    };
    frame(c, "history_reply_50", &history);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = codec
}
criterion_main!(benches);
