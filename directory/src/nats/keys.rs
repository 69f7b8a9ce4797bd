//! Directory keys as NATS key-value keys.
//!
//! A NATS KV key is a subject suffix: `.` separates tokens and only a few
//! characters are allowed. Keys made of ASCII letters, digits, `-`, `_` and
//! `/` (such as `user/default/alice`) are used as they are, so they stay
//! readable in `nats kv ls`; any other key is stored as `=` followed by the
//! unpadded base64url of its UTF-8 bytes. `=` never occurs in a plain key,
//! so the two forms cannot collide.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Marks an encoded key.
const ENCODED: char = '=';

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'))
}

/// The NATS key for a (validated) directory key.
pub(super) fn encode(key: &str) -> String {
    if is_plain(key) {
        key.to_owned()
    } else {
        let mut encoded = String::with_capacity(1 + key.len() * 4 / 3 + 3);
        encoded.push(ENCODED);
        URL_SAFE_NO_PAD.encode_string(key.as_bytes(), &mut encoded);
        encoded
    }
}

/// The directory key of a NATS key, or `None` for a key this crate did not
/// write.
pub(super) fn decode(nats_key: &str) -> Option<String> {
    match nats_key.strip_prefix(ENCODED) {
        Some(encoded) => {
            let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => is_plain(nats_key).then(|| nats_key.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn plain_keys_pass_through() {
        for key in ["alice", "user/default/alice", "a-b_c/9"] {
            assert_eq!(encode(key), key);
            assert_eq!(decode(key).unwrap(), key);
        }
    }

    #[test]
    fn other_keys_round_trip_through_valid_tokens() {
        for key in ["a.b", "ü ñ", "*", ">", "a=b", "=", "x/y.z", "tab\there"] {
            let encoded = encode(key);
            assert!(encoded.starts_with('='), "{encoded}");
            assert!(encoded[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(decode(&encoded).unwrap(), key);
        }
    }

    #[test]
    fn foreign_keys_are_not_decoded() {
        assert_eq!(decode("a.b"), None);
        assert_eq!(decode("=!!"), None);
    }
}
