//! Requests through the cluster's gateways.

use anyhow::Context;

use super::Cluster;
use crate::through::Gateways;

impl Gateways for Cluster {
    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn gateway_url(&self, g: usize) -> &str {
        self.gateway(g)
    }

    fn admin_password(&self) -> &str {
        &self.admin_password
    }

    fn metrics_url(&self, g: usize) -> String {
        format!("{}/metrics", self.gateways[g].admin_url)
    }
}

impl Cluster {
    /// Creates projects through gateway 0 until one lands on each of
    /// `shards`; returns their ids in that order.
    pub async fn projects_on(&self, admin: &str, shards: &[&str]) -> anyhow::Result<Vec<String>> {
        let mut found: Vec<Option<String>> = vec![None; shards.len()];
        for i in 0..60 {
            let body = serde_json::json!({"project": {"name": format!("p{i}")}});
            let (status, body) = self
                .call(0, reqwest::Method::POST, "/v3/projects", admin, Some(&body))
                .await?;
            anyhow::ensure!(status == 201, "creating a project: {status} {body}");
            let id = body["project"]["id"]
                .as_str()
                .context("a project without an id")?
                .to_owned();
            let owner = self.owner_of_project(&id)?;
            if let Some(k) = shards.iter().position(|s| *s == owner) {
                found[k].get_or_insert(id);
            }
            if found.iter().all(Option::is_some) {
                return Ok(found.into_iter().flatten().collect());
            }
        }
        anyhow::bail!("60 projects and still not one on each of {shards:?}")
    }

    /// `method path` sent to gateway `g` byte for byte, as an attacker
    /// would (an HTTP client library would normalise the path first): with
    /// `token` as `X-Auth-Token` and an empty JSON object as the body.
    /// Returns the status and the body (JSON, or `Null`).
    pub async fn raw(
        &self,
        g: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self
            .gateway(g)
            .strip_prefix("http://")
            .context("a plain-HTTP gateway")?;
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        let auth = token.map_or(String::new(), |t| format!("X-Auth-Token: {t}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut answer),
        )
        .await??;
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status line in {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }
}

impl super::ShardProcess {
    /// Its token-signing key file.
    pub fn signing_key_file(&self) -> std::path::PathBuf {
        self.config
            .with_file_name(format!("{}-signing-key.pem", self.id))
    }
}
