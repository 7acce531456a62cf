//! Checks on client-supplied values, each returning a typed `invalid` or `too_large` error
//! that names the field.

use super::error::{ApiError, ApiResult};
use crate::model::Body;

fn no_control(s: &str, allow_newline: bool) -> bool {
    s.chars()
        .all(|c| !c.is_control() || (allow_newline && (c == '\n' || c == '\t')))
}

/// Lower-cases and checks a username.
pub(crate) fn username(raw: &str) -> ApiResult<String> {
    let name = raw.to_ascii_lowercase();
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if !(3..=32).contains(&name.len()) || !ok_chars || name.starts_with('.') {
        return Err(ApiError::invalid(
            "username: 3 to 32 characters from a-z, 0-9, _ and ., not starting with .",
        ));
    }
    Ok(name)
}

pub(crate) fn password(pw: &str) -> ApiResult<()> {
    let n = pw.chars().count();
    if !(8..=256).contains(&n) {
        return Err(ApiError::invalid("password: 8 to 256 characters"));
    }
    Ok(())
}

/// A trimmed human-readable name of 1 to 64 characters.
pub(crate) fn name(field: &'static str, raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    let n = name.chars().count();
    if !(1..=64).contains(&n) || !no_control(name, false) {
        return Err(ApiError::invalid(format!(
            "{field}: 1 to 64 characters, no control characters"
        )));
    }
    Ok(name.to_owned())
}

pub(crate) fn url(field: &'static str, raw: &str) -> ApiResult<()> {
    if raw.is_empty()
        || raw.len() > 1024
        || raw.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(format!(
            "{field}: 1 to 1024 characters without spaces"
        )));
    }
    Ok(())
}

pub(crate) fn note(raw: &str) -> ApiResult<String> {
    let note = raw.trim();
    if note.chars().count() > 256 || !no_control(note, true) {
        return Err(ApiError::invalid("note: at most 256 characters"));
    }
    Ok(note.to_owned())
}

pub(crate) fn client_id(raw: &str) -> ApiResult<()> {
    if raw.is_empty() || raw.len() > 64 || !no_control(raw, false) {
        return Err(ApiError::invalid("client_id: 1 to 64 bytes"));
    }
    Ok(())
}

/// Checks a body a client wants to send against `max_bytes`, measured as the body encodes
/// in JSON: escaping can make text several times longer than its bytes, and every push
/// and history page must still fit in a frame.
pub(crate) fn body(body: &Body, max_bytes: usize) -> ApiResult<()> {
    match body {
        Body::Text { text } => {
            if text.trim().is_empty() {
                return Err(ApiError::invalid("body.text: must not be empty"));
            }
        }
        Body::Image { url: u, .. } | Body::File { url: u, .. } => url("body.url", u)?,
        Body::Custom { .. } => {}
        Body::System { .. } => {
            return Err(ApiError::invalid(
                "body: system messages are written by the server",
            ));
        }
    }
    let size = serde_json::to_vec(body).map_or(usize::MAX, |v| v.len());
    if size > max_bytes {
        return Err(ApiError::too_large(format!(
            "body: {size} bytes encoded, the limit is {max_bytes}"
        )));
    }
    Ok(())
}
