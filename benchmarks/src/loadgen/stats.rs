//! Recording and summarising a run. Each worker owns a [`Recorder`] (no
//! sharing, no locks on the hot path); the runner merges them at the end and
//! turns the result into a [`Summary`].
//!
//! Latencies of successful requests go into an HDR histogram in
//! microseconds (3 significant digits); failed requests are counted, not
//! timed: unexpected statuses by status code, transport errors (connect,
//! reset, timeout) separately.

use super::error::LoadgenError;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The largest latency the histogram tells apart: 10 minutes. Longer ones
/// are recorded as this value.
const MAX_MICROS: u64 = 600_000_000;
/// Significant decimal digits the histogram keeps.
const SIGNIFICANT_DIGITS: u8 = 3;
/// How many distinct error messages a recorder keeps as examples.
const MAX_SAMPLES: usize = 8;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The expected status arrived and the body was read.
    Success,
    /// The server answered with another status.
    UnexpectedStatus {
        /// The status received.
        status: u16,
        /// Keystone's error message, or the start of the body.
        detail: String,
    },
    /// No complete response: connection refused or reset, timeout, a body cut
    /// short.
    Transport(String),
}

/// One worker's record of the requests it completed in the timed phase.
#[derive(Debug, Clone)]
pub struct Recorder {
    histogram: Histogram<u64>,
    successes: u64,
    unexpected: BTreeMap<u16, u64>,
    transport_errors: u64,
    samples: Vec<String>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Result<Self, LoadgenError> {
        let histogram = Histogram::new_with_bounds(1, MAX_MICROS, SIGNIFICANT_DIGITS)
            .map_err(|e| LoadgenError::Histogram(format!("{e:?}")))?;
        Ok(Self {
            histogram,
            successes: 0,
            unexpected: BTreeMap::new(),
            transport_errors: 0,
            samples: Vec::new(),
        })
    }

    /// Records one request that took `latency` and ended with `outcome`.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Success => {
                self.successes += 1;
                let micros = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                self.histogram.saturating_record(micros);
            }
            Outcome::UnexpectedStatus { status, detail } => {
                *self.unexpected.entry(status).or_default() += 1;
                self.sample(format!("HTTP {status}: {detail}"));
            }
            Outcome::Transport(message) => {
                self.transport_errors += 1;
                self.sample(message);
            }
        }
    }

    fn sample(&mut self, message: String) {
        if self.samples.len() < MAX_SAMPLES && !self.samples.contains(&message) {
            self.samples.push(message);
        }
    }

    /// Requests recorded, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.successes + self.unexpected.values().sum::<u64>() + self.transport_errors
    }

    /// Adds another recorder's counts and latencies to this one.
    pub fn merge(&mut self, other: &Recorder) -> Result<(), LoadgenError> {
        self.histogram
            .add(&other.histogram)
            .map_err(|e| LoadgenError::Histogram(format!("{e:?}")))?;
        self.successes += other.successes;
        for (status, count) in &other.unexpected {
            *self.unexpected.entry(*status).or_default() += count;
        }
        self.transport_errors += other.transport_errors;
        for message in &other.samples {
            self.sample(message.clone());
        }
        Ok(())
    }

    /// The summary of everything recorded over a timed phase of `elapsed`.
    pub fn summarize(&self, elapsed: Duration) -> Summary {
        let seconds = elapsed.as_secs_f64();
        let throughput = if seconds > 0.0 {
            self.successes as f64 / seconds
        } else {
            0.0
        };
        let latency = (self.successes > 0).then(|| {
            let ms = |micros: u64| micros as f64 / 1000.0;
            Latency {
                p50: ms(self.histogram.value_at_quantile(0.50)),
                p90: ms(self.histogram.value_at_quantile(0.90)),
                p99: ms(self.histogram.value_at_quantile(0.99)),
                p999: ms(self.histogram.value_at_quantile(0.999)),
                max: ms(self.histogram.max()),
                mean: self.histogram.mean() / 1000.0,
            }
        });
        let unexpected_by_status = self
            .unexpected
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect();
        Summary {
            requests: self.requests(),
            successes: self.successes,
            unexpected_status: self.unexpected.values().sum(),
            unexpected_by_status,
            transport_errors: self.transport_errors,
            elapsed_s: seconds,
            throughput_per_s: throughput,
            latency_ms: latency,
            error_samples: self.samples.clone(),
        }
    }
}

/// Latency percentiles of successful requests, in milliseconds. Values come
/// from the histogram, so they are exact to 3 significant digits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest request.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// What the timed phase measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Requests completed in the timed phase, whatever the outcome.
    pub requests: u64,
    /// Requests that got the expected status.
    pub successes: u64,
    /// Requests that got any other status.
    pub unexpected_status: u64,
    /// The same, by status code.
    pub unexpected_by_status: BTreeMap<String, u64>,
    /// Requests that got no complete response.
    pub transport_errors: u64,
    /// Length of the timed phase as measured, in seconds.
    pub elapsed_s: f64,
    /// Successes per second.
    pub throughput_per_s: f64,
    /// Latency of successes; `None` when nothing succeeded.
    pub latency_ms: Option<Latency>,
    /// Up to 8 distinct error messages, for diagnosis.
    pub error_samples: Vec<String>,
}

impl Summary {
    /// Requests that failed, by status or transport.
    pub fn errors(&self) -> u64 {
        self.unexpected_status + self.transport_errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(a: f64, b: f64) -> bool {
        // Three significant digits: within 0.1 %.
        (a - b).abs() <= b.abs() * 1e-3
    }

    #[test]
    fn percentiles_throughput_and_errors() {
        let mut r = Recorder::new().expect("recorder");
        for n in 1..=1000 {
            r.record(Outcome::Success, ms(n));
        }
        r.record(
            Outcome::UnexpectedStatus {
                status: 401,
                detail: "nope".into(),
            },
            ms(1),
        );
        r.record(
            Outcome::UnexpectedStatus {
                status: 401,
                detail: "nope".into(),
            },
            ms(1),
        );
        r.record(
            Outcome::UnexpectedStatus {
                status: 503,
                detail: "busy".into(),
            },
            ms(1),
        );
        r.record(Outcome::Transport("connection reset".into()), ms(1));

        let s = r.summarize(Duration::from_secs(4));
        assert_eq!(s.requests, 1004);
        assert_eq!(s.successes, 1000);
        assert_eq!(s.unexpected_status, 3);
        assert_eq!(s.unexpected_by_status.get("401"), Some(&2));
        assert_eq!(s.unexpected_by_status.get("503"), Some(&1));
        assert_eq!(s.transport_errors, 1);
        assert_eq!(s.errors(), 4);
        assert!(close(s.throughput_per_s, 250.0));
        let l = s.latency_ms.expect("latency");
        assert!(close(l.p50, 500.0), "p50 {}", l.p50);
        assert!(close(l.p90, 900.0), "p90 {}", l.p90);
        assert!(close(l.p99, 990.0), "p99 {}", l.p99);
        assert!(close(l.p999, 999.0), "p99.9 {}", l.p999);
        assert!(close(l.max, 1000.0), "max {}", l.max);
        assert!(close(l.mean, 500.5), "mean {}", l.mean);
        // Distinct messages only, in first-seen order.
        assert_eq!(
            s.error_samples,
            vec!["HTTP 401: nope", "HTTP 503: busy", "connection reset"]
        );
    }

    #[test]
    fn merge_adds_counts_and_latencies() {
        let mut a = Recorder::new().expect("recorder");
        let mut b = Recorder::new().expect("recorder");
        for _ in 0..99 {
            a.record(Outcome::Success, ms(1));
        }
        b.record(Outcome::Success, ms(100));
        b.record(
            Outcome::UnexpectedStatus {
                status: 500,
                detail: "boom".into(),
            },
            ms(1),
        );
        a.merge(&b).expect("merge");
        let s = a.summarize(Duration::from_secs(1));
        assert_eq!(s.successes, 100);
        assert_eq!(s.unexpected_by_status.get("500"), Some(&1));
        let l = s.latency_ms.expect("latency");
        assert!(close(l.p50, 1.0));
        assert!(close(l.max, 100.0));
        assert_eq!(s.error_samples, vec!["HTTP 500: boom"]);
    }

    #[test]
    fn empty_and_degenerate_runs() {
        let mut r = Recorder::new().expect("recorder");
        let s = r.summarize(Duration::ZERO);
        assert_eq!(s.requests, 0);
        assert_eq!(s.throughput_per_s, 0.0);
        assert_eq!(s.latency_ms, None);
        // Sub-microsecond and huge latencies are clamped, not dropped.
        r.record(Outcome::Success, Duration::from_nanos(10));
        r.record(Outcome::Success, Duration::from_secs(7200));
        let l = r
            .summarize(Duration::from_secs(1))
            .latency_ms
            .expect("latency");
        assert!(l.p50 > 0.0);
        assert!(l.max >= 599_000.0);
    }

    #[test]
    fn samples_are_bounded() {
        let mut r = Recorder::new().expect("recorder");
        for n in 0..100 {
            r.record(Outcome::Transport(format!("error {n}")), ms(1));
        }
        let s = r.summarize(Duration::from_secs(1));
        assert_eq!(s.transport_errors, 100);
        assert_eq!(s.error_samples.len(), MAX_SAMPLES);
    }

    #[test]
    fn summary_serializes_with_stable_field_names() {
        let mut r = Recorder::new().expect("recorder");
        r.record(Outcome::Success, ms(2));
        let json = serde_json::to_value(r.summarize(Duration::from_secs(1))).expect("json");
        for key in [
            "requests",
            "successes",
            "unexpected_status",
            "transport_errors",
            "throughput_per_s",
            "elapsed_s",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
        for key in ["p50", "p99", "p999", "max"] {
            assert!(
                json["latency_ms"].get(key).is_some(),
                "latency_ms.{key} missing"
            );
        }
    }
}
