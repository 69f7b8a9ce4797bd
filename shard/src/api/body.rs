//! Request bodies and query strings: a JSON extractor whose every rejection
//! is a Keystone error, and typed field readers that name the bad field.

use crate::error::Error;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use keyfed_shared::auth::MAX_NAME_LEN;
use keyfed_shared::error::{ApiError, ErrorKind};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A JSON object body.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        if !content_type.starts_with("application/json") {
            return Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "Request body must be JSON (Content-Type: application/json).",
            )
            .into());
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|_| ApiError::validation("Malformed JSON in request body."))?;
        if !value.is_object() {
            return Err(ApiError::validation("Request body must be a JSON object.").into());
        }
        Ok(JsonBody(value))
    }
}

/// A body as bytes, whatever its content type (axum's `Bytes`, whose
/// rejections — a body over the limit — are Keystone errors).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorKind::PayloadTooLarge, "Request body is too large.")
            } else {
                ApiError::validation("Could not read the request body.")
            }
        })?;
        Ok(RawBody(bytes))
    }
}

/// Path parameters (axum's `Path`), whose rejections are Keystone errors:
/// a parameter that is not UTF-8 once percent-decoded names nothing that
/// exists, so 404 (Keystone decodes it lossily and finds nothing either).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(_) => {
                Err(ApiError::new(ErrorKind::NotFound, "The resource could not be found.").into())
            }
        }
    }
}

/// `body[key]` as an object, e.g. the `project` in `{"project": {...}}`.
pub fn section<'a>(body: &'a Value, key: &str) -> Result<&'a Map<String, Value>, ApiError> {
    body.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::validation(format!("Expecting to find {key} in request body.")))
}

fn bad(field: &str, what: &str) -> ApiError {
    ApiError::validation(format!("Invalid input for field '{field}': {what}."))
}

/// An optional string field (null counts as absent).
pub fn opt_str(
    obj: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(bad(key, "too long")),
        Some(Value::String(s)) if s.contains('\0') => Err(bad(key, "must not contain NUL")),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(key, "expected a string")),
    }
}

/// A required, non-blank name.
pub fn name(obj: &Map<String, Value>) -> Result<String, ApiError> {
    match opt_str(obj, "name", MAX_NAME_LEN)? {
        Some(n) if !n.trim().is_empty() => Ok(n),
        Some(_) => Err(bad("name", "must not be blank")),
        None => Err(bad("name", "'name' is a required property")),
    }
}

/// An optional name that, when present, must not be blank.
pub fn opt_name(obj: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match opt_str(obj, "name", MAX_NAME_LEN)? {
        Some(n) if n.trim().is_empty() => Err(bad("name", "must not be blank")),
        other => Ok(other),
    }
}

/// An optional boolean.
pub fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(key, "expected a boolean")),
    }
}

/// An optional list of strings (e.g. project tags).
pub fn opt_strings(obj: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() <= 80 => items
            .iter()
            .map(|v| match v {
                Value::String(s) if !s.is_empty() && s.len() <= 255 => Ok(s.clone()),
                _ => Err(bad(key, "expected non-empty strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad(key, "expected a list of at most 80 strings")),
    }
}

/// Rejects a body that tries to change an immutable `id`.
pub fn check_id(obj: &Map<String, Value>, id: &str) -> Result<(), ApiError> {
    match obj.get("id") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s == id => Ok(()),
        Some(_) => Err(bad("id", "the id cannot be changed")),
    }
}

/// Attributes that are not part of an entity's schema (Keystone keeps them,
/// e.g. a user's `email`), minus the ones it computes itself.
pub fn extras(obj: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| !known.contains(&k.as_str()) && k.as_str() != "links")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Query parameters (last value wins).
pub type Query = HashMap<String, String>;

/// Keystone's reading of a boolean query parameter: absent is `None`; `0`
/// and `false` (any case) are false; anything else, even empty, is true.
pub fn query_flag(q: &Query, key: &str) -> Option<bool> {
    q.get(key)
        .map(|v| !(v == "0" || v.eq_ignore_ascii_case("false")))
}

/// Extracts the query string as a map; never rejects (bad percent-encoding
/// decodes lossily, as Keystone's WSGI stack does).
pub struct QueryMap(pub Query);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(QueryMap(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}
