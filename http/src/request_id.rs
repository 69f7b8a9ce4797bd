//! Request ids, `req-<uuid>` as Keystone's, without a system call per
//! request: a random key is drawn once per gateway, and each id mixes a
//! counter with it through SplitMix64's finalizer (a bijection of 64-bit
//! words, so two requests of one gateway never share the id's first half;
//! across gateways the keys differ). The result is formatted as a version-4
//! UUID.

use std::sync::atomic::{AtomicU64, Ordering};

/// The response header carrying the request id, as Keystone names it.
pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// Length of a request id: `req-` and a hyphenated UUID.
pub const REQUEST_ID_LEN: usize = 4 + 36;

/// A source of request ids; one per process (shard or gateway).
#[derive(Debug)]
pub struct RequestIds {
    key: (u64, u64),
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// SplitMix64's output function (a bijection).
fn mix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RequestIds {
    /// A source with a fresh random key.
    pub fn new() -> Self {
        Self {
            key: uuid::Uuid::new_v4().as_u64_pair(),
            next: AtomicU64::new(0),
        }
    }

    /// The next id, as ASCII bytes.
    pub fn next(&self) -> [u8; REQUEST_ID_LEN] {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut random = [0u8; 16];
        // The version and variant bits land in the second half.
        random[..8].copy_from_slice(&mix(n.wrapping_add(self.key.0)).to_le_bytes());
        random[8..].copy_from_slice(&mix(n ^ self.key.1).to_le_bytes());
        let uuid = uuid::Builder::from_random_bytes(random).into_uuid();
        let mut id = [0u8; REQUEST_ID_LEN];
        id[..4].copy_from_slice(b"req-");
        uuid.hyphenated().encode_lower(&mut id[4..]);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_uuid_v4() {
        let ids = RequestIds::new();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next();
            let text = std::str::from_utf8(&id).unwrap_or_default().to_owned();
            let uuid = uuid::Uuid::parse_str(&text[4..]).unwrap_or_default();
            assert!(text.starts_with("req-"));
            assert_eq!(uuid.get_version_num(), 4, "{text}");
            assert!(seen.insert(text));
        }
        let other = RequestIds::new();
        assert!(!seen.contains(std::str::from_utf8(&other.next()).unwrap_or_default()));
    }
}
