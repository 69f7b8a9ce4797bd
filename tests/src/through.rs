//! Requests through a federation's gateways, for both harnesses: the
//! in-process [`crate::gateway::TestFederation`] and the process-based
//! [`crate::cluster::Cluster`].

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// A federation with gateways to send Keystone requests through.
#[async_trait::async_trait]
pub trait Gateways: Sync {
    /// The HTTP client (with a per-request timeout).
    fn http(&self) -> &reqwest::Client;
    /// The base URL of gateway `g`.
    fn gateway_url(&self, g: usize) -> &str;
    /// The bootstrap admin's password (user `admin`).
    fn admin_password(&self) -> &str;
    /// Where gateway `g` serves `/metrics`: its own URL in process, its
    /// admin listener's for processes.
    fn metrics_url(&self, g: usize) -> String {
        format!("{}/metrics", self.gateway_url(g))
    }

    /// `POST /v3/auth/tokens` through gateway `g`: (status, X-Subject-Token,
    /// body).
    async fn auth(&self, g: usize, body: &Value) -> anyhow::Result<(u16, Option<String>, Value)> {
        let r = self
            .http()
            .post(format!("{}/v3/auth/tokens", self.gateway_url(g)))
            .json(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let token = r
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = r.json().await.unwrap_or(Value::Null);
        Ok((status, token, body))
    }

    /// A password token for `user` (domain Default) through gateway `g`,
    /// scoped to project `project` (by name in Default) or unscoped.
    async fn password_token(
        &self,
        g: usize,
        user: &str,
        password: &str,
        project: Option<&str>,
    ) -> anyhow::Result<String> {
        let scope = match project {
            Some(p) => json!({"project": {"name": p, "domain": {"name": "Default"}}}),
            None => json!("unscoped"),
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": scope}});
        let (status, token, body) = self.auth(g, &body).await?;
        if status != 201 {
            bail!("token for {user} through gateway {g}: {status} {body}");
        }
        token.context("no X-Subject-Token")
    }

    /// The bootstrap admin's token (project `admin`) through gateway `g`.
    async fn admin_token(&self, g: usize) -> anyhow::Result<String> {
        self.password_token(g, "admin", self.admin_password(), Some("admin"))
            .await
    }

    /// The id of the one `collection` entity (`roles`, `users`,
    /// `projects`, …) named `name`, listed through gateway `g` with `token`.
    async fn id_by_name(
        &self,
        g: usize,
        token: &str,
        collection: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        let path = format!("/v3/{collection}?name={name}");
        let (status, body) = self
            .call(g, reqwest::Method::GET, &path, token, None)
            .await?;
        if status != 200 {
            bail!("listing {path} through gateway {g}: {status} {body}");
        }
        body[collection][0]["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {collection} named {name}: {body}"))
    }

    /// A token-method rescope of `token` to project `project` (by id)
    /// through gateway `g`: (status, X-Subject-Token, body).
    async fn rescope(
        &self,
        g: usize,
        token: &str,
        project: &str,
    ) -> anyhow::Result<(u16, Option<String>, Value)> {
        self.auth(
            g,
            &json!({"auth": {
                "identity": {"methods": ["token"], "token": {"id": token}},
                "scope": {"project": {"id": project}}}}),
        )
        .await
    }

    /// A request through gateway `g` with `token`: (status, JSON body).
    async fn call(
        &self,
        g: usize,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http()
            .request(method, format!("{}{path}", self.gateway_url(g)))
            .header("x-auth-token", token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// `GET /v3/auth/tokens` for `subject` with `auth` through gateway `g`:
    /// the status.
    async fn validate(&self, g: usize, auth: &str, subject: &str) -> anyhow::Result<u16> {
        self.token_request(g, reqwest::Method::GET, auth, subject)
            .await
    }

    /// `GET`, `HEAD` or `DELETE /v3/auth/tokens` for `subject` with `auth`
    /// through gateway `g`: the status.
    async fn token_request(
        &self,
        g: usize,
        method: reqwest::Method,
        auth: &str,
        subject: &str,
    ) -> anyhow::Result<u16> {
        Ok(self
            .http()
            .request(method, format!("{}/v3/auth/tokens", self.gateway_url(g)))
            .header("x-auth-token", auth)
            .header("x-subject-token", subject)
            .send()
            .await?
            .status()
            .as_u16())
    }

    /// `GET /v3/auth/tokens` for `subject` with `auth` through gateway `g`:
    /// the status and the JSON body (the rendered token).
    async fn validate_body(
        &self,
        g: usize,
        auth: &str,
        subject: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http()
            .get(format!("{}/v3/auth/tokens", self.gateway_url(g)))
            .header("x-auth-token", auth)
            .header("x-subject-token", subject)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// The sum of a counter family in gateway `g`'s `/metrics`.
    async fn metric_sum(&self, g: usize, name: &str) -> anyhow::Result<f64> {
        let text = self
            .http()
            .get(self.metrics_url(g))
            .send()
            .await?
            .text()
            .await?;
        Ok(metric_family_sum(&text, name))
    }
}

/// The sum of the samples of metric family `name` in a Prometheus text
/// exposition: samples named exactly `name` (any labels), or exactly the
/// sample `name` when it carries labels (`name{shard="s"}`). A family whose
/// name merely starts with `name` (`signer_lookups_shed` for
/// `signer_lookups`) is not counted.
pub fn metric_family_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(sample, _)| *sample == name || sample.split('{').next() == Some(name))
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// The claims of `token`, read without verification (to forge look-alikes
/// in tests of what validators refuse).
pub fn claims(token: &str) -> keyfed_shared::token::Claims {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not a keyfed token: {e}"))
}
