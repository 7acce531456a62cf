//! The OpenAPI 3.1 document of the HTTP API, generated from the route table
//! ([`ROUTES`]) and the protocol's types, and served at
//! `/openapi.json`.
//!
//! A command route's operation is its protocol request ([`Request::command`]): the
//! request's fields that are not path or query parameters are the body, the reply's
//! schema is the success, and the request's documented error codes
//! ([`Command::ERRORS`](im_core::protocol::Command::ERRORS)) are the error responses,
//! each under the status [`status_of`] gives it. Nothing here restates a field, a limit
//! or an error of the protocol, so the document cannot drift from what the server does.
//! `im-transport-ws/openapi.json` is the same document, committed for code generators;
//! a test fails when it differs (`IM_BLESS=1` rewrites it).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use im_core::protocol::{CommandSchema, ErrorBody, ErrorCode, Request, reply};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::attachments::Uploaded;
use crate::http::{makes_client_id, status_of};
use crate::routes::{Handler, Param, ROUTES, Route};

/// The document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
});

/// The document as served at `/openapi.json` (pretty-printed JSON, built on first use).
pub fn json() -> &'static str {
    &DOCUMENT
}

/// Builds the document from [`ROUTES`] and the protocol's types.
///
/// ```
/// let doc = im_transport_ws::openapi::document();
/// let send = &doc["paths"]["/v1/conversations/{conversation}/messages"]["post"];
/// assert_eq!(send["operationId"], "send");
/// assert!(send["responses"]["403"]["description"].as_str().unwrap().contains("forbidden"));
/// ```
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let error = generator.subschema_for::<ErrorBody>();
    let codes = error_code_descriptions(&mut generator);
    let mut paths = Map::new();
    for route in ROUTES {
        let mut operation = match route.handler {
            Handler::Command(name) | Handler::Direct(name) => match Request::command(name) {
                Some(command) => command_operation(route, command, &mut generator),
                // Unreachable: route names are `request::X::NAME` constants.
                None => continue,
            },
            Handler::Upload => upload_operation(&mut generator),
            Handler::Download => download_operation(),
            Handler::OpenApi => openapi_operation(),
            Handler::WebSocket => websocket_operation(&error),
        };
        add_errors(&mut operation, route, &codes, &error);
        operation.insert("tags".into(), json!([tag_of(route.path)]));
        let security = if route.auth {
            json!([{"bearer": []}])
        } else {
            json!([])
        };
        operation.insert("security".into(), security);
        let item = paths.entry(route.path).or_insert_with(|| json!({}));
        item[route.method.as_str().to_ascii_lowercase()] = Value::Object(operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "im HTTP API",
            "version": "1",
            "description": "The HTTP/JSON binding of the im protocol (docs/protocol.md). Each \
                route runs the protocol request of its operationId with the bearer token from \
                `POST /v1/login` standing in for a logged-in connection: the body, the path \
                parameters and the query parameters are the request's fields, and the reply \
                is the protocol's reply object. Errors are `{code, message, retry_after_ms?}` \
                with the status of their code. Pushes (messages, receipts, typing, presence) \
                need the WebSocket at `/ws`. Generated from the server's route table and \
                protocol types.",
            "license": {"name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": generator.definitions(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token from `POST /v1/login`.",
                },
            },
        },
    })
}

/// The operation of a route that runs a protocol request.
fn command_operation(
    route: &Route,
    command: &CommandSchema,
    generator: &mut SchemaGenerator,
) -> Map<String, Value> {
    let fields = command.request_schema(generator).to_value();
    let summary = first_sentence(fields["description"].as_str().unwrap_or(command.name));
    let direct = matches!(route.handler, Handler::Direct(_));
    let mut operation = Map::new();
    if direct {
        operation.insert(
            "operationId".into(),
            format!("direct_{}", command.name).into(),
        );
        let summary = format!("{summary}, in the direct conversation with `user`");
        operation.insert("summary".into(), summary.into());
    } else {
        operation.insert("operationId".into(), command.name.into());
        operation.insert("summary".into(), summary.into());
    }

    let properties = fields["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let required: Vec<&str> = fields["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let parameters: Vec<Value> = route
        .params
        .iter()
        .map(|&(name, kind)| parameter(route, name, kind, properties.get(name), &required))
        .collect();
    if !parameters.is_empty() {
        operation.insert("parameters".into(), parameters.into());
    }

    if route.body {
        let mut body = fields.clone();
        let taken = |name: &str| {
            route.params.iter().any(|(p, _)| *p == name) || (direct && name == "conversation")
        };
        if let Some(Value::Object(properties)) = body.get_mut("properties") {
            properties.retain(|name, _| !taken(name));
        }
        if let Some(Value::Array(required)) = body.get_mut("required") {
            required.retain(|name| !name.as_str().is_some_and(taken));
        }
        if makes_client_id(command.name) {
            http_made_client_id(&mut body);
        }
        if let Some(body) = body.as_object_mut() {
            body.remove("description");
        }
        let body = json!({
            "required": true,
            "content": {"application/json": {"schema": body}},
        });
        operation.insert("requestBody".into(), body);
    }

    let status = route.status.as_u16().to_string();
    let success = if command.reply == reply::Done::NAME {
        json!({"description": "Done"})
    } else {
        let reference = command.reply_schema(generator).to_value();
        if makes_client_id(command.name) {
            reply_client_id(generator, &reference);
        }
        json!({
            "description": format!("The `{}` reply", command.reply),
            "content": {"application/json": {"schema": reference}},
        })
    };
    operation.insert("responses".into(), json!({ status: success }));
    operation
}

/// A path or query parameter: its schema is the request field's when that is a plain
/// type, else the route's declared kind.
fn parameter(
    route: &Route,
    name: &str,
    kind: Param,
    field: Option<&Value>,
    required: &[&str],
) -> Value {
    let in_path = route.path.contains(&format!("{{{name}}}"));
    let mut schema = match kind {
        Param::Int => json!({"type": "integer", "format": "uint64", "minimum": 0}),
        Param::IntList => json!({
            "type": "array",
            "items": {"type": "integer", "format": "uint64", "minimum": 0},
        }),
        Param::Text => json!({"type": "string"}),
    };
    let mut description = field
        .and_then(|f| f["description"].as_str())
        .map(str::to_owned);
    if kind == Param::Text
        && let Some(field) = field
    {
        schema = field.clone();
        if let Some(schema) = schema.as_object_mut() {
            schema.remove("description");
        }
        // An optional field's `anyOf: [T, null]`: a parameter is optional by being left
        // out (`required: false`), never by being null.
        if let Some(any_of) = schema["anyOf"].as_array()
            && any_of.len() == 2
            && let Some(null) = any_of.iter().position(|s| s["type"] == "null")
        {
            schema = any_of[1 - null].clone();
        }
    }
    if kind == Param::IntList {
        description = Some(format!(
            "{}; as `{name}=1,2` or `{name}=1&{name}=2`",
            description
                .as_deref()
                .unwrap_or("A list")
                .trim_end_matches('.')
        ));
    }
    if matches!(route.handler, Handler::Direct(_)) && name == "user" {
        description = Some("The other user of the direct conversation.".into());
    }
    let mut parameter = json!({
        "name": name,
        "in": if in_path { "path" } else { "query" },
        "required": in_path || required.contains(&name),
        "schema": schema,
    });
    if let Some(description) = description {
        parameter["description"] = description.into();
    }
    parameter
}

/// Over HTTP `send` may omit `client_id`: the gateway makes one.
fn http_made_client_id(body: &mut Value) {
    if let Some(Value::Array(required)) = body.get_mut("required") {
        required.retain(|name| name != "client_id");
    }
    if let Some(field) = body.pointer_mut("/properties/client_id")
        && let Some(field) = field.as_object_mut()
    {
        let said = field
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let said = format!(
            "{said} Optional over HTTP: without it the server makes one and returns it in the \
             reply."
        );
        field.insert("description".into(), said.trim_start().into());
    }
}

/// The `client_id` the gateway adds to a `sent` reply when it made one.
fn reply_client_id(generator: &mut SchemaGenerator, reference: &Value) {
    let Some(name) = reference["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
    else {
        return;
    };
    if let Some(Value::Object(properties)) = generator
        .definitions_mut()
        .get_mut(name)
        .and_then(|d| d.get_mut("properties"))
    {
        properties.insert(
            "client_id".into(),
            json!({
                "type": "string",
                "description": "HTTP only: the client_id the server made for a `send` that \
                    had none.",
            }),
        );
    }
}

/// The error responses of a route: its request's documented codes and those any request
/// may get, grouped by status, and HTTP's own (408, 415) when it takes a body.
fn add_errors(
    operation: &mut Map<String, Value>,
    route: &Route,
    codes: &BTreeMap<String, String>,
    error: &Schema,
) {
    let mut errors: Vec<ErrorCode> = match route.handler {
        Handler::Command(name) | Handler::Direct(name) => Request::command(name)
            .map(|c| c.errors.to_vec())
            .unwrap_or_default(),
        Handler::Upload => vec![
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::TooLarge,
            ErrorCode::RateLimited,
        ],
        Handler::Download => vec![ErrorCode::Forbidden, ErrorCode::NotFound],
        Handler::WebSocket | Handler::OpenApi => return,
    };
    if route.auth {
        errors.push(ErrorCode::Unauthorized);
    }
    if route.body || route.handler == Handler::Upload {
        errors.push(ErrorCode::TooLarge);
    }
    if route.handler != Handler::Download {
        // A malformed body, path or query parameter.
        errors.push(ErrorCode::Invalid);
    }
    errors.push(ErrorCode::Unavailable);
    let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for code in errors {
        let name = code_name(code);
        let said = codes.get(&name).map(String::as_str).unwrap_or_default();
        let line = format!("`{name}`: {said}");
        let lines = by_status.entry(status_of(code).as_u16()).or_default();
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    if route.body || route.handler == Handler::Upload {
        by_status
            .entry(408)
            .or_default()
            .push("`invalid`: the body did not arrive within the server's body timeout.".into());
        let media = if route.handler == Handler::Upload {
            "`multipart/form-data`"
        } else {
            "`application/json`"
        };
        by_status
            .entry(415)
            .or_default()
            .push(format!("`invalid`: the body is not declared as {media}."));
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    for (status, lines) in by_status {
        let mut description = lines.join(" ");
        if status == 429 {
            description.push_str(" The `Retry-After` header says the same in seconds.");
        }
        responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": error}},
            }),
        );
    }
}

/// Each error code's name and its documentation, from [`ErrorCode`]'s schema.
fn error_code_descriptions(generator: &mut SchemaGenerator) -> BTreeMap<String, String> {
    let schema = ErrorCode::json_schema(generator).to_value();
    schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|variant| {
            let name = variant["const"].as_str()?;
            let said = variant["description"].as_str().unwrap_or_default();
            Some((name.to_owned(), said.replace('\n', " ")))
        })
        .collect()
}

/// An error code's name on the wire.
fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The tag of a path: its first segment after `/v1/` (`meta` for the others).
fn tag_of(path: &str) -> &str {
    path.strip_prefix("/v1/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("meta")
}

/// The first sentence of a doc comment, without its full stop.
fn first_sentence(doc: &str) -> String {
    let doc = doc.replace('\n', " ");
    let end = doc.find(". ").unwrap_or(doc.len());
    doc[..end].trim_end_matches('.').trim().to_owned()
}

fn upload_operation(generator: &mut SchemaGenerator) -> Map<String, Value> {
    let conversation = generator.subschema_for::<im_core::model::ConversationId>();
    let uploaded = generator.subschema_for::<Uploaded<'static>>();
    object(json!({
        "operationId": "upload",
        "summary": "Upload a file for a conversation (type sniffed from its bytes; images get \
            width and height)",
        "requestBody": {
            "required": true,
            "content": {"multipart/form-data": {"schema": {
                "type": "object",
                "properties": {
                    "conversation": conversation,
                    "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                },
                "required": ["conversation", "file"],
            }}},
        },
        "responses": {"201": {
            "description": "Stored",
            "content": {"application/json": {"schema": uploaded}},
        }},
    }))
}

fn download_operation() -> Map<String, Value> {
    object(json!({
        "operationId": "download",
        "summary": "Fetch a file: its uploader, or whoever may read a live message showing it",
        "parameters": [{
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        }, {
            "name": "conversation",
            "in": "query",
            "required": false,
            "description": "Where the message showing it is (a forward's conversation); \
                the conversation it was uploaded for when absent",
            "schema": {"type": "string"},
        }],
        "responses": {"200": {
            "description": "The file, with its sniffed Content-Type",
            "content": {"*/*": {"schema": {
                "type": "string",
                "contentMediaType": "application/octet-stream",
            }}},
        }},
    }))
}

fn openapi_operation() -> Map<String, Value> {
    object(json!({
        "operationId": "openapi",
        "summary": "This document",
        "responses": {"200": {
            "description": "The OpenAPI document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }},
    }))
}

fn websocket_operation(error: &Schema) -> Map<String, Value> {
    object(json!({
        "operationId": "websocket",
        "summary": "Open a WebSocket carrying the protocol's frames (docs/protocol.md): JSON as \
            text, MessagePack as binary after hello asks for it",
        "responses": {
            "101": {"description": "Switching protocols"},
            "403": {
                "description": "`forbidden`: the Origin is not allowed.",
                "content": {"application/json": {"schema": error}},
            },
        },
    }))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
