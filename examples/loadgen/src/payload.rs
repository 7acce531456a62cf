//! Message texts: each starts with a marker holding a time (ns since the generator's
//! start, decimal) and is padded to 100 bytes; receivers find the marker with a byte scan
//! instead of parsing every frame.

/// Length of every message text, in bytes.
pub(crate) const TEXT_BYTES: usize = 100;

/// The text of the barrier messages that tell a receiver it is in the broadcast.
pub(crate) const SYNC_TEXT: &str = "~sync~ loadgen barrier";

/// A message text carrying `ns`: `~t<ns>~` then padding to [`TEXT_BYTES`]. Only ASCII
/// that needs no JSON escaping.
pub(crate) fn text(ns: u64) -> String {
    let mut text = format!("~t{ns}~");
    while text.len() < TEXT_BYTES {
        text.push_str("loadgen.");
    }
    text.truncate(TEXT_BYTES);
    text
}

/// The position of the first `~` in `hay`, eight bytes at a time (the marker of an im
/// push is ~150 bytes into the frame; this runs once per received frame).
fn find_tilde(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const TILDES: u64 = u64::from_ne_bytes([b'~'; 8]);
    let mut chunks = hay.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default()) ^ TILDES;
        // The lowest high bit set marks the first zero byte of `word`, that is the
        // first `~` (bytes above a zero byte may be flagged falsely; the lowest never).
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'~')
        .map(|p| at + p)
}

/// The time carried by the first marker in `frame`, if any.
pub(crate) fn find_time(frame: &[u8]) -> Option<u64> {
    let mut from = 0;
    while let Some(pos) = find_tilde(&frame[from..]) {
        let at = from + pos;
        if frame.get(at + 1) == Some(&b't')
            && let Some(ns) = marker_digits(&frame[at + 2..])
        {
            return Some(ns);
        }
        from = at + 1;
    }
    None
}

/// The number in `rest` if it is digits closed by `~` (and fits in a u64), in one pass.
#[inline]
fn marker_digits(rest: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for (i, &b) in rest.iter().enumerate() {
        match b {
            b'0'..=b'9' => n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?,
            b'~' if i > 0 => return Some(n),
            _ => return None,
        }
    }
    None
}

/// Whether `frame` holds `needle` (a short ASCII pattern).
pub(crate) fn contains(frame: &[u8], needle: &[u8]) -> bool {
    frame.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_padded_and_found() {
        let t = text(123_456_789);
        assert_eq!(t.len(), TEXT_BYTES);
        let frame = format!(r#"{{"type":"event","event":{{"text":"{t}"}}}}"#);
        assert_eq!(find_time(frame.as_bytes()), Some(123_456_789));
        assert_eq!(
            find_time(format!(r#"42["m","{t}"]"#).as_bytes()),
            Some(123_456_789)
        );
        assert_eq!(find_time(SYNC_TEXT.as_bytes()), None);
        assert_eq!(find_time(b"~t~ ~tx ~t12"), None);
        assert_eq!(find_time(b"~t99999999999999999999~ ~t7~"), Some(7));
        assert_eq!(find_time(b"~~t5~"), Some(5));
        assert!(contains(SYNC_TEXT.as_bytes(), b"~sync~"));
    }

    #[test]
    fn tilde_is_found_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                let mut hay = vec![b'x'; len];
                // Bytes that trip naive bit tricks: 0x7f, 0xfe, 0x00 around the target.
                for (i, b) in hay.iter_mut().enumerate() {
                    *b = [b'x', 0x7F, 0xFE, 0x00, b'}'][i % 5];
                }
                let expected = (at < len).then_some(at);
                if at < len {
                    hay[at] = b'~';
                    if at + 1 < len {
                        hay[at + 1] = b'~';
                    }
                }
                assert_eq!(find_tilde(&hay), expected, "len {len} at {at}");
            }
        }
    }
}
