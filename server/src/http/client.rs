//! What every request learns about its caller before any handler runs: the
//! client address (behind trusted proxies, see [`crate::client_addr`]),
//! recorded in the request's log span and handed to handlers as
//! [`ClientIp`]; and the refusal of API tokens in URLs outside the
//! WebSocket endpoint.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    http::request::Parts,
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{ApiError, AppState};
use crate::auth::AuthError;

/// The client's address, as throttling, caps and logs use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            return Ok(*ip);
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .ok_or(ApiError::Unavailable)?
            .0;
        Ok(ClientIp(app.proxies.client_ip(peer.ip(), &parts.headers)))
    }
}

/// Whether the query string carries a `token` parameter.
pub fn has_query_token(uri: &axum::http::Uri) -> bool {
    let Some(query) = uri.query() else {
        return false;
    };
    // Decoded the way the WebSocket endpoint decodes it, so that `%74oken`
    // is caught too.
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0.iter().any(|(k, _)| k == "token"))
        .unwrap_or_else(|_| query.split('&').any(|pair| pair.starts_with("token=")))
}

/// Whether this path is the WebSocket endpoint, the one place a token may
/// ride in the URL (browsers cannot set headers on a WebSocket).
pub fn is_sync_path(path: &str) -> bool {
    path.strip_prefix("/sync/")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// Middleware: finds the client address, records it in the request span,
/// and refuses `?token=` anywhere but `/sync/{meetingId}`.
pub async fn client_context(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let ip = app.proxies.client_ip(peer, request.headers());
        tracing::Span::current().record("client", tracing::field::display(ip));
        request.extensions_mut().insert(ClientIp(ip));
    }
    if has_query_token(request.uri()) && !is_sync_path(request.uri().path()) {
        return ApiError::Unauthenticated(AuthError::TokenInUrl).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sync_endpoint_takes_a_token_in_the_url() {
        assert!(is_sync_path("/sync/3f2b9c4e-8a1d-4c55-9e0b-6a7d2f1c0e42"));
        assert!(!is_sync_path("/sync/"));
        assert!(!is_sync_path("/sync/x/y"));
        assert!(!is_sync_path("/api/me"));
        assert!(!is_sync_path("/api/sync/x"));
    }

    #[test]
    fn query_tokens_are_found_however_they_are_written() {
        let has = |s: &str| has_query_token(&s.parse().unwrap());
        assert!(has("/api/me?token=pk_x"));
        assert!(has("/api/me?a=1&token="));
        assert!(has("/api/me?%74oken=pk_x"));
        assert!(!has("/api/me?tokens=1"));
        assert!(!has("/api/me"));
    }
}
