//! The shard's request error, classified once here into a Keystone error
//! response. Internal details are logged at this edge and never sent.

use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use keyfed_shared::error::ApiError;
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
