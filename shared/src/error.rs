//! The error kinds every keyfed API answers with. A kind decides the HTTP
//! status and the Keystone `title`; the message is what the client reads and
//! must never carry internals (those are logged where the error is handled).

use serde_json::json;

/// Classification of a failed request, in Keystone's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is malformed or fails validation.
    Validation,
    /// 401: missing, invalid, expired or revoked credentials.
    Unauthorized,
    /// 403: authenticated, but the policy forbids the action.
    Forbidden,
    /// 404: no such entity or route.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: uniqueness or state conflict.
    Conflict,
    /// 413: the request body is too large.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 431: request headers too large.
    HeadersTooLarge,
    /// 500: a fault on our side (details only in logs).
    Internal,
    /// 501: the API exists in Keystone but keyfed does not implement it yet.
    NotImplemented,
    /// 503: a backend (database, shard) is unavailable; retrying may succeed.
    Unavailable,
}

impl ErrorKind {
    /// HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Validation => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::HeadersTooLarge => 431,
            ErrorKind::Internal => 500,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Unavailable => 503,
        }
    }

    /// Keystone's `title` for the status.
    pub fn title(self) -> &'static str {
        match self {
            ErrorKind::Validation => "Bad Request",
            ErrorKind::Unauthorized => "Unauthorized",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::NotFound => "Not Found",
            ErrorKind::MethodNotAllowed => "Method Not Allowed",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::PayloadTooLarge => "Request Entity Too Large",
            ErrorKind::UnsupportedMediaType => "Unsupported Media Type",
            ErrorKind::HeadersTooLarge => "Request Header Fields Too Large",
            ErrorKind::Internal => "Internal Server Error",
            ErrorKind::NotImplemented => "Not Implemented",
            ErrorKind::Unavailable => "Service Unavailable",
        }
    }

    /// Short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::HeadersTooLarge => "headers_too_large",
            ErrorKind::Internal => "internal",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

/// Why a member refused a request, for the gateway (machine-readable, in
/// the [`REFUSAL_HEADER`] of the answer; the message stays for people).
/// Retries key on this, never on a status or a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 409: the member does not own the tenant (the placement changed);
    /// retry at the owner the directory names now.
    NotOwner,
}

/// The response header naming a [`Refusal`]. Gateways read it and do not
/// pass it on to clients.
pub const REFUSAL_HEADER: &str = "x-keyfed-refusal";

impl Refusal {
    /// The header value.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotOwner => "not-owner",
        }
    }

    /// The refusal a header value names.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "not-owner" => Some(Refusal::NotOwner),
            _ => None,
        }
    }
}

/// An error as the client sees it: a kind and a safe message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// Why a member refused, for a gateway to act on.
    pub refusal: Option<Refusal>,
}

impl ApiError {
    /// Builds an error of `kind` with a client-safe message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            refusal: None,
        }
    }

    /// 409 from a member that does not own the tenant ([`Refusal::NotOwner`]).
    pub fn not_owner(message: impl Into<String>) -> Self {
        Self {
            refusal: Some(Refusal::NotOwner),
            ..Self::new(ErrorKind::Conflict, message)
        }
    }
    /// 400 with a message.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }
    /// 401 with Keystone's usual message.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorKind::Unauthorized,
            "The request you have made requires authentication.",
        )
    }
    /// 403 with Keystone's usual message.
    pub fn forbidden() -> Self {
        Self::new(
            ErrorKind::Forbidden,
            "You are not authorized to perform the requested action.",
        )
    }
    /// 404 naming the entity kind and id, as Keystone does.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("Could not find {kind}: {id}."))
    }
    /// 409 with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    /// 500 with a generic message (details belong in logs).
    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "An unexpected error prevented the server from fulfilling your request.",
        )
    }
    /// 503 with a message.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// The Keystone error body: `{"error": {"code", "title", "message"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "code": self.kind.status(),
            "title": self.kind.title(),
            "message": self.message,
        }})
    }
}
