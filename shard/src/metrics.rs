//! Prometheus metrics of a shard, served at `GET /metrics` in the text
//! exposition format: requests by route, method and status, request latency
//! by route, store failures, token validations by outcome, and — when
//! federated — the directory revision applied per bucket and the number of
//! federation revocation subjects held.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    bucket: &'static str,
}

/// The shard's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    store_errors: Counter,
    validations: Family<OutcomeLabels, Counter>,
    directory_revision: Family<BucketLabels, Gauge>,
    revocation_subjects: Gauge,
    directory_entries_refused: Gauge,
    name_repairs: Family<RepairLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepairLabels {
    repair: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// [`Metrics::new`] and the TLS reload counters of `tls`.
    pub fn with_tls(tls: &keyfed_http::tls::TlsReloader) -> Self {
        let mut metrics = Self::new();
        tls.register_metrics(&mut metrics.registry);
        metrics
    }

    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keyfed_shard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        registry.register(
            "request_duration_seconds",
            "Request latency by route",
            latency.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Store backend failures",
            store_errors.clone(),
        );
        let validations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "token_validations",
            "Token validations by outcome",
            validations.clone(),
        );
        let directory_revision = Family::<BucketLabels, Gauge>::default();
        registry.register(
            "directory_revision",
            "Directory revision applied, per followed bucket",
            directory_revision.clone(),
        );
        let revocation_subjects = Gauge::default();
        registry.register(
            "federation_revocation_subjects",
            "Revocation subjects received from the federation",
            revocation_subjects.clone(),
        );
        let directory_entries_refused = Gauge::default();
        registry.register(
            "directory_entries_refused",
            "Directory entries ignored because their signature check failed (forged or misplaced)",
            directory_entries_refused.clone(),
        );
        let name_repairs = Family::<RepairLabels, Counter>::default();
        registry.register(
            "name_repairs",
            "Names-index repairs by kind: orphan_released, name_restored, conflict (two entities, one name)",
            name_repairs.clone(),
        );
        Self {
            registry,
            directory_entries_refused,
            name_repairs,
            requests,
            latency,
            store_errors,
            validations,
            directory_revision,
            revocation_subjects,
        }
    }

    /// Records one finished request.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Records a repair of the names index (see `federation::names`).
    pub fn name_repaired(&self, repair: &'static str) {
        self.name_repairs
            .get_or_create(&RepairLabels { repair })
            .inc();
    }

    /// Records a store backend failure.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// Records a token validation outcome (`valid`, `invalid`, ...).
    pub fn validation(&self, outcome: &'static str) {
        self.validations
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Sets the directory revision applied for a bucket.
    pub fn set_directory_revision(&self, bucket: &'static str, revision: u64) {
        self.directory_revision
            .get_or_create(&BucketLabels { bucket })
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }

    /// Sets the number of federation revocation subjects held.
    pub fn set_revocation_subjects(&self, n: usize) {
        self.revocation_subjects
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the number of directory entries refused so far.
    pub fn set_directory_entries_refused(&self, n: u64) {
        self.directory_entries_refused
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_values() {
        let m = Metrics::new();
        m.request("/v3/projects/{id}", "GET", 200, 0.001);
        m.validation("valid");
        m.set_directory_revision("members", 7);
        let text = m.render();
        assert!(text.contains(r#"keyfed_shard_requests_total{route="/v3/projects/{id}",method="GET",status="200"} 1"#), "{text}");
        assert!(
            text.contains(r#"keyfed_shard_token_validations_total{outcome="valid"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keyfed_shard_directory_revision{bucket="members"} 7"#),
            "{text}"
        );
        assert!(
            text.contains("keyfed_shard_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
