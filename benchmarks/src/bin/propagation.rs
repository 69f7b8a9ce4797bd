//! `propagation`: how long a catalog change made through one Keystone
//! endpoint takes to show in the tokens another endpoint validates.
//!
//! It authenticates at `--write` (project-scoped, so the body carries a
//! catalog), creates one service, then makes `--changes` endpoint changes
//! through `--write`, cycling create → update (new URL) → delete. After each
//! write is acknowledged, every `--observe` endpoint (gateways, shards) is
//! polled with `GET /v3/auth/tokens` of that token until its catalog shows
//! the change; the delay from the acknowledgement to the first body showing
//! it is recorded per observer. Prints p50/p99/max per observer (or JSON).
//!
//! Credentials as for `loadgen` (flags or `OS_*` variables).

use anyhow::{bail, Context};
use clap::Parser;
use keyfed_benchmarks::cli::CredentialArgs;
use keyfed_benchmarks::loadgen::keystone::{
    http_client, password_body, AuthScope, AUTH_TOKEN, SUBJECT_TOKEN,
};
use keyfed_benchmarks::loadgen::{Credentials, Endpoint};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "propagation",
    version,
    about = "Measures catalog propagation between Keystone v3 endpoints"
)]
struct Cli {
    /// Where the changes are made.
    #[arg(long, env = "OS_AUTH_URL", default_value = "http://127.0.0.1:5000")]
    write: String,
    /// Endpoints polled for the change (repeat the flag); defaults to `--write`.
    #[arg(long)]
    observe: Vec<String>,
    /// Number of catalog changes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    changes: u32,
    /// Give up on a change not seen after this many seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    #[command(flatten)]
    credentials: CredentialArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// One Keystone endpoint and the client that talks to it.
struct Site {
    url: String,
    endpoint: Endpoint,
    client: Client,
}

impl Site {
    fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            url: url.to_owned(),
            endpoint: Endpoint::parse(url)?,
            client: http_client(timeout)?,
        })
    }

    /// Sends `method path` with `body`, expecting `want`; returns the body.
    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method.clone(), self.endpoint.v3(path)?)
            .header(AUTH_TOKEN, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if status != want {
            bail!("{method} {path} at {}: {status}: {text}", self.url);
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// The catalog in the body this site answers when validating `token`.
    async fn catalog(&self, token: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(self.endpoint.v3("auth/tokens")?)
            .header(AUTH_TOKEN, token)
            .header(SUBJECT_TOKEN, token)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            bail!("validation at {}: {}", self.url, response.status());
        }
        let body: Value = response.json().await?;
        Ok(body
            .pointer("/token/catalog")
            .cloned()
            .unwrap_or(Value::Null))
    }
}

/// The URL the catalog shows for endpoint `id`, if it shows the endpoint.
fn endpoint_url(catalog: &Value, id: &str) -> Option<String> {
    catalog
        .as_array()?
        .iter()
        .filter_map(|s| s.get("endpoints")?.as_array())
        .flatten()
        .find(|e| e.get("id").and_then(Value::as_str) == Some(id))
        .and_then(|e| e.get("url")?.as_str().map(str::to_owned))
}

/// Polls `site` until the catalog shows endpoint `id` at `url` (or, with
/// `None`, not at all); returns the time since `since`.
async fn seen(
    site: &Site,
    token: &str,
    id: &str,
    url: Option<&str>,
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    loop {
        let catalog = site.catalog(token).await?;
        if endpoint_url(&catalog, id).as_deref() == url {
            return Ok(since.elapsed());
        }
        if since.elapsed() > timeout {
            bail!("{} never showed endpoint {id} at {url:?}", site.url);
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("propagation: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(cli.timeout);
    let writer = Site::new(&cli.write, timeout)?;
    let observe = if cli.observe.is_empty() {
        vec![cli.write.clone()]
    } else {
        cli.observe.clone()
    };
    let observers = observe
        .iter()
        .map(|u| Site::new(u, timeout))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let credentials: Credentials = cli.credentials.into();
    let issued = writer
        .client
        .post(writer.endpoint.v3("auth/tokens")?)
        .json(&password_body(&credentials, AuthScope::Project))
        .send()
        .await
        .context("authenticating")?;
    if issued.status() != StatusCode::CREATED {
        bail!("authentication at {}: {}", writer.url, issued.status());
    }
    let token = issued
        .headers()
        .get(SUBJECT_TOKEN)
        .and_then(|v| v.to_str().ok())
        .context("no X-Subject-Token")?
        .to_owned();

    let tag = format!("{:x}", std::process::id() as u64 ^ now_nanos());
    let service = writer
        .call(
            &token,
            reqwest::Method::POST,
            "services",
            Some(json!({"service": {"type": format!("bench-{tag}"), "name": format!("propagation-{tag}")}})),
            StatusCode::CREATED,
        )
        .await?;
    let service_id = service
        .pointer("/service/id")
        .and_then(Value::as_str)
        .context("no service id")?
        .to_owned();

    let mut delays: Vec<Vec<Duration>> = vec![Vec::new(); observers.len()];
    let mut current: Option<String> = None;
    for i in 0..cli.changes {
        let url = format!("http://bench.invalid/{tag}/{i}");
        let (method, path, body, want, expect) = match &current {
            None => (
                reqwest::Method::POST,
                "endpoints".to_owned(),
                Some(
                    json!({"endpoint": {"service_id": service_id, "interface": "public", "url": url}}),
                ),
                StatusCode::CREATED,
                Some(url),
            ),
            Some(id) if i % 3 == 1 => (
                reqwest::Method::PATCH,
                format!("endpoints/{id}"),
                Some(json!({"endpoint": {"url": url}})),
                StatusCode::OK,
                Some(url),
            ),
            Some(id) => (
                reqwest::Method::DELETE,
                format!("endpoints/{id}"),
                None,
                StatusCode::NO_CONTENT,
                None,
            ),
        };
        let answer = writer.call(&token, method, &path, body, want).await?;
        let acked = Instant::now();
        let id = match answer.pointer("/endpoint/id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => current.clone().context("no endpoint id")?,
        };
        let waits = observers
            .iter()
            .map(|site| seen(site, &token, &id, expect.as_deref(), acked, timeout));
        for (k, delay) in futures::future::join_all(waits)
            .await
            .into_iter()
            .enumerate()
        {
            delays[k].push(delay?);
        }
        current = expect.map(|_| id);
    }
    if let Some(id) = current {
        writer
            .call(
                &token,
                reqwest::Method::DELETE,
                &format!("endpoints/{id}"),
                None,
                StatusCode::NO_CONTENT,
            )
            .await?;
    }
    writer
        .call(
            &token,
            reqwest::Method::DELETE,
            &format!("services/{service_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await?;

    let mut report = Vec::new();
    for (site, mut d) in observers.iter().zip(delays) {
        d.sort();
        report.push(json!({
            "observer": site.url,
            "changes": d.len(),
            "p50_ms": ms(percentile(&d, 0.50)),
            "p99_ms": ms(percentile(&d, 0.99)),
            "max_ms": ms(*d.last().context("no changes")?),
        }));
    }
    if cli.json {
        println!("{}", json!({"write": cli.write, "observers": report}));
    } else {
        println!("catalog changes made through {}:", cli.write);
        for r in &report {
            println!(
                "  seen at {}: {} changes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                r["observer"].as_str().unwrap_or(""),
                r["changes"],
                r["p50_ms"].as_f64().unwrap_or(0.0),
                r["p99_ms"].as_f64().unwrap_or(0.0),
                r["max_ms"].as_f64().unwrap_or(0.0),
            );
        }
    }
    Ok(())
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
