//! The few Keystone v3 calls the set-up needs, in plain Keystone v3: issue a
//! token, find a project by name, create a project. Also the base URL.

use super::config::Credentials;
use super::error::{chain, LoadgenError};
use reqwest::header::HeaderValue;
use reqwest::{Client, Response, StatusCode, Url};
use serde_json::{json, Value};
use std::time::Duration;

/// The header carrying the caller's token.
pub const AUTH_TOKEN: &str = "x-auth-token";
/// The header carrying the issued or validated token.
pub const SUBJECT_TOKEN: &str = "x-subject-token";

/// A Keystone base URL such as `http://127.0.0.1:5000`, to which `/v3/...`
/// paths are appended. A trailing `/v3` (as in `OS_AUTH_URL`) is dropped.
#[derive(Debug, Clone)]
pub struct Endpoint {
    base: String,
}

impl Endpoint {
    /// Parses and checks a base URL. Only `http` is accepted: the generator
    /// is built without TLS, and keeping TLS out of the loop keeps the
    /// figures about the server.
    pub fn parse(url: &str) -> Result<Self, LoadgenError> {
        let invalid = |reason: &str| LoadgenError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let mut base = url.trim().trim_end_matches('/');
        if let Some(stripped) = base.strip_suffix("/v3") {
            base = stripped.trim_end_matches('/');
        }
        let parsed = Url::parse(base).map_err(|e| invalid(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(invalid("only http:// is supported (this build has no TLS)"));
        }
        if parsed.host_str().is_none() {
            return Err(invalid("no host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("a base URL takes no query or fragment"));
        }
        Ok(Self {
            base: base.to_owned(),
        })
    }

    /// The base URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The URL of a path at the server's root, e.g. `root("healthz")`.
    pub fn root(&self, path: &str) -> Result<Url, LoadgenError> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        Url::parse(&url).map_err(|e| LoadgenError::InvalidUrl {
            url,
            reason: e.to_string(),
        })
    }

    /// The URL of a v3 resource, e.g. `v3("auth/tokens")`.
    pub fn v3(&self, path: &str) -> Result<Url, LoadgenError> {
        let url = format!("{}/v3/{}", self.base, path.trim_start_matches('/'));
        Url::parse(&url).map_err(|e| LoadgenError::InvalidUrl {
            url,
            reason: e.to_string(),
        })
    }
}

/// Builds an HTTP/1.1 client that keeps at most one idle connection, so a
/// worker issuing one request at a time reuses a single connection. Proxy
/// variables (`HTTP_PROXY`, ...) are ignored: requests go straight to the
/// endpoint given.
pub fn http_client(timeout: Duration) -> Result<Client, LoadgenError> {
    Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
        .map_err(LoadgenError::Client)
}

/// What a token is scoped to when issued with the password method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScope {
    /// An explicitly unscoped token (`"scope": "unscoped"`), even for a user
    /// with a default project.
    Unscoped,
    /// The credentials' project, by name and domain name.
    Project,
}

fn project_scope(credentials: &Credentials) -> Value {
    json!({"project": {
        "name": credentials.project,
        "domain": {"name": credentials.project_domain},
    }})
}

/// The body of a password authentication.
pub fn password_body(credentials: &Credentials, scope: AuthScope) -> Value {
    let scope = match scope {
        AuthScope::Unscoped => json!("unscoped"),
        AuthScope::Project => project_scope(credentials),
    };
    json!({"auth": {
        "identity": {
            "methods": ["password"],
            "password": {"user": {
                "name": credentials.username,
                "domain": {"name": credentials.user_domain},
                "password": credentials.password,
            }},
        },
        "scope": scope,
    }})
}

/// The body of a token authentication that rescopes `token` to the
/// credentials' project.
pub fn rescope_body(credentials: &Credentials, token: &str) -> Value {
    json!({"auth": {
        "identity": {"methods": ["token"], "token": {"id": token}},
        "scope": project_scope(credentials),
    }})
}

/// Short human text for an error response: Keystone's `error.message` when
/// the body has one, else the start of the body.
pub fn error_detail(body: &[u8]) -> String {
    const MAX: usize = 200;
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(message) = value.pointer("/error/message").and_then(Value::as_str) {
            return message.chars().take(MAX).collect();
        }
    }
    String::from_utf8_lossy(body).chars().take(MAX).collect()
}

/// An issued token: its id (the `X-Subject-Token` header) and body.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token id.
    pub id: String,
    /// The response body (`{"token": {...}}`).
    pub body: Value,
}

impl IssuedToken {
    /// The id of the scope project's domain, if the token is project-scoped.
    pub fn project_domain_id(&self) -> Option<&str> {
        self.body
            .pointer("/token/project/domain/id")
            .and_then(Value::as_str)
    }
}

/// A Keystone client for the set-up calls.
#[derive(Debug, Clone)]
pub struct Keystone {
    client: Client,
    endpoint: Endpoint,
}

impl Keystone {
    /// A client for `endpoint`; requests time out after `timeout`.
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Result<Self, LoadgenError> {
        Ok(Self {
            client: http_client(timeout)?,
            endpoint,
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `POST /v3/auth/tokens` with `body`; expects 201.
    pub async fn issue(&self, step: &str, body: &Value) -> Result<IssuedToken, LoadgenError> {
        let response = self
            .client
            .post(self.endpoint.v3("auth/tokens")?)
            .json(body)
            .send()
            .await
            .map_err(|source| transport(step, source))?;
        let response = expect(step, response, StatusCode::CREATED).await?;
        let id = response
            .headers()
            .get(SUBJECT_TOKEN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| bad_response(step, "no X-Subject-Token header"))?;
        let body = response
            .json::<Value>()
            .await
            .map_err(|e| bad_response(step, &chain(&e)))?;
        Ok(IssuedToken { id, body })
    }

    /// `GET /v3/projects?name=..&domain_id=..`; the id of the project with
    /// that name in that domain, if any.
    pub async fn find_project(
        &self,
        token: &str,
        name: &str,
        domain_id: &str,
    ) -> Result<Option<String>, LoadgenError> {
        let step = format!("looking up project {name}");
        let response = self
            .client
            .get(self.endpoint.v3("projects")?)
            .query(&[("name", name), ("domain_id", domain_id)])
            .header(AUTH_TOKEN, header_value(&step, token)?)
            .send()
            .await
            .map_err(|source| transport(&step, source))?;
        let body = expect(&step, response, StatusCode::OK)
            .await?
            .json::<Value>()
            .await
            .map_err(|e| bad_response(&step, &chain(&e)))?;
        let projects = body
            .get("projects")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_response(&step, "no \"projects\" list"))?;
        // Filter again: the server may ignore an unsupported filter.
        let found = projects.iter().find(|p| {
            p.get("name").and_then(Value::as_str) == Some(name)
                && p.get("domain_id").and_then(Value::as_str) == Some(domain_id)
        });
        Ok(found
            .and_then(|p| p.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// `POST /v3/projects`; expects 201 and returns the new project's id.
    pub async fn create_project(
        &self,
        token: &str,
        name: &str,
        domain_id: &str,
    ) -> Result<String, LoadgenError> {
        let step = format!("creating project {name}");
        let body = json!({"project": {
            "name": name,
            "domain_id": domain_id,
            "description": "created by keyfed loadgen for the project-get scenario",
        }});
        let response = self
            .client
            .post(self.endpoint.v3("projects")?)
            .header(AUTH_TOKEN, header_value(&step, token)?)
            .json(&body)
            .send()
            .await
            .map_err(|source| transport(&step, source))?;
        let body = expect(&step, response, StatusCode::CREATED)
            .await?
            .json::<Value>()
            .await
            .map_err(|e| bad_response(&step, &chain(&e)))?;
        body.pointer("/project/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad_response(&step, "no project id in the response"))
    }
}

/// A header value from a token, or a set-up error naming the step.
pub fn header_value(step: &str, token: &str) -> Result<HeaderValue, LoadgenError> {
    HeaderValue::from_str(token)
        .map_err(|_| bad_response(step, "token is not a valid header value"))
}

async fn expect(
    step: &str,
    response: Response,
    expected: StatusCode,
) -> Result<Response, LoadgenError> {
    let status = response.status();
    if status == expected {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(LoadgenError::UnexpectedStatus {
        step: step.to_owned(),
        expected: expected.as_u16(),
        status: status.as_u16(),
        detail: error_detail(&body),
    })
}

fn transport(step: &str, source: reqwest::Error) -> LoadgenError {
    LoadgenError::Transport {
        step: step.to_owned(),
        source,
    }
}

fn bad_response(step: &str, reason: &str) -> LoadgenError {
    LoadgenError::BadResponse {
        step: step.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_base_and_os_auth_url_forms() {
        for url in [
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5000/",
            "http://127.0.0.1:5000/v3",
            "http://127.0.0.1:5000/v3/",
        ] {
            let endpoint = Endpoint::parse(url).expect("valid");
            assert_eq!(endpoint.as_str(), "http://127.0.0.1:5000");
            assert_eq!(
                endpoint.v3("auth/tokens").expect("url").as_str(),
                "http://127.0.0.1:5000/v3/auth/tokens"
            );
        }
        let prefixed = Endpoint::parse("http://host/identity/v3").expect("valid");
        assert_eq!(
            prefixed.v3("projects").expect("url").as_str(),
            "http://host/identity/v3/projects"
        );
    }

    #[test]
    fn endpoint_rejects_https_and_garbage() {
        assert!(Endpoint::parse("https://keystone.example:5000/v3").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }

    #[test]
    fn error_detail_prefers_keystone_message() {
        let body = br#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#;
        assert_eq!(
            error_detail(body),
            "The request you have made requires authentication."
        );
        assert_eq!(error_detail(b"plain text"), "plain text");
    }
}
