//! `loadgen`: a load generator for any Keystone v3 endpoint (keyfed or
//! OpenStack Keystone). It authenticates with a password, prepares what the
//! scenario needs, then lets `--concurrency` workers — one keep-alive
//! connection each — repeat one request for `--warmup` + `--duration`
//! seconds, and prints throughput, latency percentiles and error counts.
//!
//! Credentials come from the flags or, when a flag is absent, from the usual
//! `OS_*` variables of an openrc file (`OS_AUTH_URL`, `OS_USERNAME`,
//! `OS_PASSWORD`, `OS_PROJECT_NAME`, `OS_USER_DOMAIN_NAME`,
//! `OS_PROJECT_DOMAIN_NAME`).
//!
//! Exit status: 0 when at least one request succeeded, 1 when set-up failed
//! or no request succeeded.

use anyhow::Context;
use clap::Parser;
use keyfed_benchmarks::cli::CredentialArgs;
use keyfed_benchmarks::loadgen::{self, LoadConfig, Scenario};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for Keystone v3 endpoints"
)]
struct Cli {
    /// Keystone base URL; `/v3/...` is appended (a trailing `/v3`, as in
    /// OS_AUTH_URL, is accepted). http only.
    #[arg(long, env = "OS_AUTH_URL", default_value = "http://127.0.0.1:5000")]
    url: String,
    /// The request to repeat.
    #[arg(long, value_enum, default_value_t = Scenario::Validate)]
    scenario: Scenario,
    /// Workers, each with one keep-alive connection and one request in flight.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Seconds of the timed phase.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: u64,
    /// Seconds of untimed warm-up before it.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    warmup: u64,
    /// At most this many requests are sent in the timed phase.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_requests: Option<u64>,
    #[command(flatten)]
    credentials: CredentialArgs,
    /// Projects (`loadgen-0`, `loadgen-1`, ...) the project-get scenario
    /// creates once (or reuses) and reads round-robin.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    projects: u32,
    /// Seconds after which a request counts as a transport error.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
    /// Print one JSON object with the results instead of text.
    #[arg(long)]
    json: bool,
}

impl Cli {
    fn config(self) -> anyhow::Result<LoadConfig> {
        Ok(LoadConfig {
            url: self.url,
            scenario: self.scenario,
            credentials: self.credentials.into(),
            concurrency: usize::try_from(self.concurrency).context("--concurrency")?,
            duration: Duration::from_secs(self.duration),
            warmup: Duration::from_secs(self.warmup),
            max_requests: self.max_requests,
            request_timeout: Duration::from_secs(self.timeout),
            projects: usize::try_from(self.projects).context("--projects")?,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            // One line with the causes; no backtrace for an operator error.
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    let config = cli.config()?;
    eprintln!(
        "loadgen: preparing {} against {}",
        config.scenario, config.url
    );
    let plan = loadgen::prepare(&config)
        .await
        .with_context(|| format!("setting up the {} scenario", config.scenario))?;
    eprintln!(
        "loadgen: {} workers, {} s warm-up, {} s timed",
        config.concurrency,
        config.warmup.as_secs(),
        config.duration.as_secs()
    );
    let report = loadgen::drive(&config, Arc::new(plan)).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(if report.summary.successes > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
