//! The federation view's error kinds. Token rejections are
//! [`keyfed_shared::token::TokenError`] (all of them a 401 to the client);
//! what is here concerns the view's start-up.

use keyfed_directory::DirectoryError;

/// Why the federation view could not start.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The directory refused a request for a reason that retrying will not
    /// fix (a misconfigured namespace, for instance). An unreachable
    /// directory is not an error: the view starts not ready and keeps
    /// retrying.
    #[error("the directory refused the federation view: {0}")]
    Directory(#[source] DirectoryError),
    /// A follower task ended before reporting its first snapshot (the
    /// runtime is shutting down).
    #[error("the federation view's follower for bucket {0} stopped during start-up")]
    Stopped(&'static str),
    /// The trust anchor is unusable (the CA certificate's key).
    #[error("the federation view's trust anchor: {0}")]
    Trust(String),
}
