//! A client request as the gateway handles it: method, path, query,
//! headers and the whole body (bounded by `server.max_body_bytes`).

use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use bytes::Bytes;
use serde_json::Value;

use crate::error::{GatewayError, Result};
use crate::proxy::{Outgoing, AUTH_HEADER};
use keyfed_shared::error::ApiError;

/// One client request.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The method.
    pub method: Method,
    /// The URI as received (path and query; see [`Incoming::path`]).
    pub uri: Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Incoming {
    /// The path, e.g. `/v3/projects`.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The raw query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// Path and query, as sent to a shard.
    pub fn path_and_query(&self) -> String {
        match self.query() {
            Some(q) if !q.is_empty() => format!("{}?{q}", self.path()),
            _ => self.path().to_owned(),
        }
    }

    /// The same request, to forward as-is.
    pub fn forward(&self) -> Outgoing {
        Outgoing::new(self.method.clone(), self.path_and_query(), &self.headers)
            .body(self.body.clone())
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A header's value as received (cheap to clone into a response).
    pub fn header_value(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.get(name)
    }

    /// The caller's token, if sent.
    pub fn auth_token(&self) -> Option<&str> {
        self.header(AUTH_HEADER)
    }

    /// A query flag as Keystone reads it: present and not `0`/`false`.
    pub fn flag(&self, key: &str) -> bool {
        let Some(q) = self.query() else { return false };
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == key)
            .is_some_and(|(_, v)| !(v == "0" || v.eq_ignore_ascii_case("false")))
    }

    /// The body as a JSON object (400 otherwise).
    pub fn json(&self) -> Result<Value> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) if v.is_object() => Ok(v),
            _ => Err(GatewayError::Api(ApiError::validation(
                "The request body must be a JSON object.",
            ))),
        }
    }
}
