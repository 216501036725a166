//! Request bodies: how long they may take to arrive and how large they may
//! be, for every route that takes one.
//!
//! A body is cut off when it has not fully arrived
//! `--request-body-timeout-secs` after the request began. This is a
//! deadline, not a timeout between pieces (tower-http's
//! `RequestBodyTimeout` waits afresh after every frame, so a client sending
//! a byte a minute would hold its connection for ever). The answer is then
//! 408, whatever the handler made of the broken body, and the connection
//! closes. Requests without a body (GET, WebSocket upgrades) are not
//! touched.
//!
//! JSON bodies are small: [`MAX_JSON_BYTES`] for every route, except the
//! verification routes, which take a file and hash it as it arrives.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    body::{Body, HttpBody},
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use super::{ApiError, AppState};

/// Largest body of the JSON routes. The largest real one (a rejection
/// with its 2,000-character reason, an agenda order of a few hundred
/// sections) is a few KiB.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// The error a body stream ends with at its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyDeadline;

/// Middleware: gives every request body a deadline.
pub async fn body_deadline(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let deadline = tokio::time::Instant::now() + app.config.request_body_timeout();
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    let (parts, body) = request.into_parts();
    let chunks = futures::stream::unfold(Some(body.into_data_stream()), move |state| {
        let flag = flag.clone();
        async move {
            let mut chunks = state?;
            match tokio::time::timeout_at(deadline, chunks.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(chunks))),
                Ok(Some(Err(e))) => Some((Err(axum::BoxError::from(e)), None)),
                Ok(None) => None,
                Err(_) => {
                    flag.store(true, Ordering::Relaxed);
                    Some((Err(axum::BoxError::from(BodyDeadline)), None))
                }
            }
        }
    });
    let response = next
        .run(Request::from_parts(parts, Body::from_stream(chunks)))
        .await;
    if fired.load(Ordering::Relaxed) {
        return ApiError::BodyTimeout.into_response();
    }
    response
}
