//! `faultload`: the write load of `benchmarks/faults.sh`, and its check.
//!
//! For `--seconds`, at `--rate` operations per second spread over the
//! `--gateway`s in turn, it creates a project (`<prefix>-<n>` in domain
//! `default`) and, once acknowledged, grants role `member` on it to the
//! user it authenticated as. Then, after `--settle` seconds (the fault
//! repaired, members caught up), it checks through every gateway:
//!
//! - every acknowledged project is readable and every acknowledged grant
//!   present (otherwise: a lost write);
//! - no name it used names two projects (a duplicate);
//! - every name whose create failed can be created now (201), or exists
//!   once already: that create was carried out after all (a "ghost", which
//!   a client that got 503 may see; Keystone clients retry).
//!
//! Prints one JSON object; exits 1 when a write was lost or a name
//! duplicated. Credentials as for `loadgen` (flags or `OS_*` variables).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::{stream, StreamExt};
use keyfed_benchmarks::cli::CredentialArgs;
use keyfed_benchmarks::loadgen::keystone::{
    http_client, password_body, AuthScope, AUTH_TOKEN, SUBJECT_TOKEN,
};
use keyfed_benchmarks::loadgen::Credentials;
use reqwest::{Client, Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "faultload",
    version,
    about = "Creates projects and grants under a fault, then checks that nothing acknowledged was lost"
)]
struct Cli {
    /// A gateway's URL (repeat the flag); requests go to each in turn.
    #[arg(long, required = true)]
    gateway: Vec<String>,
    /// Operations (a create, then its grant) started per second.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    rate: u32,
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Wait before checking, in seconds.
    #[arg(long, default_value_t = 5)]
    settle: u64,
    /// Project names are `<prefix>-<n>`.
    #[arg(long, default_value = "fp")]
    prefix: String,
    /// Per-request timeout, in seconds (longer than the gateways' upstream
    /// timeout, so their answer is what is counted).
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    #[command(flatten)]
    credentials: CredentialArgs,
}

/// What the load saw, and what the check found.
#[derive(Debug, Default, Serialize)]
struct Report {
    operations: u64,
    acknowledged_creates: u64,
    acknowledged_grants: u64,
    /// Failed creates and grants by `<what> <status>` (0: no answer).
    failed: BTreeMap<String, u64>,
    lost_projects: u64,
    lost_grants: u64,
    duplicate_names: u64,
    ghosts: u64,
    recreated: u64,
    /// Checks that got no clear answer (neither found nor not found).
    unclear_checks: u64,
}

/// What the load acknowledged and what failed.
#[derive(Debug, Default)]
struct Ledger {
    projects: Vec<(String, String)>,
    grants: Vec<String>,
    failed_names: Vec<String>,
    failed: BTreeMap<String, u64>,
}

impl Ledger {
    fn fail(&mut self, what: &str, status: Option<StatusCode>) {
        let key = format!("{what} {}", status.map_or(0, |s| s.as_u16()));
        *self.failed.entry(key).or_default() += 1;
    }
}

/// The gateways and who the load acts as.
struct Load {
    http: Client,
    gateways: Vec<String>,
    token: String,
    user: String,
    member_role: String,
}

impl Load {
    async fn start(cli: &Cli) -> anyhow::Result<Self> {
        let http = http_client(Duration::from_secs(cli.timeout))?;
        let credentials: Credentials = cli.credentials.clone().into();
        let gateways: Vec<String> = cli
            .gateway
            .iter()
            .map(|g| g.trim_end_matches('/').to_owned())
            .collect();
        let r = http
            .post(format!("{}/v3/auth/tokens", gateways[0]))
            .json(&password_body(&credentials, AuthScope::Project))
            .send()
            .await?;
        anyhow::ensure!(r.status() == StatusCode::CREATED, "login: {}", r.status());
        let token = r
            .headers()
            .get(SUBJECT_TOKEN)
            .and_then(|v| v.to_str().ok())
            .context("no X-Subject-Token")?
            .to_owned();
        let body: Value = r.json().await?;
        let user = body["token"]["user"]["id"]
            .as_str()
            .context("no user id in the token")?
            .to_owned();
        let mut load = Self {
            http,
            gateways,
            token,
            user,
            member_role: String::new(),
        };
        let (_, roles) = load
            .call(0, Method::GET, "/v3/roles?name=member", None)
            .await;
        load.member_role = roles["roles"][0]["id"]
            .as_str()
            .context("no role named member")?
            .to_owned();
        Ok(load)
    }

    /// `method path` at gateway `g % n`: the status (none: no answer) and
    /// the body.
    async fn call(
        &self,
        g: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (Option<StatusCode>, Value) {
        let gateway = &self.gateways[g % self.gateways.len()];
        let mut request = self
            .http
            .request(method, format!("{gateway}{path}"))
            .header(AUTH_TOKEN, &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status();
                (Some(status), r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (None, Value::Null),
        }
    }

    fn grant_path(&self, project: &str) -> String {
        format!(
            "/v3/projects/{project}/users/{}/roles/{}",
            self.user, self.member_role
        )
    }

    fn create_body(name: &str) -> Value {
        json!({"project": {"name": name, "domain_id": "default"}})
    }

    /// Operation `n`: the create, then the grant.
    async fn operation(&self, n: u64, prefix: &str, ledger: &Mutex<Ledger>) {
        let name = format!("{prefix}-{n}");
        let g = n as usize;
        let (status, body) = self
            .call(
                g,
                Method::POST,
                "/v3/projects",
                Some(Self::create_body(&name)),
            )
            .await;
        let id = match (status, body["project"]["id"].as_str()) {
            (Some(StatusCode::CREATED), Some(id)) => id.to_owned(),
            _ => {
                let mut l = lock(ledger);
                l.fail("create", status);
                l.failed_names.push(name);
                return;
            }
        };
        lock(ledger).projects.push((id.clone(), name));
        let (status, _) = self.call(g, Method::PUT, &self.grant_path(&id), None).await;
        let mut l = lock(ledger);
        if status == Some(StatusCode::NO_CONTENT) {
            l.grants.push(id);
        } else {
            l.fail("grant", status);
        }
    }

    /// Runs operations at `rate` per second for `seconds`.
    async fn run(self: &Arc<Self>, cli: &Cli) -> Ledger {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let mut tick = tokio::time::interval(Duration::from_secs(1) / cli.rate);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = Instant::now() + Duration::from_secs(cli.seconds);
        let mut tasks = Vec::new();
        let mut n = 0;
        while Instant::now() < deadline {
            tick.tick().await;
            let (load, ledger, prefix) = (self.clone(), ledger.clone(), cli.prefix.clone());
            tasks.push(tokio::spawn(async move {
                load.operation(n, &prefix, &ledger).await;
            }));
            n += 1;
        }
        for t in tasks {
            let _ = t.await;
        }
        let mut l = lock(&ledger);
        std::mem::take(&mut *l)
    }

    /// The check of the module doc.
    async fn check(&self, ledger: Ledger, report: &mut Report) {
        const PARALLEL: usize = 16;
        let n = self.gateways.len();
        // Every acknowledged project and grant, at every gateway.
        let reads = ledger.projects.iter().flat_map(|(id, _)| {
            (0..n).map(move |g| (g, format!("/v3/projects/{id}"), StatusCode::OK))
        });
        let grants = ledger
            .grants
            .iter()
            .flat_map(|id| (0..n).map(move |g| (g, self.grant_path(id), StatusCode::NO_CONTENT)));
        let found: Vec<(String, Option<StatusCode>, StatusCode)> =
            stream::iter(reads.chain(grants))
                .map(|(g, path, want)| async move {
                    let method = if want == StatusCode::OK {
                        Method::GET
                    } else {
                        Method::HEAD
                    };
                    let (status, _) = self.call(g, method, &path, None).await;
                    (path, status, want)
                })
                .buffer_unordered(PARALLEL)
                .collect()
                .await;
        for (path, status, want) in found {
            match status {
                Some(s) if s == want => {}
                Some(StatusCode::NOT_FOUND) if path.contains("/roles/") => report.lost_grants += 1,
                Some(StatusCode::NOT_FOUND) => report.lost_projects += 1,
                _ => report.unclear_checks += 1,
            }
        }
        // Each name used names at most one project; a failed name is free
        // again, or names the one project its create made after all.
        let names = ledger
            .projects
            .iter()
            .map(|(_, name)| (name.clone(), false))
            .chain(ledger.failed_names.iter().map(|name| (name.clone(), true)));
        let counts: Vec<(bool, String, Option<usize>)> = stream::iter(names)
            .map(|(name, failed)| async move {
                let path = format!("/v3/projects?name={name}&domain_id=default");
                let (status, body) = self.call(0, Method::GET, &path, None).await;
                let count = (status == Some(StatusCode::OK))
                    .then(|| body["projects"].as_array().map_or(0, Vec::len));
                (failed, name, count)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for (failed, name, count) in counts {
            match (failed, count) {
                (_, None) => report.unclear_checks += 1,
                (_, Some(c)) if c > 1 => report.duplicate_names += 1,
                (true, Some(1)) => report.ghosts += 1,
                (true, Some(_)) => {
                    let (status, _) = self
                        .call(
                            0,
                            Method::POST,
                            "/v3/projects",
                            Some(Self::create_body(&name)),
                        )
                        .await;
                    if status == Some(StatusCode::CREATED) {
                        report.recreated += 1;
                    } else {
                        report.unclear_checks += 1;
                    }
                }
                (false, Some(_)) => {}
            }
        }
    }
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

async fn main_inner(cli: Cli) -> anyhow::Result<Report> {
    let load = Arc::new(Load::start(&cli).await?);
    let ledger = load.run(&cli).await;
    let mut report = Report {
        operations: (ledger.projects.len() + ledger.failed_names.len()) as u64,
        acknowledged_creates: ledger.projects.len() as u64,
        acknowledged_grants: ledger.grants.len() as u64,
        failed: ledger.failed.clone(),
        ..Report::default()
    };
    tokio::time::sleep(Duration::from_secs(cli.settle)).await;
    load.check(ledger, &mut report).await;
    Ok(report)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faultload: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(main_inner(cli)) {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            if report.lost_projects + report.lost_grants + report.duplicate_names > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("faultload: {e:#}");
            ExitCode::from(2)
        }
    }
}
