//! Calls to shards: one request forwarded to one member's URL with the
//! headers Keystone needs, bounded by the upstream timeouts. Any transport
//! failure becomes [`GatewayError::Upstream`] (a 503 to the client) and is
//! counted per shard.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use keyfed_shared::error::{ErrorKind, Refusal, REFUSAL_HEADER};
use keyfed_shared::ids::ShardId;
use serde_json::Value;

use crate::error::{GatewayError, Result};
use crate::health::Verdict;
use crate::state::Gateway;

/// The header carrying the caller's token.
pub const AUTH_HEADER: &str = "x-auth-token";
/// The header carrying the token being validated, revoked or issued.
pub const SUBJECT_HEADER: &str = "x-subject-token";

/// Request headers forwarded to shards.
const FORWARDED: [&str; 3] = [AUTH_HEADER, SUBJECT_HEADER, "content-type"];
/// Response headers returned to clients.
const KEPT: [&str; 4] = [
    SUBJECT_HEADER,
    "content-type",
    "www-authenticate",
    "location",
];

/// A request to send to a shard.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// Path and query, e.g. `/v3/projects?name=x`.
    pub path_and_query: String,
    /// Headers to forward (only [`FORWARDED`] ones are sent).
    pub headers: HeaderMap,
    /// The body, as received.
    pub body: Bytes,
}

impl Outgoing {
    /// A request carrying the client's forwardable headers.
    pub fn new(method: Method, path_and_query: impl Into<String>, from: &HeaderMap) -> Self {
        let mut headers = HeaderMap::new();
        for name in FORWARDED {
            if let Some(v) = from.get(name) {
                headers.insert(HeaderName::from_static(name), v.clone());
            }
        }
        Self {
            method,
            path_and_query: path_and_query.into(),
            headers,
            body: Bytes::new(),
        }
    }

    /// With a JSON body (and its content type).
    pub fn json(mut self, body: &Value) -> Self {
        self.body = Bytes::from(body.to_string());
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self
    }

    /// With a raw body.
    pub fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }
}

/// A shard's answer.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Its status.
    pub status: StatusCode,
    /// The headers kept for the client.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// Why it refused, if it said so ([`REFUSAL_HEADER`]; not passed on).
    pub refusal: Option<Refusal>,
}

impl Upstream {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A header's value as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl IntoResponse for Upstream {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        *response.headers_mut() = self.headers;
        response
    }
}

/// The URL of `path_and_query` on the member at `base`, only if parsing
/// it changed nothing of the path: a URL parser collapses dot segments
/// (also percent-encoded ones) and reads `\\` as `/`, which would send the
/// request to another route than the one the gateway classified. Routing
/// refuses such paths already ([`crate::routes::is_normalised`]); this is
/// the check where the URL is built.
pub(crate) fn upstream_url(base: &str, path_and_query: &str) -> Option<reqwest::Url> {
    let base = base.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}{path_and_query}")).ok()?;
    let base_path = reqwest::Url::parse(base)
        .ok()?
        .path()
        .trim_end_matches('/')
        .to_owned();
    let path = path_and_query.split('?').next().unwrap_or_default();
    (url.path() == format!("{base_path}{path}")).then_some(url)
}

impl Gateway {
    /// Sends `req` to `shard` and reads its whole answer.
    pub async fn call(&self, shard: &ShardId, req: &Outgoing) -> Result<Upstream> {
        let member = self.view.member(shard).ok_or(GatewayError::NoMember)?;
        let url = upstream_url(&member.url, &req.path_and_query).ok_or_else(|| {
            GatewayError::api(ErrorKind::NotFound, "The resource could not be found.")
        })?;
        if self.health.is_down(shard) {
            self.metrics.upstream_shed(shard.as_str());
            return Err(GatewayError::Upstream {
                shard: shard.clone(),
                reason: "marked down; failing fast until a probe answers".into(),
            });
        }
        self.metrics.upstream_request(shard.as_str());
        let failed = |reason: String| {
            self.metrics.upstream_error(shard.as_str());
            if self.health.failed(shard) == Verdict::WentDown {
                self.metrics.member_went_down(shard.as_str());
                tracing::warn!(%shard, "member marked down after consecutive failures; failing fast for its tenants");
            }
            GatewayError::Upstream {
                shard: shard.clone(),
                reason,
            }
        };
        let response = self
            .http
            .request(req.method.clone(), url)
            .headers(req.headers.clone())
            .headers(self.forwarded.clone())
            .body(req.body.clone())
            .send()
            .await
            .map_err(|e| failed(format!("{} {}: {e}", req.method, req.path_and_query)))?;
        let status = response.status();
        let mut headers = HeaderMap::new();
        for name in KEPT {
            if let Some(v) = response.headers().get(name) {
                headers.insert(HeaderName::from_static(name), v.clone());
            }
        }
        let refusal = response
            .headers()
            .get(REFUSAL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(Refusal::from_code);
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(format!("reading the answer: {e}")))?;
        self.health.answered(shard);
        if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            tracing::warn!(%shard, %status, path = %req.path_and_query, "shard answered a server error");
        }
        Ok(Upstream {
            status,
            headers,
            body,
            refusal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::upstream_url;

    #[test]
    fn an_upstream_url_is_the_path_as_classified_or_none() {
        let url = upstream_url("https://10.0.0.1:5000/", "/v3/projects/p1?x=1");
        assert_eq!(
            url.map(String::from).as_deref(),
            Some("https://10.0.0.1:5000/v3/projects/p1?x=1")
        );
        let based = upstream_url("http://h/identity", "/v3/users/u1");
        assert_eq!(
            based.map(String::from).as_deref(),
            Some("http://h/identity/v3/users/u1")
        );
        for collapsing in [
            "/v3/auth/../../metrics",
            "/v3/auth/%2e%2E/%2e./internal/v1/join",
            "/v3/domains/.%2e/.%2e/internal/v1/tenants?x=1",
            "/v3/users/u1\\..\\..\\readyz",
        ] {
            assert!(
                upstream_url("http://h:1", collapsing).is_none(),
                "{collapsing}"
            );
        }
    }
}
