//! Prometheus metrics of a gateway, served at `GET /metrics`: requests by
//! route, method and status, latency by route, upstream requests and errors
//! by shard, token-validation cache hits and misses, and the directory
//! revision applied per followed bucket. Cache and revision values are read
//! from their owners at scrape time.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use keyfed_federation::{BucketRevision, CacheStats};

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
struct ShardLabels {
    shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    bucket: &'static str,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    upstream_requests: Family<ShardLabels, Counter>,
    upstream_errors: Family<ShardLabels, Counter>,
    cache_hits: Gauge,
    cache_misses: Gauge,
    directory_revision: Family<BucketLabels, Gauge>,
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
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keyfed_gateway");
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
        let directory_revision = Family::<BucketLabels, Gauge>::default();
        registry.register(
            "directory_revision",
            "Last directory revision applied, per followed bucket",
            directory_revision.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            upstream_requests,
            upstream_errors,
            cache_hits,
            cache_misses,
            directory_revision,
        }
    }

    /// Counts one finished request.
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

    /// Renders the text exposition format, with the cache counters and
    /// directory revisions as of now.
    pub fn render(&self, cache: CacheStats, revisions: &[BucketRevision]) -> String {
        self.cache_hits.set(saturating_i64(cache.hits));
        self.cache_misses.set(saturating_i64(cache.misses));
        for r in revisions {
            self.directory_revision
                .get_or_create(&BucketLabels {
                    bucket: r.bucket.name(),
                })
                .set(saturating_i64(r.revision));
        }
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
