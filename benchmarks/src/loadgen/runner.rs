//! The timed part of a run: `concurrency` workers, each a task with its own
//! HTTP/1.1 keep-alive connection ([`super::conn`]) and one request in
//! flight, send the plan's requests until the deadline (or the request
//! budget) is reached.
//!
//! Timeline: `start` — warm-up — `measure_start` — timed phase —
//! `deadline`. A request is measured when it *completes* at or after
//! `measure_start`, so throughput counts the completions of a window; no
//! request is sent at or after `deadline`, and the window closes when the
//! last worker has its final response. `max_requests` bounds the requests
//! *sent* in the timed phase.

use super::config::LoadConfig;
use super::conn::{Connection, Prepared};
use super::error::LoadgenError;
use super::scenario::{prepare, Plan};
use super::stats::{Outcome, Recorder, Summary};
use serde::Serialize;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// After a transport error a worker pauses this long, so a refused
/// connection does not turn into a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(20);

/// A finished run: what was asked for and what was measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The base URL targeted.
    pub url: String,
    /// Workers (and connections).
    pub concurrency: usize,
    /// Configured timed phase, in seconds.
    pub duration_s: f64,
    /// Configured warm-up, in seconds.
    pub warmup_s: f64,
    /// The request budget of the timed phase, if any.
    pub max_requests: Option<u64>,
    /// The measurements.
    #[serde(flatten)]
    pub summary: Summary,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        writeln!(
            f,
            "scenario {} against {}: {} workers, {:.0} s timed after {:.0} s warm-up",
            self.scenario, self.url, self.concurrency, self.duration_s, self.warmup_s
        )?;
        writeln!(
            f,
            "requests {} in {:.2} s: {} ok ({:.1}/s), {} unexpected status, {} transport errors",
            s.requests,
            s.elapsed_s,
            s.successes,
            s.throughput_per_s,
            s.unexpected_status,
            s.transport_errors
        )?;
        match &s.latency_ms {
            Some(l) => writeln!(
                f,
                "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
                l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            )?,
            None => writeln!(f, "latency: no successful request")?,
        }
        for (status, count) in &s.unexpected_by_status {
            writeln!(f, "  HTTP {status}: {count}")?;
        }
        for sample in &s.error_samples {
            writeln!(f, "  e.g. {sample}")?;
        }
        Ok(())
    }
}

/// Prepares the scenario and drives it: the whole run.
pub async fn run(config: &LoadConfig) -> Result<Report, LoadgenError> {
    let plan = prepare(config).await?;
    drive(config, Arc::new(plan)).await
}

/// Shared by the workers: the phase boundaries and the request budget.
struct Schedule {
    measure_start: Instant,
    deadline: Instant,
    budget: Option<u64>,
    sent: AtomicU64,
}

impl Schedule {
    /// Whether a worker may send a request now.
    fn may_send(&self, now: Instant) -> bool {
        if now >= self.deadline {
            return false;
        }
        match self.budget {
            Some(budget) if now >= self.measure_start => {
                self.sent.fetch_add(1, Ordering::Relaxed) < budget
            }
            _ => true,
        }
    }
}

/// Runs the warm-up and the timed phase of a prepared plan and reports.
pub async fn drive(config: &LoadConfig, plan: Arc<Plan>) -> Result<Report, LoadgenError> {
    config.validate()?;
    if plan.requests.is_empty() {
        return Err(LoadgenError::Config("the plan has no request".to_owned()));
    }
    // Prepare every request and recorder before the clock starts.
    let requests = plan
        .requests
        .iter()
        .map(Prepared::new)
        .collect::<Result<Vec<_>, _>>()?;
    let requests = Arc::new(requests);
    let mut recorders = Vec::with_capacity(config.concurrency);
    for _ in 0..config.concurrency {
        recorders.push(Recorder::new()?);
    }
    let start = Instant::now();
    let schedule = Arc::new(Schedule {
        measure_start: start + config.warmup,
        deadline: start + config.warmup + config.duration,
        budget: config.max_requests,
        sent: AtomicU64::new(0),
    });
    let mut tasks = JoinSet::new();
    for (index, recorder) in recorders.into_iter().enumerate() {
        tasks.spawn(worker(
            index,
            recorder,
            Arc::clone(&requests),
            Arc::clone(&schedule),
            config.request_timeout,
        ));
    }
    let mut total = Recorder::new()?;
    while let Some(joined) = tasks.join_next().await {
        let recorder = joined.map_err(|e| LoadgenError::Worker(e.to_string()))?;
        total.merge(&recorder)?;
    }
    let elapsed = Instant::now().saturating_duration_since(schedule.measure_start);
    Ok(Report {
        scenario: plan.scenario.to_string(),
        url: plan.endpoint.as_str().to_owned(),
        concurrency: config.concurrency,
        duration_s: config.duration.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        max_requests: config.max_requests,
        summary: total.summarize(elapsed),
    })
}

/// One worker: sends the plan's requests round-robin from its own offset
/// over its own keep-alive connection until told to stop.
async fn worker(
    index: usize,
    mut recorder: Recorder,
    requests: Arc<Vec<Prepared>>,
    schedule: Arc<Schedule>,
    timeout: Duration,
) -> Recorder {
    let mut connection = Connection::default();
    let mut next = index;
    loop {
        let sent_at = Instant::now();
        if !schedule.may_send(sent_at) {
            break;
        }
        let request = &requests[next % requests.len()];
        next = next.wrapping_add(1);
        let outcome = connection.send(request, timeout).await;
        let done = Instant::now();
        let failed = matches!(outcome, Outcome::Transport(_));
        if done >= schedule.measure_start {
            recorder.record(outcome, done - sent_at);
        }
        if failed {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
    recorder
}
