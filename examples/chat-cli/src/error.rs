//! What a command can fail with: a wire-style error code plus a message for people.
//!
//! Scripts branch on the exit status (2 means "log in again") and on the code in
//! `error: <code>: <message>`; the message may change between versions.

use std::fmt;

use im_core::client::ClientError;
use im_core::protocol::ErrorCode;

/// A failed command.
#[derive(Debug)]
pub(crate) struct CliError {
    /// The server's error code (`unauthorized`, `not_found`...), or one of ours for
    /// failures that never reached a server: `unavailable` (cannot connect, connection
    /// lost), `invalid` (a bad argument), `io` (the state file or a terminal stream).
    pub(crate) code: String,
    /// What happened, for a human.
    pub(crate) message: String,
}

/// The exit status of a command refused as `unauthorized`: the token is gone or the
/// password was wrong, so a script should log in again.
pub(crate) const EXIT_UNAUTHORIZED: u8 = 2;
/// The exit status of every other failure.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// The exit status of a command line clap could not parse (sysexits' `EX_USAGE`). Not
/// clap's own 2, which would read as "unauthorized".
pub(crate) const EXIT_USAGE: u8 = 64;

impl CliError {
    pub(crate) fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        CliError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A bad argument.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        CliError::new(ErrorCode::Invalid.as_str(), message)
    }

    /// No saved session, or the server refused the token or password.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        CliError::new(ErrorCode::Unauthorized.as_str(), message)
    }

    /// The server could not be reached, or the connection was lost.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        CliError::new(ErrorCode::Unavailable.as_str(), message)
    }

    pub(crate) fn is_unauthorized(&self) -> bool {
        self.code == ErrorCode::Unauthorized.as_str()
    }

    /// The process exit status for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.is_unauthorized() {
            EXIT_UNAUTHORIZED
        } else {
            EXIT_FAILURE
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Server(body) => CliError::new(body.code.as_str(), body.message),
            ClientError::Closed => CliError::unavailable("the connection to the server closed"),
            ClientError::Timeout => CliError::unavailable("the server did not answer in time"),
            other => CliError::new(ErrorCode::Internal.as_str(), other.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new("io", e.to_string())
    }
}
