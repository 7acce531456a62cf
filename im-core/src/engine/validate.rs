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

/// A proof for the gate (a code, a captcha token, an invite): at most 1024 characters,
/// no control characters.
pub(crate) fn proof(raw: Option<&str>) -> ApiResult<()> {
    match raw {
        Some(proof) if proof.chars().count() > 1024 || !no_control(proof, false) => Err(
            ApiError::invalid("proof: at most 1024 characters, no control characters"),
        ),
        _ => Ok(()),
    }
}

/// Where a code may be sent (an e-mail address, a phone number): 3 to 254 characters
/// once trimmed, no control characters. What makes an address deliverable is the gate's
/// to judge.
pub(crate) fn contact(raw: &str) -> ApiResult<()> {
    let contact = raw.trim();
    let n = contact.chars().count();
    if !(3..=254).contains(&n) || !no_control(contact, false) {
        return Err(ApiError::invalid(
            "contact: 3 to 254 characters, no control characters",
        ));
    }
    Ok(())
}

/// A URL a client may fetch and show: `http://` or `https://`, or a path on this server
/// (`/…`, such as an upload's); 1 to 1024 bytes without spaces or control characters.
/// Other schemes (`javascript:`, `data:`) are refused.
pub(crate) fn url(field: &'static str, raw: &str) -> ApiResult<()> {
    if raw.is_empty()
        || raw.len() > 1024
        || raw.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(format!(
            "{field}: 1 to 1024 characters without spaces"
        )));
    }
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://") || raw.starts_with('/')) {
        return Err(ApiError::invalid(format!(
            "{field}: an http(s) URL or a path on this server"
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

/// A reaction: one emoji, or a short sequence (flags, skin tones, joined emoji), of 1 to
/// 32 bytes with no spaces or control characters.
pub(crate) fn emoji(raw: &str) -> ApiResult<()> {
    if raw.is_empty() || raw.len() > 32 || raw.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(
            "emoji: 1 to 32 bytes, no spaces or control characters",
        ));
    }
    Ok(())
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
    let size = content_bytes(body);
    if size > max_bytes {
        return Err(ApiError::too_large(format!(
            "body: {size} bytes of content, the limit is {max_bytes}"
        )));
    }
    Ok(())
}

/// What the body limit counts (docs/protocol.md, "send"): the content as JSON encodes
/// it — a text's characters (one byte each for plain ASCII, two to six for what JSON
/// escapes, UTF-8 bytes otherwise), a custom body's `data`, an image's or file's whole
/// body. Measured encoded, so that no stored message can outgrow a frame; content only,
/// so that a plain text of exactly the limit passes.
fn content_bytes(body: &Body) -> usize {
    let json = |v: Result<Vec<u8>, serde_json::Error>| v.map_or(usize::MAX, |v| v.len());
    match body {
        // The encoded string without its two quotes.
        Body::Text { text } => json(serde_json::to_vec(text)).saturating_sub(2),
        Body::Custom { data } => json(serde_json::to_vec(data)),
        _ => json(serde_json::to_vec(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 16 * 1024;

    fn text(text: String) -> Body {
        Body::Text { text }
    }

    /// The limit is on the content, as docs/protocol.md says: a plain text of exactly
    /// 16 KiB passes, one byte more does not; what JSON escapes counts escaped.
    #[test]
    fn a_text_of_exactly_the_limit_passes() {
        assert!(body(&text("a".repeat(LIMIT)), LIMIT).is_ok());
        assert!(body(&text("\"".repeat(LIMIT / 2)), LIMIT).is_ok());
        assert!(body(&text("\"".repeat(LIMIT / 2 + 1)), LIMIT).is_err());
        assert!(body(&text("\u{1}".repeat(LIMIT / 6 + 1)), LIMIT).is_err());
        let err = body(&text("a".repeat(LIMIT + 1)), LIMIT).unwrap_err();
        assert_eq!(err.code, crate::protocol::ErrorCode::TooLarge);
        // UTF-8 bytes, not characters: 4,096 four-byte characters fill it.
        assert!(body(&text("😀".repeat(LIMIT / 4)), LIMIT).is_ok());
        assert!(body(&text(format!("{}a", "😀".repeat(LIMIT / 4))), LIMIT).is_err());
    }

    /// A custom body counts its `data` as compact JSON.
    #[test]
    fn custom_data_counts_as_compact_json() {
        // {"k":"…"} is 8 bytes around the string.
        let fits = serde_json::json!({ "k": "x".repeat(LIMIT - 8) });
        assert!(body(&Body::Custom { data: fits }, LIMIT).is_ok());
        let over = serde_json::json!({ "k": "x".repeat(LIMIT - 7) });
        assert!(body(&Body::Custom { data: over }, LIMIT).is_err());
    }

    /// Avatars and other shown URLs: web addresses or this server's paths, nothing a
    /// page could run.
    #[test]
    fn urls_are_web_addresses_or_own_paths() {
        for good in [
            "https://example.com/a.png",
            "HTTP://example.com/a.png",
            "/v1/attachments/abc",
        ] {
            assert!(url("avatar", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "ftp://example.com/a.png",
            "example.com/a.png",
            "https://example.com/a b.png",
        ] {
            assert!(url("avatar", bad).is_err(), "{bad}");
        }
        assert!(url("avatar", &format!("https://{}", "x".repeat(1100))).is_err());
    }
}
