//! Federation lifecycle operations on the directory: short-lived hashed
//! credentials ([`credentials`]: join tokens, admin call tokens), the
//! admission of a joining shard ([`admit`]: token, certificate, `joining`
//! member record), the join lease that makes shards join one at a time
//! ([`lease`]), and the online renewal of a member's signing certificate
//! ([`renew`]: proof of possession of its current key). Used by the
//! administration CLI and by issuer members.

pub mod admit;
pub mod credentials;
#[cfg(test)]
mod fuzz;
pub mod lease;
pub mod renew;
#[cfg(test)]
mod renew_tests;
#[cfg(test)]
mod tests;

use keyfed_directory::DirectoryError;
use keyfed_pki::PkiError;

/// Why a lifecycle operation failed. Callers map kinds to answers:
/// `Refused` → 401 with a generic message, `Invalid` → 400, `Conflict` →
/// 409, `Busy` → 409 with `Retry-After`, `Directory` → 503.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The credential presented is not valid (which way is not told).
    #[error("the token is not valid")]
    Refused,
    /// The request is malformed or not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// It conflicts with the directory's state.
    #[error("{0}")]
    Conflict(String),
    /// Another operation holds what it needs for now (another shard's join
    /// lease): the same request can succeed later (409 with
    /// `Retry-After`).
    #[error("{0}")]
    Busy(String),
    /// The directory failed.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
}

impl From<lease::LeaseError> for LifecycleError {
    fn from(e: lease::LeaseError) -> Self {
        match e {
            lease::LeaseError::Held { .. } => LifecycleError::Busy(e.to_string()),
            lease::LeaseError::Directory(e) => LifecycleError::Directory(e),
        }
    }
}

impl From<PkiError> for LifecycleError {
    fn from(e: PkiError) -> Self {
        LifecycleError::Invalid(e.to_string())
    }
}
