//! A client for one Keystone v3 endpoint — a standalone shard or a gateway
//! in front of the federation — as the real-client suites see it: its base
//! URL, the bootstrap admin's password, an HTTP client, and the `openstack`
//! CLI configured for it.

use crate::python::OpenStack;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::time::Duration;

/// One Keystone endpoint and the bootstrap admin's credentials.
#[derive(Clone, Debug)]
pub struct Keystone {
    /// Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub url: String,
    /// The bootstrap admin's password (user `admin`, project `admin`, domain
    /// `Default`).
    pub admin_password: String,
    http: reqwest::Client,
}

/// A token issued through `POST /v3/auth/tokens`.
#[derive(Clone, Debug)]
pub struct Token {
    /// The `X-Subject-Token` value.
    pub id: String,
    pub user_id: String,
    /// Set for a project-scoped token.
    pub project_id: Option<String>,
    /// The whole response body (`{"token": {...}}`).
    pub body: Value,
}

impl Keystone {
    /// A client for `url` (no trailing slash) whose bootstrap admin has
    /// `admin_password`.
    pub fn new(url: impl Into<String>, admin_password: impl Into<String>) -> anyhow::Result<Self> {
        Ok(Self {
            url: url.into(),
            admin_password: admin_password.into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// A client for `url` calling it with `http` (a client with its own
    /// trust and identity, e.g. for an mTLS listener).
    pub fn with_client(
        url: impl Into<String>,
        admin_password: impl Into<String>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            url: url.into(),
            admin_password: admin_password.into(),
            http,
        }
    }

    /// The `OS_*` variables of the bootstrap admin, scoped to project `admin`.
    pub fn os_env(&self) -> Vec<(String, String)> {
        self.os_env_for("admin", &self.admin_password, "admin")
    }

    /// The `OS_*` variables of a user of domain `Default`, scoped to a project
    /// of domain `Default`.
    pub fn os_env_for(&self, user: &str, password: &str, project: &str) -> Vec<(String, String)> {
        [
            ("OS_AUTH_URL", format!("{}/v3", self.url)),
            ("OS_USERNAME", user.to_owned()),
            ("OS_PASSWORD", password.to_owned()),
            ("OS_PROJECT_NAME", project.to_owned()),
            ("OS_USER_DOMAIN_NAME", "Default".to_owned()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".to_owned()),
            ("OS_IDENTITY_API_VERSION", "3".to_owned()),
            ("OS_INTERFACE", "public".to_owned()),
            ("OS_REGION_NAME", "RegionOne".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The `openstack` CLI as the bootstrap admin.
    pub fn openstack(&self) -> anyhow::Result<OpenStack> {
        OpenStack::new(self.os_env())
    }

    /// The `openstack` CLI as another user (domain `Default`).
    pub fn openstack_as(
        &self,
        user: &str,
        password: &str,
        project: &str,
    ) -> anyhow::Result<OpenStack> {
        OpenStack::new(self.os_env_for(user, password, project))
    }

    /// An HTTP client with a per-request timeout.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Issues a project-scoped token by password (user and project of
    /// domain `Default`).
    pub async fn token(&self, user: &str, password: &str, project: &str) -> anyhow::Result<Token> {
        let request = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": password,
            }}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
        }});
        let response = self
            .http
            .post(format!("{}/v3/auth/tokens", self.url))
            .json(&request)
            .send()
            .await?;
        let status = response.status();
        let id = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await?;
        if status != reqwest::StatusCode::CREATED {
            bail!("POST /v3/auth/tokens as {user} on {project}: {status}: {text}");
        }
        let id = id.context("POST /v3/auth/tokens answered without X-Subject-Token")?;
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("POST /v3/auth/tokens answered non-JSON: {text}"))?;
        let user_id = body["token"]["user"]["id"]
            .as_str()
            .with_context(|| format!("token without user.id: {body}"))?
            .to_owned();
        let project_id = body["token"]["project"]["id"].as_str().map(str::to_owned);
        Ok(Token {
            id,
            user_id,
            project_id,
            body,
        })
    }

    /// A token of the bootstrap admin, scoped to project `admin`.
    pub async fn admin_token(&self) -> anyhow::Result<Token> {
        self.token("admin", &self.admin_password, "admin").await
    }

    /// A request with `token`: (status, JSON body or `null`).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-Auth-Token", token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// `GET /v3/auth/tokens` validating `subject` with `auth`; returns the
    /// status and body.
    pub async fn validate_token(
        &self,
        auth: &str,
        subject: &str,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let response = self
            .http
            .get(format!("{}/v3/auth/tokens", self.url))
            .header("X-Auth-Token", auth)
            .header("X-Subject-Token", subject)
            .send()
            .await?;
        Ok((response.status(), response.text().await?))
    }
}
