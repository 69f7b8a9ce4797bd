//! The metrics every listener has, for shards and gateways alike: HTTP
//! requests by route, method and status and request latency by route, in
//! a registry named for the process (`keyfed_shard_…`, `keyfed_gateway_…`)
//! that also holds the TLS reload counters and the process's own metrics.

use std::borrow::Cow;

use axum::http::Method;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::tls::TlsReloader;

/// A route label: a route template, never an id (borrowed when static, so
/// counting a request on a gateway allocates nothing).
pub type RouteLabel = Cow<'static, str>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: RouteLabel,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: RouteLabel,
}

/// The request metrics and the registry they live in.
pub struct EdgeMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
}

impl std::fmt::Debug for EdgeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeMetrics").finish_non_exhaustive()
    }
}

impl EdgeMetrics {
    /// A registry whose metric names start with `prefix`, holding the
    /// request metrics and, when given, `tls`'s reload counters.
    pub fn new(prefix: &str, tls: Option<&TlsReloader>) -> Self {
        let mut registry = Registry::with_prefix(prefix);
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
        if let Some(tls) = tls {
            tls.register_metrics(&mut registry);
        }
        Self {
            registry,
            requests,
            latency,
        }
    }

    /// The registry, for the process's own metrics.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Counts one finished request; `method` is a [`method_label`].
    pub fn request(&self, route: RouteLabel, method: &'static str, status: u16, seconds: f64) {
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// The text exposition of every metric in the registry.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
            out.clear();
        }
        out
    }
}

/// The metrics label of a method: its name for the standard ones, `other`
/// for extension methods (so clients cannot mint label values).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// A count as a gauge value.
pub fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let m = EdgeMetrics::new("keyfed_test", None);
        m.request(
            "/v3/projects".into(),
            method_label(&Method::GET),
            200,
            0.001,
        );
        let odd = Method::from_bytes(b"BREW").unwrap();
        m.request(
            Cow::Owned("/v3/x".to_owned()),
            method_label(&odd),
            405,
            0.002,
        );
        let text = m.render();
        assert!(text.contains(
            r#"keyfed_test_requests_total{route="/v3/projects",method="GET",status="200"} 1"#
        ));
        assert!(text.contains(r#"method="other",status="405""#), "{text}");
        assert!(
            text.contains("keyfed_test_request_duration_seconds_count"),
            "{text}"
        );
    }
}
