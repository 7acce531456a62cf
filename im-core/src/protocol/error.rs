use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Stable, machine-readable error codes. Clients branch on these; the message is for
/// humans and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not logged in, a wrong password, or a token that is unknown, revoked or expired.
    Unauthorized,
    /// Logged in, but not allowed to do this (not a member, not a friend, blocked,
    /// not an admin).
    Forbidden,
    /// The thing named does not exist (or is not visible to this user).
    NotFound,
    /// The request clashes with the current state (username taken, already friends).
    Conflict,
    /// The request is malformed or a value is out of range.
    Invalid,
    /// Too many requests; retry after `retry_after_ms`.
    RateLimited,
    /// A frame, message or upload over the size limit.
    TooLarge,
    /// A backend is down or overloaded; retrying later may succeed.
    Unavailable,
    /// The client asked for no protocol version this server speaks.
    UnsupportedVersion,
    /// The user already has as many sessions as the device policy allows (policy
    /// "refuse new"); log out elsewhere first.
    DeviceLimit,
    /// A bug on the server. Details are in the server's log, never on the wire.
    Internal,
    /// The server wants a proof with this registration or login (a code sent by e-mail
    /// or SMS, a captcha, an invite, a second factor); `message` says which. Send the
    /// request again with `proof` (and, for a code, `contact`).
    ProofRequired,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Invalid => "invalid",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::DeviceLimit => "device_limit",
            ErrorCode::Internal => "internal",
            ErrorCode::ProofRequired => "proof_required",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as sent to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorBody {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What happened, for a human.
    pub message: String,
    /// For `rate_limited` and `unavailable`: when a retry may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// For `proof_required`, when the server says: which proof would help, so that a
    /// client asks for the right thing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<ProofKind>,
}

/// The proof a `proof_required` error asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProofKind {
    /// A code sent to an e-mail address or a phone: ask for the address, `send_code`,
    /// then send the code as `proof` and the address as `contact`.
    Code,
    /// An invite code the user was given: send it as `proof`.
    Invite,
    /// A captcha's answer token: send it as `proof`.
    Captcha,
    /// A second factor at login (an authenticator's code): send it as `proof`.
    SecondFactor,
    /// Anything else, including a kind this version does not know: the message says.
    #[serde(other)]
    Other,
}

impl ErrorBody {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            retry_after_ms: None,
            proof: None,
        }
    }

    /// A `proof_required` error asking for this kind of proof.
    pub fn proof_required(kind: ProofKind, message: impl Into<String>) -> Self {
        ErrorBody {
            proof: Some(kind),
            ..ErrorBody::new(ErrorCode::ProofRequired, message)
        }
    }
}
