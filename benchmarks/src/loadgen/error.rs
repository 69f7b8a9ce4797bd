//! The load generator's error type. Set-up failures carry the step that
//! failed so the operator can see which Keystone call was refused; errors
//! during the timed phase are not errors of this type but counted outcomes
//! (see [`super::stats`]).

/// Why a load-generator run could not be prepared or completed.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The base URL cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    /// A set-up request failed before the server answered.
    #[error("{step}: request failed")]
    Transport {
        /// The set-up step, e.g. "issuing the admin token".
        step: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A set-up request got a status other than the one Keystone documents.
    #[error("{step}: expected HTTP {expected}, got {status}: {detail}")]
    UnexpectedStatus {
        /// The set-up step.
        step: String,
        /// The documented status.
        expected: u16,
        /// The status received.
        status: u16,
        /// The Keystone error message, or the start of the body.
        detail: String,
    },
    /// A set-up response lacked something the run needs.
    #[error("{step}: {reason}")]
    BadResponse {
        /// The set-up step.
        step: String,
        /// What was missing or malformed.
        reason: String,
    },
    /// A latency histogram could not be created or merged.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// A worker task panicked or was cancelled.
    #[error("worker task failed: {0}")]
    Worker(String),
}

/// Renders an error with its chain of causes on one line
/// (`outer: inner: innermost`), as reqwest's own message omits the cause.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
