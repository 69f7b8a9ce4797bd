//! Prometheus metrics of a gateway, served at `GET /metrics`: requests by
//! route, method and status, latency by route, upstream requests and errors
//! by shard, token-validation cache hits and misses, and the directory
//! revision applied per followed bucket. Cache and revision values are read
//! from their owners at scrape time.

use keyfed_http::metrics::{saturating_i64, EdgeMetrics};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use keyfed_federation::{BucketRevision, CacheStats, LookupStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    bucket: &'static str,
}

/// The gateway's metrics.
pub struct Metrics {
    edge: EdgeMetrics,
    upstream_requests: Family<ShardLabels, Counter>,
    upstream_errors: Family<ShardLabels, Counter>,
    cache_hits: Gauge,
    cache_misses: Gauge,
    signer_lookups: Gauge,
    unknown_signer_cache_hits: Gauge,
    signer_lookups_shed: Gauge,
    directory_revision: Family<BucketLabels, Gauge>,
    directory_entries_refused: Gauge,
    member_down: Family<ShardLabels, Gauge>,
    member_down_transitions: Family<ShardLabels, Counter>,
    upstream_shed: Family<ShardLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
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
        let mut edge = EdgeMetrics::new("keyfed_gateway", tls);
        let registry = edge.registry_mut();
        let upstream_requests = Family::<ShardLabels, Counter>::default();
        registry.register(
            "upstream_requests",
            "Requests sent to shards, by shard",
            upstream_requests.clone(),
        );
        let upstream_errors = Family::<ShardLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Shard calls that failed (unreachable, timeout, bad answer), by shard",
            upstream_errors.clone(),
        );
        let cache_hits = Gauge::default();
        registry.register(
            "validation_cache_hits",
            "Token validations answered from the verified-token cache",
            cache_hits.clone(),
        );
        let cache_misses = Gauge::default();
        registry.register(
            "validation_cache_misses",
            "Token validations that needed a signature check",
            cache_misses.clone(),
        );
        let signer_lookups = Gauge::default();
        registry.register(
            "signer_lookups",
            "Directory look-ups of token signers the federation view did not know",
            signer_lookups.clone(),
        );
        let unknown_signer_cache_hits = Gauge::default();
        registry.register(
            "unknown_signer_cache_hits",
            "Tokens rejected from the negative cache of unknown signers, without a look-up",
            unknown_signer_cache_hits.clone(),
        );
        let signer_lookups_shed = Gauge::default();
        registry.register(
            "signer_lookups_shed",
            "Tokens of unknown signers rejected without a look-up: too many look-ups in flight",
            signer_lookups_shed.clone(),
        );
        let directory_revision = Family::<BucketLabels, Gauge>::default();
        registry.register(
            "directory_revision",
            "Last directory revision applied, per followed bucket",
            directory_revision.clone(),
        );
        let directory_entries_refused = Gauge::default();
        registry.register(
            "directory_entries_refused",
            "Directory entries ignored because their signature check failed (forged or misplaced)",
            directory_entries_refused.clone(),
        );
        let member_down = Family::<ShardLabels, Gauge>::default();
        registry.register(
            "member_down",
            "1 while a member is marked down (its tenants' requests fail fast until a probe answers)",
            member_down.clone(),
        );
        let member_down_transitions = Family::<ShardLabels, Counter>::default();
        registry.register(
            "member_down_transitions",
            "Times a member was marked down after consecutive transport failures",
            member_down_transitions.clone(),
        );
        let upstream_shed = Family::<ShardLabels, Counter>::default();
        registry.register(
            "upstream_shed",
            "Shard calls refused at once because the member is marked down",
            upstream_shed.clone(),
        );
        Self {
            edge,
            directory_entries_refused,
            member_down,
            member_down_transitions,
            upstream_shed,
            upstream_requests,
            upstream_errors,
            cache_hits,
            cache_misses,
            signer_lookups,
            unknown_signer_cache_hits,
            signer_lookups_shed,
            directory_revision,
        }
    }

    /// Counts one finished request. `route` is a route template and
    /// `method` a [`method_label`].
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, seconds: f64) {
        self.edge.request(route.into(), method, status, seconds);
    }

    /// Counts one request sent to `shard`.
    pub fn upstream_request(&self, shard: &str) {
        self.upstream_requests
            .get_or_create(&ShardLabels {
                shard: shard.to_owned(),
            })
            .inc();
    }

    /// Counts one failed call to `shard`.
    pub fn upstream_error(&self, shard: &str) {
        self.upstream_errors
            .get_or_create(&ShardLabels {
                shard: shard.to_owned(),
            })
            .inc();
    }

    /// Counts a member marked down.
    pub fn member_went_down(&self, shard: &str) {
        self.member_down_transitions
            .get_or_create(&ShardLabels {
                shard: shard.to_owned(),
            })
            .inc();
    }

    /// Counts a call refused because its member is down.
    pub fn upstream_shed(&self, shard: &str) {
        self.upstream_shed
            .get_or_create(&ShardLabels {
                shard: shard.to_owned(),
            })
            .inc();
    }

    /// Sets which of `members` are marked down.
    pub fn set_members_down(&self, members: &[String], down: &[String]) {
        for m in members {
            self.member_down
                .get_or_create(&ShardLabels { shard: m.clone() })
                .set(i64::from(down.contains(m)));
        }
    }

    /// Renders the text exposition format, with the cache and signer
    /// look-up counters and directory revisions as of now.
    pub fn render(
        &self,
        cache: CacheStats,
        lookups: LookupStats,
        revisions: &[BucketRevision],
        refused_entries: u64,
    ) -> String {
        self.directory_entries_refused
            .set(saturating_i64(refused_entries));
        self.cache_hits.set(saturating_i64(cache.hits));
        self.cache_misses.set(saturating_i64(cache.misses));
        self.signer_lookups.set(saturating_i64(lookups.lookups));
        self.unknown_signer_cache_hits
            .set(saturating_i64(lookups.negative_hits));
        self.signer_lookups_shed.set(saturating_i64(lookups.shed));
        for r in revisions {
            self.directory_revision
                .get_or_create(&BucketLabels {
                    bucket: r.bucket.name(),
                })
                .set(saturating_i64(r.revision));
        }
        self.edge.render()
    }
}

pub use keyfed_http::metrics::method_label;
