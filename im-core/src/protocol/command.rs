//! What ties a request to its reply: the [`Command`] trait, implemented by every request
//! struct in [`request`](super::request) from the one table there.

use super::{ErrorCode, Reply, Request};

/// A request type: its name on the wire, the reply a success gets, and the error codes
/// it may answer with. [`Client::call`](crate::client::Client::call) sends any command
/// and returns its typed output.
///
/// ```
/// use im_core::protocol::{Command, request, reply};
///
/// fn output_of<C: Command>(_: &C) -> &'static str { C::NAME }
/// assert_eq!(output_of(&request::Friends {}), "friends");
/// let _: Option<reply::Friends> = None::<<request::Friends as Command>::Output>;
/// ```
pub trait Command: Into<Request> {
    /// Its `type` on the wire.
    const NAME: &'static str;
    /// The error codes it may answer with, besides those of any request (`invalid`,
    /// `unavailable`, `internal`, and `unauthorized` without a session).
    const ERRORS: &'static [ErrorCode];
    /// The reply to a success.
    type Output: TryFrom<Reply, Error = Reply> + Into<Reply>;
}
