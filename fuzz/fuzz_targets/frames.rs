//! Frame decoding, both ways and in both codecs: whatever the bytes, decoding returns a
//! frame or an error (never a panic), and a frame that decodes encodes back to bytes that
//! decode to the same frame.
//!
//! The first byte picks what is decoded: a client frame (what a server reads from the
//! network) or a server frame (what the client library reads), as JSON or MessagePack.

#![no_main]

use im_core::protocol::{ClientFrame, Codec, ServerFrame};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T>(codec: Codec, bytes: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(frame) = codec.decode::<T>(bytes) else {
        return;
    };
    let encoded = codec
        .encode(&frame)
        .unwrap_or_else(|e| panic!("a decoded frame does not encode: {e}: {frame:?}"));
    let again: T = codec
        .decode(&encoded)
        .unwrap_or_else(|e| panic!("an encoded frame does not decode: {e}: {frame:?}"));
    assert_eq!(again, frame, "{codec:?} round trip changed the frame");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => round_trip::<ClientFrame>(Codec::Json, bytes),
        1 => round_trip::<ClientFrame>(Codec::MessagePack, bytes),
        2 => round_trip::<ServerFrame>(Codec::Json, bytes),
        _ => round_trip::<ServerFrame>(Codec::MessagePack, bytes),
    }
});
