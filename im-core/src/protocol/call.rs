use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A WebRTC signalling message, relayed between the devices of a call and never stored.
///
/// The engine does not read SDP or candidates; it checks who may call whom, routes the
/// signal to one device or all of a user's devices, and tells the callee's other devices
/// when one of them answered or declined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Signal {
    /// The caller's session description; usually sent to all the callee's devices.
    Offer {
        /// SDP.
        sdp: String,
        /// Whether the call has video.
        #[serde(default)]
        video: bool,
    },
    /// A callee device is ringing (sent back to the caller's device).
    Ringing,
    /// The callee's session description, sent to the caller's device. The callee's
    /// other devices get `call_handled`.
    Answer {
        /// SDP.
        sdp: String,
    },
    /// An ICE candidate, either way.
    Candidate {
        /// The candidate line.
        candidate: String,
        /// Its media stream id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        /// Its media line index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u32>,
    },
    /// The call ends (or is declined, or cancelled before an answer). The sender's other
    /// devices get `call_handled`.
    Hangup {
        /// Why, for the other side ("declined", "busy", "ended").
        #[serde(default)]
        reason: String,
    },
}

impl Signal {
    /// Whether this signal settles the call for the sender's other devices (they stop
    /// ringing): an answer or a hang-up.
    pub fn settles_call(&self) -> bool {
        matches!(self, Signal::Answer { .. } | Signal::Hangup { .. })
    }
}
