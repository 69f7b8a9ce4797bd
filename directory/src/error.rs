//! The directory's error kinds. Every backend maps its failures onto these, so
//! callers decide once: retry a CAS loop, report a conflict, or degrade and
//! keep serving from cached state.

/// What went wrong with a directory call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// `create` found a live value under the key.
    #[error("the key already exists")]
    AlreadyExists,
    /// A compare-and-swap write expected a revision the key no longer has:
    /// someone else wrote it first. Re-read and retry.
    #[error("the key has changed since the expected revision")]
    WrongRevision,
    /// A compare-and-swap write targeted a key that holds no value (never
    /// written, or deleted).
    #[error("the key does not exist")]
    NotFound,
    /// The backend could not be reached or did not answer within the
    /// configured timeout, or failed to persist. The outcome of a write that
    /// failed this way is unknown: it may still be applied. Callers should
    /// degrade (serve from what they have) and retry later.
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
    /// The request itself is malformed (empty key, bad namespace, ...).
    #[error("invalid directory request: {0}")]
    Invalid(String),
}

impl DirectoryError {
    /// Whether the same call may succeed if repeated later unchanged.
    /// Conflicts (`WrongRevision`, `AlreadyExists`) need a re-read first and
    /// are not counted as retryable here.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A short, stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AlreadyExists => "already_exists",
            Self::WrongRevision => "wrong_revision",
            Self::NotFound => "not_found",
            Self::Unavailable(_) => "unavailable",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// Result of a directory call.
pub type Result<T, E = DirectoryError> = std::result::Result<T, E>;
