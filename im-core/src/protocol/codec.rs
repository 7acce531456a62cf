use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// How frames become bytes.
///
/// JSON is the default and what every client speaks. MessagePack frames are 10–30 %
/// smaller (measured by `cargo bench -p im-core --bench codec`), though not faster to
/// decode with the serde codecs used here; it needs the `msgpack` feature, and a client
/// asks for it in its `hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// UTF-8 JSON, one frame per transport message.
    #[default]
    Json,
    /// MessagePack with named fields (the same shape as the JSON).
    #[serde(rename = "msgpack")]
    MessagePack,
}

/// A frame that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a valid frame; the text says where and why.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// This build was compiled without the codec.
    #[error("codec {0:?} is not compiled into this build")]
    Unsupported(Codec),
}

impl Codec {
    /// Whether this build can use the codec.
    pub fn is_available(self) -> bool {
        match self {
            Codec::Json => true,
            Codec::MessagePack => cfg!(feature = "msgpack"),
        }
    }

    /// Encodes a frame.
    pub fn encode<T: Serialize>(self, value: &T) -> Result<Bytes, CodecError> {
        match self {
            Codec::Json => serde_json::to_vec(value)
                .map(Bytes::from)
                .map_err(|e| CodecError::Malformed(e.to_string())),
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => rmp_serde::to_vec_named(value)
                .map(Bytes::from)
                .map_err(|e| CodecError::Malformed(e.to_string())),
            #[cfg(not(feature = "msgpack"))]
            Codec::MessagePack => Err(CodecError::Unsupported(self)),
        }
    }

    /// Decodes a frame.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Codec::Json => {
                serde_json::from_slice(bytes).map_err(|e| CodecError::Malformed(e.to_string()))
            }
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => {
                rmp_serde::from_slice(bytes).map_err(|e| CodecError::Malformed(e.to_string()))
            }
            #[cfg(not(feature = "msgpack"))]
            Codec::MessagePack => Err(CodecError::Unsupported(self)),
        }
    }
}
