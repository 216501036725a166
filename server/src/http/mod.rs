//! HTTP surface: the sync WebSocket, the JSON API, health, metrics and the
//! browser app's static files.

mod error;
mod meetings;
mod ws;

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::{services::ServeDir, trace::TraceLayer};

use crate::{config::ServerConfig, store::DynStore, sync::Rooms};

pub use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub rooms: Rooms,
    pub config: Arc<ServerConfig>,
    pub metrics: PrometheusHandle,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

pub fn router(state: AppState) -> Router {
    let web = ServeDir::new(&state.config.web_dir).append_index_html_on_directories(true);
    Router::new()
        .route("/sync/{meeting}", get(ws::sync))
        .route("/api/meetings", get(meetings::list).post(meetings::create))
        .route("/api/meetings/{meeting}", get(meetings::get))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback_service(web)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<AppState>) -> Result<&'static str, ApiError> {
    app.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable
    })?;
    Ok("ready")
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
