//! Prometheus metrics of a shard, served at `GET /metrics` in the text
//! exposition format: requests by route, method and status, request latency
//! by route, store failures, token validations by outcome, and — when
//! federated — the directory revision applied per bucket and the number of
//! federation revocation subjects held.

use axum::http::Method;
use keyfed_http::metrics::{method_label, saturating_i64, EdgeMetrics, RouteLabel};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

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
    edge: EdgeMetrics,
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
        Self::build(Some(tls))
    }

    /// Registers every metric.
    pub fn new() -> Self {
        Self::build(None)
    }

    fn build(tls: Option<&keyfed_http::tls::TlsReloader>) -> Self {
        let mut edge = EdgeMetrics::new("keyfed_shard", tls);
        let registry = edge.registry_mut();
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
            edge,
            directory_entries_refused,
            name_repairs,
            store_errors,
            validations,
            directory_revision,
            revocation_subjects,
        }
    }

    /// Records one finished request.
    pub fn request(&self, route: RouteLabel, method: &Method, status: u16, seconds: f64) {
        self.edge
            .request(route, method_label(method), status, seconds);
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
            .set(saturating_i64(revision));
    }

    /// Sets the number of federation revocation subjects held.
    pub fn set_revocation_subjects(&self, n: usize) {
        self.revocation_subjects
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the number of directory entries refused so far.
    pub fn set_directory_entries_refused(&self, n: u64) {
        self.directory_entries_refused.set(saturating_i64(n));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        self.edge.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_values() {
        let m = Metrics::new();
        m.request("/v3/projects/{id}".into(), &Method::GET, 200, 0.001);
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
