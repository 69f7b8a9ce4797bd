//! The gateway's one error type, classified once into a Keystone error body
//! (`{"error": {"code", "title", "message"}}`) and status. Messages for
//! upstream and directory failures never name shards or internals: those
//! are logged here, where the error is handled.

use axum::response::{IntoResponse, Response};
use keyfed_directory::DirectoryError;
use keyfed_federation::ViewError;
use keyfed_shared::error::{ApiError, ErrorKind};
use keyfed_shared::ids::ShardId;

use crate::config::ConfigError;

/// Everything that can go wrong in the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A client-facing error, already classified (bad input, 401, 404...).
    #[error("{0}")]
    Api(#[from] ApiError),
    /// A shard could not be reached, timed out or answered garbage.
    #[error("shard {shard} failed: {reason}")]
    Upstream {
        /// The shard called.
        shard: ShardId,
        /// What happened (logged only).
        reason: String,
    },
    /// No member can take the request (none active, or the owner unknown).
    #[error("no federation member can serve the request")]
    NoMember,
    /// The directory refused or could not be reached.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    /// A fault in the gateway itself.
    #[error("internal: {0}")]
    Internal(String),
    /// Start-up: the configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Start-up: the federation view could not start.
    #[error(transparent)]
    View(#[from] ViewError),
    /// Start-up or serving: an I/O error (bind, accept).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Marker put on a response produced from an upstream failure, so the edge
/// can count it.
#[derive(Clone, Debug)]
pub struct UpstreamFailure(pub ShardId);

impl GatewayError {
    /// A client-facing error of `kind`.
    pub fn api(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Api(ApiError::new(kind, message))
    }

    /// The Keystone error the client sees; internals are logged here.
    pub fn classify(&self) -> ApiError {
        match self {
            Self::Api(api) => api.clone(),
            Self::Upstream { shard, reason } => {
                tracing::warn!(%shard, %reason, "shard unavailable");
                unavailable()
            }
            Self::NoMember => {
                tracing::warn!("no federation member can serve the request");
                unavailable()
            }
            Self::Directory(e) => {
                tracing::warn!(error = %e, "directory call failed");
                ApiError::unavailable(
                    "The federation directory is temporarily unavailable; retry later.",
                )
            }
            Self::Internal(_) | Self::Config(_) | Self::View(_) | Self::Io(_) => {
                tracing::error!(error = %self, "internal error");
                ApiError::internal()
            }
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::unavailable("The service is temporarily unavailable; retry later.")
}

pub use keyfed_http::api_response;

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut response = api_response(&self.classify());
        if let Self::Upstream { shard, .. } = self {
            response.extensions_mut().insert(UpstreamFailure(shard));
        }
        response
    }
}

/// Result of gateway operations.
pub type Result<T, E = GatewayError> = std::result::Result<T, E>;
