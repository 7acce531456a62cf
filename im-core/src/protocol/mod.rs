//! The wire protocol: what clients send ([`ClientFrame`]) and what the server sends back
//! ([`ServerFrame`]), independent of the transport that carries the bytes.
//!
//! Every transport carries the same frames; `docs/protocol.md` shows each with a JSON
//! example, and golden tests below pin their exact bytes.
//!
//! A connection starts with [`Request::Hello`], which names the protocol versions the
//! client speaks (and optionally the codec it wants); the server answers with the version
//! it picked or `unsupported_version`. Requests carry a client-chosen `id` that the reply
//! or error repeats, so a client may have many requests in flight. Events (new messages,
//! contact changes, resync and kick notices) arrive unprompted.

mod call;
mod codec;
mod command;
mod error;
mod event;
pub mod reply;
pub mod request;

pub use call::Signal;
pub use codec::{Codec, CodecError};
pub use command::{Command, CommandSchema};
pub use error::{ErrorBody, ErrorCode, ProofKind};
pub use event::{Event, FrameClass, KickCode, ReceiptKind};
pub use reply::{ConversationSummary, PresenceStatus, ReactionSummary, Receipt, Reply};
pub use request::{DeviceInfo, HistoryQuery, Request};

use serde::{Deserialize, Serialize};

/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The protocol versions this build can speak, oldest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// A request from a client: a correlation id plus the command.
///
/// ```
/// use im_core::protocol::{ClientFrame, Request, request};
/// let frame: ClientFrame = serde_json::from_str(r#"{"id":7,"type":"ping"}"#).unwrap();
/// assert_eq!(frame, ClientFrame { id: 7, request: Request::Ping(request::Ping {}) });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Chosen by the client; repeated in the reply. Ids need not be unique across a
    /// connection's life, only among the requests in flight.
    pub id: u64,
    /// The command.
    #[serde(flatten)]
    pub request: Request,
}

/// Anything the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The successful answer to request `id`.
    Reply {
        /// The request's id.
        id: u64,
        /// The answer.
        reply: Reply,
    },
    /// The failed answer to request `id`, or a connection-level error when `id` is
    /// absent (a frame that could not be parsed far enough to find its id).
    Error {
        /// The request's id, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// What went wrong.
        error: ErrorBody,
    },
    /// Something happened that this session should know about.
    Event {
        /// What happened.
        event: Event,
    },
}

impl ServerFrame {
    /// How the fan-out may treat this frame under backpressure.
    pub fn class(&self) -> FrameClass {
        match self {
            ServerFrame::Event { event } => event.class(),
            _ => FrameClass::Durable,
        }
    }
}

#[cfg(test)]
mod golden;
