//! `/healthz` (the process is up), `/readyz` (the store answers and, on a
//! federated shard, global data is loaded) and
//! `/metrics` (Prometheus): all on the admin listener ([`admin_router`]),
//! and on the public one as `[admin]` says ([`routes`]).

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use keyfed_http::admin::AdminConfig;
use keyfed_shared::ids::DomainId;
use serde_json::json;

/// What the public listener serves of these: health unless
/// `admin.public_health = false`, metrics only with `admin.public_metrics`.
pub(super) fn routes(admin: &AdminConfig) -> Router<AppState> {
    let mut routes = Router::new();
    if admin.public_health {
        routes = routes
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/readyz", get(ready));
    }
    if admin.public_metrics {
        routes = routes.route("/metrics", get(metrics));
    }
    routes
}

/// The admin listener's routes: health and metrics, nothing else (404).
pub fn admin_router(state: AppState) -> Router {
    let every = AdminConfig {
        public_health: true,
        public_metrics: true,
        ..AdminConfig::default()
    };
    routes(&every).fallback(super::not_found).with_state(state)
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match state.store.get_domain(&DomainId::new("default")).await {
        // A new federated shard holds no global data (domains, roles) until
        // its mirror has applied the directory's: it would refuse admins.
        Ok(_)
            if state.federation.is_some()
                && !state.mirror.loaded()
                && state.global().domains.is_empty() =>
        {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "global data not loaded"})),
            )
        }
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store unavailable"})),
            )
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    if let Some(f) = &state.federation {
        for r in f.view.revisions() {
            state
                .metrics
                .set_directory_revision(r.bucket.name(), r.revision);
        }
        state.metrics.set_revocation_subjects(f.revocations.len());
        state
            .metrics
            .set_directory_entries_refused(f.view.refused_entries() + f.sealed.refused());
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
