//! The shard's request error, classified once here into a Keystone error
//! response. Internal details are logged at this edge and never sent.

use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use keyfed_directory::DirectoryError;
use keyfed_shared::error::{ApiError, ErrorKind};
use keyfed_shared::token::TokenError;

/// Anything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Already classified for the client.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A token was rejected.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The federation directory failed or refused a write.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    /// A fault of ours (a panic-free "cannot happen"), logged, answered 500.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result of handlers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The client-facing classification.
    pub fn to_api(&self) -> ApiError {
        match self {
            Error::Api(e) => e.clone(),
            Error::Store(StoreError::Conflict(m)) => {
                ApiError::conflict(format!("Conflict occurred attempting to store {m}."))
            }
            Error::Store(StoreError::MissingReference(m)) => {
                ApiError::validation(format!("Invalid reference: {m}."))
            }
            Error::Store(StoreError::InUse(m)) => {
                ApiError::conflict(format!("Cannot delete: {m} is still in use."))
            }
            Error::Store(StoreError::Backend(_)) => {
                ApiError::unavailable("The identity store is temporarily unavailable.")
            }
            Error::Token(_) => ApiError::unauthorized(),
            Error::Directory(DirectoryError::AlreadyExists) => ApiError::conflict(
                "Conflict occurred attempting to store the entity: it already exists.",
            ),
            Error::Directory(DirectoryError::WrongRevision) => {
                ApiError::conflict("The entity changed concurrently; retry the request.")
            }
            Error::Directory(DirectoryError::NotFound) => {
                ApiError::new(ErrorKind::NotFound, "The entity no longer exists.")
            }
            Error::Directory(DirectoryError::Invalid(m)) => {
                ApiError::validation(format!("Invalid request: {m}"))
            }
            Error::Directory(DirectoryError::Unavailable(_)) => ApiError::unavailable(
                "The federation directory is temporarily unavailable; retry later.",
            ),
            Error::Internal(_) => ApiError::internal(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let api = self.to_api();
        match &self {
            Error::Store(StoreError::Backend(detail)) => {
                tracing::error!(error = %detail, "store backend failure")
            }
            Error::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            Error::Directory(e) => tracing::warn!(error = %e, "directory call failed"),
            Error::Token(e) => tracing::debug!(error = %e, "token rejected"),
            _ => {
                tracing::debug!(status = api.kind.status(), message = %api.message, "request refused")
            }
        }
        let mut response = api_response(&api);
        if matches!(self, Error::Store(StoreError::Backend(_))) {
            response.extensions_mut().insert(StoreFailure);
        }
        response
    }
}

/// Marks a response caused by a store backend failure, for metrics.
#[derive(Clone, Copy, Debug)]
pub struct StoreFailure;

pub use keyfed_http::api_response;
