//! How certificates name shards.
//!
//! A shard's signing certificate carries the URI subject alternative name
//! `keyfed:shard:<id>` (authoritative) and the common name `<id>`. Ids are
//! 1–64 ASCII letters, digits, `-` or `_` (the shard config's rule), so a
//! name can never be confused with another one or smuggle separators.

use crate::error::PkiError;

/// The URI scheme prefix of a shard's name in its certificate.
pub const SHARD_URI_PREFIX: &str = "keyfed:shard:";

/// The URI scheme prefix of a gateway's name in its TLS certificate.
pub const GATEWAY_URI_PREFIX: &str = "keyfed:gateway:";

/// Checks a shard id (gateway ids follow the same rule).
pub fn check_shard_id(id: &str) -> Result<(), PkiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PkiError::rejected(format!(
            "shard id {id:?} is not 1-64 letters, digits, '-' or '_'"
        )))
    }
}

/// The URI naming shard `id` in its certificate.
pub fn shard_uri(id: &str) -> String {
    format!("{SHARD_URI_PREFIX}{id}")
}

/// The URI naming gateway `id` in its TLS certificate.
pub fn gateway_uri(id: &str) -> String {
    format!("{GATEWAY_URI_PREFIX}{id}")
}
