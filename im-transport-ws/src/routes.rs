//! The HTTP API's routes: one table, from which requests are matched and built, and from
//! which the OpenAPI document is generated ([`openapi`](crate::openapi)).
//!
//! A command route turns into the protocol request of the same name: its JSON body, its
//! path parameters and its query parameters become the request's fields. So
//! `POST /v1/groups/3/members {"users":[5]}` is `{"type":"add_members","group":3,"users":[5]}`
//! and runs exactly as it would on a WebSocket.

use im_core::protocol::Command as _;
use im_core::protocol::request;
use serde_json::{Map, Value};
use warp::http::{Method, StatusCode};

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// Runs the protocol request of this `type`.
    Command(&'static str),
    /// Runs the protocol request of this `type` on the caller's direct conversation with
    /// the path's `user`, so that a caller need not spell `d:<lower id>:<higher id>`.
    Direct(&'static str),
    /// `POST /v1/attachments`: a multipart upload.
    Upload,
    /// `GET /v1/attachments/{id}`: an authorized download.
    Download,
    /// `GET /openapi.json`.
    OpenApi,
    /// `GET /ws`: the WebSocket upgrade.
    WebSocket,
}

/// The type of a path or query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// An unsigned integer (ids, seqs, limits).
    Int,
    /// A comma-separated list of unsigned integers.
    IntList,
    /// A string.
    Text,
}

/// One route of the HTTP API.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path, with parameters in braces: `/v1/groups/{group}/members`.
    pub path: &'static str,
    /// What it does.
    pub handler: Handler,
    /// The status of a success (`204` when the reply is `done`).
    pub status: StatusCode,
    /// The parameters in the path and query, and their types. A parameter named in
    /// the path is a path parameter; the others are query parameters.
    pub params: &'static [(&'static str, Param)],
    /// Whether a bearer token is needed.
    pub auth: bool,
    /// Whether the request has a JSON body.
    pub body: bool,
}

const fn route(
    method: Method,
    path: &'static str,
    handler: Handler,
    status: StatusCode,
    params: &'static [(&'static str, Param)],
    auth: bool,
    body: bool,
) -> Route {
    Route {
        method,
        path,
        handler,
        status,
        params,
        auth,
        body,
    }
}

use Handler::{Command, Direct};
use Param::{Int, IntList, Text};
const OK: StatusCode = StatusCode::OK;
const CREATED: StatusCode = StatusCode::CREATED;
const NO_CONTENT: StatusCode = StatusCode::NO_CONTENT;
const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;
const PATCH: Method = Method::PATCH;

/// Every route, in the order of the protocol document.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    route(GET, "/ws", Handler::WebSocket, StatusCode::SWITCHING_PROTOCOLS, &[], false, false),
    route(GET, "/openapi.json", Handler::OpenApi, OK, &[], false, false),
    // Accounts and devices.
    route(POST, "/v1/register", Command(request::Register::NAME), CREATED, &[], false, true),
    route(POST, "/v1/codes", Command(request::SendCode::NAME), NO_CONTENT, &[], false, true),
    route(POST, "/v1/login", Command(request::Login::NAME), OK, &[], false, true),
    route(POST, "/v1/logout", Command(request::Logout::NAME), NO_CONTENT, &[], true, false),
    route(GET, "/v1/devices", Command(request::Devices::NAME), OK, &[], true, false),
    route(DELETE, "/v1/devices/{device}", Command(request::RevokeDevice::NAME), NO_CONTENT, &[("device", Text)], true, false),
    route(POST, "/v1/password", Command(request::ChangePassword::NAME), NO_CONTENT, &[], true, true),
    route(PATCH, "/v1/profile", Command(request::UpdateProfile::NAME), OK, &[], true, true),
    route(GET, "/v1/users", Command(request::Users::NAME), OK, &[("users", IntList)], true, false),
    route(GET, "/v1/users/by-name/{username}", Command(request::FindUser::NAME), OK, &[("username", Text)], true, false),
    // Contacts.
    route(GET, "/v1/friends", Command(request::Friends::NAME), OK, &[], true, false),
    route(DELETE, "/v1/friends/{user}", Command(request::RemoveFriend::NAME), NO_CONTENT, &[("user", Int)], true, false),
    route(GET, "/v1/friend-requests", Command(request::FriendRequests::NAME), OK, &[], true, false),
    route(POST, "/v1/friend-requests", Command(request::RequestFriend::NAME), NO_CONTENT, &[], true, true),
    route(POST, "/v1/friend-requests/{user}/accept", Command(request::AcceptFriend::NAME), NO_CONTENT, &[("user", Int)], true, false),
    route(POST, "/v1/friend-requests/{user}/decline", Command(request::DeclineFriend::NAME), NO_CONTENT, &[("user", Int)], true, false),
    route(GET, "/v1/blocked", Command(request::BlockedUsers::NAME), OK, &[], true, false),
    route(PUT, "/v1/blocked/{user}", Command(request::Block::NAME), NO_CONTENT, &[("user", Int)], true, false),
    route(DELETE, "/v1/blocked/{user}", Command(request::Unblock::NAME), NO_CONTENT, &[("user", Int)], true, false),
    // Groups.
    route(GET, "/v1/groups", Command(request::MyGroups::NAME), OK, &[], true, false),
    route(POST, "/v1/groups", Command(request::CreateGroup::NAME), CREATED, &[], true, true),
    route(GET, "/v1/groups/{group}", Command(request::GroupInfo::NAME), OK, &[("group", Int)], true, false),
    route(PUT, "/v1/groups/{group}/name", Command(request::RenameGroup::NAME), OK, &[("group", Int)], true, true),
    route(POST, "/v1/groups/{group}/transfer", Command(request::TransferGroup::NAME), OK, &[("group", Int)], true, true),
    route(POST, "/v1/groups/{group}/join", Command(request::JoinGroup::NAME), OK, &[("group", Int)], true, false),
    route(POST, "/v1/groups/{group}/leave", Command(request::LeaveGroup::NAME), OK, &[("group", Int)], true, false),
    route(GET, "/v1/groups/{group}/members", Command(request::GroupMembers::NAME), OK, &[("group", Int), ("after", Int), ("limit", Int)], true, false),
    route(POST, "/v1/groups/{group}/members", Command(request::AddMembers::NAME), OK, &[("group", Int)], true, true),
    route(DELETE, "/v1/groups/{group}/members/{user}", Command(request::KickMember::NAME), OK, &[("group", Int), ("user", Int)], true, false),
    route(PUT, "/v1/groups/{group}/members/{user}/role", Command(request::SetRole::NAME), OK, &[("group", Int), ("user", Int)], true, true),
    // Messages.
    route(GET, "/v1/conversations", Command(request::Conversations::NAME), OK, &[], true, false),
    route(GET, "/v1/conversations/{conversation}/messages", Command(request::History::NAME), OK, &[ ("conversation", Text), ("after", Int), ("before", Int), ("limit", Int), ], true, false),
    route(POST, "/v1/conversations/{conversation}/messages", Command(request::Send::NAME), CREATED, &[("conversation", Text)], true, true),
    route(GET, "/v1/direct/{user}/messages", Direct(request::History::NAME), OK, &[("user", Int), ("after", Int), ("before", Int), ("limit", Int)], true, false),
    route(POST, "/v1/direct/{user}/messages", Direct(request::Send::NAME), CREATED, &[("user", Int)], true, true),
    route(PUT, "/v1/conversations/{conversation}/messages/{seq}", Command(request::Edit::NAME), OK, &[("conversation", Text), ("seq", Int)], true, true),
    route(DELETE, "/v1/conversations/{conversation}/messages/{seq}", Command(request::DeleteForMe::NAME), NO_CONTENT, &[("conversation", Text), ("seq", Int)], true, false),
    route(POST, "/v1/conversations/{conversation}/messages/{seq}/recall", Command(request::Recall::NAME), OK, &[("conversation", Text), ("seq", Int)], true, true),
    route(GET, "/v1/conversations/{conversation}/pins", Command(request::Pins::NAME), OK, &[("conversation", Text)], true, false),
    route(PUT, "/v1/conversations/{conversation}/pins/{seq}", Command(request::Pin::NAME), NO_CONTENT, &[("conversation", Text), ("seq", Int)], true, false),
    route(DELETE, "/v1/conversations/{conversation}/pins/{seq}", Command(request::Unpin::NAME), NO_CONTENT, &[("conversation", Text), ("seq", Int)], true, false),
    route(GET, "/v1/search", Command(request::Search::NAME), OK, &[("query", Text), ("conversation", Text), ("before", Int), ("limit", Int)], true, false),
    route(POST, "/v1/conversations/{conversation}/messages/{seq}/forward", Command(request::Forward::NAME), CREATED, &[("conversation", Text), ("seq", Int)], true, true),
    route(POST, "/v1/conversations/{conversation}/messages/{seq}/reaction", Command(request::React::NAME), OK, &[("conversation", Text), ("seq", Int)], true, true),
    route(POST, "/v1/conversations/{conversation}/read", Command(request::MarkRead::NAME), OK, &[("conversation", Text)], true, true),
    route(POST, "/v1/conversations/{conversation}/delivered", Command(request::Ack::NAME), OK, &[("conversation", Text)], true, true),
    route(GET, "/v1/conversations/{conversation}/receipts", Command(request::Receipts::NAME), OK, &[ ("conversation", Text), ("seq", Int), ("after", Int), ("limit", Int), ], true, false),
    route(POST, "/v1/conversations/{conversation}/typing", Command(request::Typing::NAME), NO_CONTENT, &[("conversation", Text)], true, true),
    // Presence and calls.
    route(GET, "/v1/presence", Command(request::Presence::NAME), OK, &[("users", IntList)], true, false),
    route(POST, "/v1/signals", Command(request::Signal::NAME), OK, &[], true, true),
    // Attachments.
    route(POST, "/v1/attachments", Handler::Upload, CREATED, &[], true, false),
    route(GET, "/v1/attachments/{id}", Handler::Download, OK, &[("id", Text), ("conversation", Text)], true, false),
];

/// The outcome of matching a request line against [`ROUTES`].
#[derive(Debug)]
pub(crate) enum Matched {
    /// A route, and its path parameters (percent-decoded), in path order.
    Route(&'static Route, Vec<(&'static str, String)>),
    /// The path exists, with other methods.
    WrongMethod(Vec<Method>),
    /// No such path.
    NotFound,
}

/// Finds the route for a method and path.
pub(crate) fn find(method: &Method, path: &str) -> Matched {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut allowed = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.path, &segments) else {
            continue;
        };
        if route.method == *method {
            return Matched::Route(route, params);
        }
        allowed.push(route.method.clone());
    }
    if allowed.is_empty() {
        Matched::NotFound
    } else {
        Matched::WrongMethod(allowed)
    }
}

fn match_path(template: &'static str, segments: &[&str]) -> Option<Vec<(&'static str, String)>> {
    let parts: Vec<&'static str> = template.trim_start_matches('/').split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let value = percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .ok()?
                .into_owned();
            if value.is_empty() {
                return None;
            }
            params.push((name, value));
        } else if part != segment {
            return None;
        }
    }
    Some(params)
}

/// Why a request could not be built.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) String);

/// Builds the JSON of a command's request from its body, path and query.
pub(crate) fn request_json(
    route: &Route,
    request_type: &str,
    path_params: Vec<(&'static str, String)>,
    query: &str,
    body: Option<&[u8]>,
) -> Result<Map<String, Value>, BadRequest> {
    let mut fields = match body {
        None => Map::new(),
        Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(BadRequest("the body must be a JSON object".into())),
            Err(e) => return Err(BadRequest(format!("the body is not valid JSON: {e}"))),
        },
    };
    for (name, value) in path_params {
        let kind = param_kind(route, name);
        fields.insert(name.to_owned(), typed(name, &value, kind)?);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_query(name);
        let in_path = route.path.contains(&format!("{{{name}}}"));
        let Some(&(name, kind)) = route.params.iter().find(|(n, _)| *n == name && !in_path) else {
            return Err(BadRequest(format!("unknown query parameter `{name}`")));
        };
        let value = typed(name, &decode_query(value), kind)?;
        match (fields.get_mut(name), value) {
            (None, value) => {
                fields.insert(name.to_owned(), value);
            }
            // A list may be given as `users=1,2` or `users=1&users=2`, or both.
            (Some(Value::Array(list)), Value::Array(more)) if kind == Param::IntList => {
                list.extend(more);
            }
            (Some(_), _) => {
                return Err(BadRequest(format!("`{name}` is given more than once")));
            }
        }
    }
    fields.insert("type".to_owned(), Value::String(request_type.to_owned()));
    Ok(fields)
}

fn param_kind(route: &Route, name: &str) -> Param {
    route
        .params
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(Param::Text, |(_, k)| *k)
}

fn typed(name: &str, value: &str, kind: Param) -> Result<Value, BadRequest> {
    let int = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| BadRequest(format!("`{name}` must be an unsigned integer")))
    };
    match kind {
        Param::Text => Ok(Value::String(value.to_owned())),
        Param::Int => int(value),
        Param::IntList => value
            .split(',')
            .filter(|v| !v.is_empty())
            .map(int)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
    }
}

pub(crate) fn decode_query(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_with_decoded_parameters() {
        let Matched::Route(route, params) =
            find(&Method::GET, "/v1/conversations/d%3A1%3A2/messages")
        else {
            panic!("no match");
        };
        assert_eq!(route.handler, Command(request::History::NAME));
        assert_eq!(params, vec![("conversation", "d:1:2".to_owned())]);
        assert!(
            matches!(find(&Method::PATCH, "/v1/groups"), Matched::WrongMethod(m) if m.len() == 2)
        );
        assert!(matches!(
            find(&Method::GET, "/v1/nothing"),
            Matched::NotFound
        ));
        assert!(matches!(
            find(&Method::GET, "/v1/groups/"),
            Matched::NotFound
        ));
    }

    #[test]
    fn requests_merge_body_path_and_query() {
        let Matched::Route(route, params) = find(&Method::GET, "/v1/groups/3/members") else {
            panic!("no match");
        };
        let json = request_json(route, "group_members", params, "limit=5&after=2", None).unwrap();
        assert_eq!(
            Value::Object(json),
            serde_json::json!({"type": "group_members", "group": 3, "limit": 5, "after": 2})
        );
        let err = request_json(route, "group_members", vec![], "limit=5&limit=6", None);
        assert_eq!(err.unwrap_err().0, "`limit` is given more than once");
        let err = request_json(route, "group_members", vec![], "limit=x", None).unwrap_err();
        assert_eq!(err.0, "`limit` must be an unsigned integer");
        let err = request_json(route, "group_members", vec![], "nope=1", None).unwrap_err();
        assert_eq!(err.0, "unknown query parameter `nope`");
        let err = request_json(route, "group_members", vec![], "", Some(b"[1]")).unwrap_err();
        assert_eq!(err.0, "the body must be a JSON object");
    }

    /// A list parameter repeated is one list of every value given, in order.
    #[test]
    fn repeated_list_parameters_are_all_used() {
        let Matched::Route(route, _) = find(&Method::GET, "/v1/users") else {
            panic!("no match");
        };
        let json = request_json(route, "users", vec![], "users=1&users=2,3&users=4", None);
        assert_eq!(json.unwrap()["users"], serde_json::json!([1, 2, 3, 4]));
    }

    #[test]
    fn every_path_parameter_is_declared() {
        for route in ROUTES {
            for part in route.path.split('/') {
                if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    assert!(
                        route.params.iter().any(|(n, _)| *n == name),
                        "{} {}: `{name}` has no type",
                        route.method,
                        route.path
                    );
                }
            }
        }
    }
}
