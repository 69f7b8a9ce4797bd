//! The crate's error kinds. Messages name what is wrong, never a secret.

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a key or certificate file.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A file that must not be overwritten already exists.
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(String),
    /// Input that is not a well-formed certificate, CSR or key.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// A certificate or CSR that is well formed but not acceptable.
    #[error("{0}")]
    Rejected(String),
    /// Generation or signing failed.
    #[error("certificate generation: {0}")]
    Generate(String),
}

impl PkiError {
    pub(crate) fn malformed(what: &'static str, reason: impl ToString) -> Self {
        PkiError::Malformed {
            what,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn rejected(reason: impl Into<String>) -> Self {
        PkiError::Rejected(reason.into())
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Generate(e.to_string())
    }
}
