//! Directory keys as NATS key-value keys.
//!
//! A NATS KV key is a subject suffix: `.` separates tokens and only a few
//! characters are allowed. Each `/`-separated segment of a directory key
//! becomes one subject token, so that NATS permissions can name key
//! families (`$KV.ns_credentials.admin.>`, `$KV.ns_members.shard-1`): a
//! segment of ASCII letters, digits, `-` and `_` is used as it is (so
//! `user/default/alice` is `user.default.alice`, readable in `nats kv ls`);
//! any other segment is `=` followed by the unpadded base64url of its UTF-8
//! bytes. `=` never occurs in a plain segment, so the two forms cannot
//! collide, and decoding is exact.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Marks an encoded segment.
const ENCODED: char = '=';

fn is_plain(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn encode_segment(segment: &str, out: &mut String) {
    if is_plain(segment) {
        out.push_str(segment);
    } else {
        out.push(ENCODED);
        URL_SAFE_NO_PAD.encode_string(segment.as_bytes(), out);
    }
}

/// The NATS key for a (validated) directory key.
pub(super) fn encode(key: &str) -> String {
    let mut encoded = String::with_capacity(key.len() + 8);
    for (i, segment) in key.split('/').enumerate() {
        if i > 0 {
            encoded.push('.');
        }
        encode_segment(segment, &mut encoded);
    }
    encoded
}

/// The directory key of a NATS key, or `None` for a key this crate did not
/// write.
pub(super) fn decode(nats_key: &str) -> Option<String> {
    let mut key = String::with_capacity(nats_key.len());
    for (i, token) in nats_key.split('.').enumerate() {
        if i > 0 {
            key.push('/');
        }
        match token.strip_prefix(ENCODED) {
            Some(encoded) => {
                let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
                let segment = String::from_utf8(bytes).ok()?;
                if is_plain(&segment) || segment.contains('/') {
                    return None;
                }
                key.push_str(&segment);
            }
            None if is_plain(token) => key.push_str(token),
            None => return None,
        }
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn plain_segments_pass_through_as_tokens() {
        for (key, nats) in [
            ("alice", "alice"),
            ("user/default/alice", "user.default.alice"),
            ("a-b_c/9", "a-b_c.9"),
            ("admin/0123abcd", "admin.0123abcd"),
        ] {
            assert_eq!(encode(key), nats);
            assert_eq!(decode(nats).unwrap(), key);
        }
    }

    #[test]
    fn other_segments_are_encoded_alone_and_round_trip() {
        for key in [
            "a.b",
            "ü ñ",
            "*",
            ">",
            "a=b",
            "=",
            "x/y.z",
            "tab\there",
            "user/default/bob.smith",
            "a//b",
            "/",
        ] {
            let encoded = encode(key);
            for token in encoded.split('.') {
                assert!(!token.is_empty(), "{encoded}");
                assert!(token
                    .trim_start_matches('=')
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
            assert_eq!(decode(&encoded).unwrap(), key, "{encoded}");
        }
        // The prefix of a key family stays a prefix of tokens.
        assert_eq!(
            encode("user/default/bob.smith"),
            "user.default.=Ym9iLnNtaXRo"
        );
    }

    #[test]
    fn foreign_keys_are_not_decoded() {
        assert_eq!(decode("a b"), None);
        assert_eq!(decode("=!!"), None);
        // A plain segment is never written encoded.
        assert_eq!(decode(&format!("={}", URL_SAFE_NO_PAD.encode("abc"))), None);
    }

    proptest::proptest! {
        #[test]
        fn every_key_round_trips(key in "\\PC{1,40}") {
            let encoded = encode(&key);
            proptest::prop_assert!(encoded.split('.').all(|t| !t.is_empty()));
            proptest::prop_assert_eq!(decode(&encoded), Some(key));
        }
    }
}
