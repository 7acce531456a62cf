//! What ties a request to its reply: the [`Command`] trait, implemented by every request
//! struct in [`request`](super::request) from the one table there, and
//! [`CommandSchema`], the same table as documents generated from the protocol see it.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Value, json};

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
pub trait Command: Into<Request> + JsonSchema {
    /// Its `type` on the wire.
    const NAME: &'static str;
    /// The error codes it may answer with, besides those of any request (`invalid`,
    /// `unavailable`, `internal`, and `unauthorized` without a session).
    const ERRORS: &'static [ErrorCode];
    /// Whether it needs a logged-in session (all but `hello`, `ping`, `register`,
    /// `login` and `resume`).
    const NEEDS_SESSION: bool;
    /// The reply to a success.
    type Output: TryFrom<Reply, Error = Reply> + Into<Reply> + JsonSchema;
}

/// One request as a document generated from the protocol sees it (the HTTP gateway's
/// OpenAPI document, say): [`Request::COMMANDS`] lists them all.
///
/// ```
/// use im_core::protocol::{ErrorCode, Request};
///
/// let send = Request::command("send").unwrap();
/// assert!(send.needs_session && send.errors.contains(&ErrorCode::Forbidden));
/// let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
/// let fields = send.request_schema(&mut generator);
/// assert!(fields.as_value()["properties"]["client_id"].is_object());
/// let reply = send.reply_schema(&mut generator);
/// assert_eq!(reply.as_value()["$ref"], "#/$defs/SentReply");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CommandSchema {
    /// The request's `type` on the wire.
    pub name: &'static str,
    /// The `type` of the reply to a success.
    pub reply: &'static str,
    /// [`Command::ERRORS`].
    pub errors: &'static [ErrorCode],
    /// [`Command::NEEDS_SESSION`].
    pub needs_session: bool,
    request: fn(&mut SchemaGenerator) -> Schema,
    reply_ref: fn(&mut SchemaGenerator) -> Schema,
}

impl CommandSchema {
    /// The schema of command `C`, whose reply's `type` is `reply`.
    pub(crate) const fn of<C: Command>(reply: &'static str) -> CommandSchema {
        CommandSchema {
            name: C::NAME,
            reply,
            errors: C::ERRORS,
            needs_session: C::NEEDS_SESSION,
            request: C::json_schema,
            reply_ref: SchemaGenerator::subschema_for::<C::Output>,
        }
    }

    /// The request's fields, inline (without its `type`, which the envelope adds). The
    /// types its fields name are added to `generator`'s definitions.
    pub fn request_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.request)(generator)
    }

    /// A reference to the reply's schema, which is added to `generator`'s definitions
    /// with its `type` property (`{"const": <reply>}`), as it is on the wire.
    pub fn reply_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        let reference = (self.reply_ref)(generator);
        let name = reference
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .map(str::to_owned);
        let definition = name.and_then(|n| generator.definitions_mut().get_mut(&n));
        if let Some(Value::Object(definition)) = definition {
            let properties = definition.entry("properties").or_insert_with(|| json!({}));
            if let Value::Object(properties) = properties {
                properties.insert("type".into(), json!({"const": self.reply}));
            }
            let required = definition.entry("required").or_insert_with(|| json!([]));
            if let Value::Array(required) = required
                && !required.iter().any(|r| r == "type")
            {
                required.insert(0, json!("type"));
            }
        }
        reference
    }
}
