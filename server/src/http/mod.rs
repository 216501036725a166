//! HTTP surface: the sync WebSocket, the JSON API (documented as OpenAPI at
//! `/api/openapi.json`), health, metrics and the browser app's static files.

mod admin;
mod auth;
pub mod body;
mod call;
pub mod client;
mod error;
mod protocol;
pub mod sockets;
pub mod uploads;
mod web;
mod ws;

// The JSON API's meeting resources, one file each; the rules are
// `crate::meetings`'s.
mod agenda;
mod invitations;
mod meetings;
mod participants;
mod people;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{delete, get, patch, post, put},
};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::{
    auth::throttle::LoginThrottle, client_addr::TrustedProxies, config::ServerConfig,
    live::LiveConnections, store::Database, sync::Rooms,
};

pub use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub rooms: Rooms,
    pub config: Arc<ServerConfig>,
    pub metrics: PrometheusHandle,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub live: Arc<LiveConnections>,
    pub throttle: Arc<LoginThrottle>,
    /// Whose `X-Forwarded-For` names the client.
    pub proxies: Arc<TrustedProxies>,
    /// Open WebSockets per user, per address and in all.
    pub sockets: Arc<sockets::SocketLimits>,
    /// Signs verified protocols.
    pub signer: Arc<crate::finalise::SignerSlot>,
    /// The other nodes, with `--redis-url`.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// How often, and how many at once, anonymous verifications are taken.
    pub verify_gate: Arc<uploads::VerifyGate>,
}

impl AppState {
    /// The meetings service, with this node's rooms and connections.
    pub fn meetings(&self) -> crate::meetings::Meetings<'_> {
        crate::meetings::Meetings::serving(&self.db, &self.rooms, self)
    }

    /// Closes the connections an account event names, on this node and
    /// (with `--redis-url`) on every other. Returns how many were open
    /// here.
    pub fn close_connections(&self, event: crate::cluster::AccountEvent) -> usize {
        let closed = self.live.apply(&event);
        if let Some(cluster) = &self.cluster {
            cluster.publish_account(event);
        }
        closed
    }
}

impl crate::meetings::Connections for AppState {
    fn close(&self, event: crate::cluster::AccountEvent) -> usize {
        self.close_connections(event)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Protokoll", description = "Collaborative meeting protocols. Sign in with \
        POST /api/login (session cookie) or send a personal API token as `Authorization: \
        Bearer pk_...` (or `?token=` on the WebSocket URL `/sync/{id}` only; anywhere else a \
        `token` query parameter is refused with 401). Errors are \
        `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`."),
    paths(
        auth::login, auth::logout, auth::me, auth::create_token, auth::list_tokens, auth::revoke_token,
        admin::list_agencies, admin::create_agency, admin::list_users, admin::create_user,
        admin::reset_password, admin::issue_token, admin::revoke_any_token,
        meetings::list, meetings::create, meetings::get, meetings::update, agenda::agenda,
        agenda::add_section, agenda::change_section, agenda::reorder, participants::participants,
        participants::set_participant, participants::remove_participant, invitations::invite,
        invitations::show_invitation, invitations::accept_invitation,
        invitations::list_invitations, invitations::revoke_invitation,
        admin::update_user, admin::list_user_tokens, admin::confirm_user, admin::user_audit,
        agenda::remove_section, people::people, people::agencies,
        protocol::status, protocol::lock, protocol::reopen, protocol::signoff, protocol::reject,
        protocol::audit, protocol::export_html, protocol::export_markdown, protocol::export_pdf,
        protocol::export_json, protocol::verify_file, protocol::verify_hash, protocol::signing_keys,
    ),
    tags(
        (name = "sign-in"), (name = "admin", description = "administrators only"),
        (name = "meetings"), (name = "agenda"), (name = "participants"),
        (name = "protocol", description = "lock, justering, audit log and exports"),
        (name = "verification", description = "no sign-in: anyone may check a protocol file or hash"),
    )
)]
struct ApiDoc;

/// Request spans name the path only: query strings may carry API tokens.
/// The client address is recorded by `client::client_context`.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        client = tracing::field::Empty,
    )
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/sync/{meeting}", get(ws::sync))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/me", get(auth::me))
        .route(
            "/api/me/tokens",
            get(auth::list_tokens).post(auth::create_token),
        )
        .route("/api/me/tokens/{id}", delete(auth::revoke_token))
        .route(
            "/api/admin/agencies",
            get(admin::list_agencies).post(admin::create_agency),
        )
        .route(
            "/api/admin/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route(
            "/api/admin/users/{id}/password",
            post(admin::reset_password),
        )
        .route("/api/admin/users/{id}", patch(admin::update_user))
        .route("/api/admin/users/{id}/confirm", post(admin::confirm_user))
        .route("/api/admin/users/{id}/audit", get(admin::user_audit))
        .route(
            "/api/admin/users/{id}/tokens",
            get(admin::list_user_tokens).post(admin::issue_token),
        )
        .route("/api/admin/tokens/{id}", delete(admin::revoke_any_token))
        .route("/api/meetings", get(meetings::list).post(meetings::create))
        .route(
            "/api/meetings/{id}",
            get(meetings::get).put(meetings::update),
        )
        .route(
            "/api/meetings/{id}/agenda",
            get(agenda::agenda).post(agenda::add_section),
        )
        .route("/api/meetings/{id}/agenda/order", put(agenda::reorder))
        .route(
            "/api/meetings/{id}/agenda/{section}",
            patch(agenda::change_section).delete(agenda::remove_section),
        )
        .route(
            "/api/meetings/{id}/participants",
            get(participants::participants),
        )
        .route(
            "/api/meetings/{id}/participants/{user}",
            put(participants::set_participant).delete(participants::remove_participant),
        )
        .route(
            "/api/meetings/{id}/invitations",
            get(invitations::list_invitations).post(invitations::invite),
        )
        .route(
            "/api/meetings/{id}/invitations/{invitation}",
            delete(invitations::revoke_invitation),
        )
        .route(
            "/api/invitations/{secret}",
            get(invitations::show_invitation),
        )
        .route(
            "/api/invitations/{secret}/accept",
            post(invitations::accept_invitation),
        )
        .route("/api/people", get(people::people))
        .route("/api/agencies", get(people::agencies))
        .route("/api/meetings/{id}/protocol", get(protocol::status))
        .route("/api/meetings/{id}/protocol/lock", post(protocol::lock))
        .route("/api/meetings/{id}/protocol/reopen", post(protocol::reopen))
        .route("/api/meetings/{id}/protocol/reject", post(protocol::reject))
        .route("/api/meetings/{id}/signoffs", post(protocol::signoff))
        .route("/api/meetings/{id}/audit", get(protocol::audit))
        .route(
            "/api/meetings/{id}/protocol.html",
            get(protocol::export_html),
        )
        .route(
            "/api/meetings/{id}/protocol.md",
            get(protocol::export_markdown),
        )
        .route("/api/meetings/{id}/protocol.pdf", get(protocol::export_pdf))
        .route(
            "/api/meetings/{id}/protocol.json",
            get(protocol::export_json),
        )
        .route(
            "/api/verify",
            post(protocol::verify_file)
                .layer(DefaultBodyLimit::max(protocol::MAX_VERIFY_REQUEST_BYTES)),
        )
        .route("/api/verify/{hash}", get(protocol::verify_hash))
        .route(
            "/verify",
            get(protocol::verify_page)
                .post(protocol::verify_form)
                .layer(DefaultBodyLimit::max(protocol::MAX_VERIFY_REQUEST_BYTES)),
        )
        .route("/verify.css", get(protocol::verify_style))
        .route(
            "/.well-known/protokoll-signing-key",
            get(protocol::signing_keys),
        )
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(web::serve)
        .layer(DefaultBodyLimit::max(body::MAX_JSON_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::body_deadline,
        ))
        .layer(axum::middleware::from_fn(web::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client::client_context,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn healthz() -> &'static str {
    "ok"
}

/// How long readiness waits for the database.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready while the database answers (within `READY_TIMEOUT`). Redis is not
/// asked: a node without it keeps serving its clients.
async fn readyz(State(app): State<AppState>) -> Result<&'static str, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, app.db.docs.ping()).await {
        Ok(Ok(())) => Ok("ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::Unavailable)
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            Err(ApiError::Unavailable)
        }
    }
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
