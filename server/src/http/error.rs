//! The JSON API's error type: every failure answers with a status, a
//! machine-readable code and a human message. Internal errors are logged
//! with their detail and answered generically.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tracing::error;

use crate::{
    meetings::{LOCKED, MeetingError},
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(crate::auth::AuthError),
    #[error("wrong username or password")]
    WrongCredentials,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Throttled(String, u64),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the server is busy or its database is unreachable")]
    Unavailable,
    /// Busy for a moment (password hashing or connections at their limit):
    /// 503 with `Retry-After` in seconds.
    #[error("{0}")]
    Busy(&'static str, u64),
    /// A request body larger than the route takes: 413.
    #[error("{0}")]
    TooLarge(String),
    /// A request body that did not arrive in time: 408.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// A protocol that cannot become its archival PDF: 422 with the
    /// section and the problem, for the secretary to act on.
    #[error("the protocol cannot be archived as PDF: {0}")]
    Unarchivable(protokoll_render::Problem),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    /// With `not_archivable`: the section (`item`: id, number, title, or
    /// null for the protocol as a whole) and the problem (`kind` and its
    /// figures).
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'a protokoll_render::Problem>,
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// Seconds to wait before trying again, for 429 and 503 `busy`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Throttled(_, retry) | ApiError::Busy(_, retry) => Some(*retry),
            _ => None,
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use crate::auth::AuthError;
        match self {
            ApiError::Unauthenticated(AuthError::SessionExpired) => {
                (StatusCode::UNAUTHORIZED, "session_expired")
            }
            ApiError::Unauthenticated(AuthError::InvalidToken) => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            ApiError::Unauthenticated(AuthError::TokenInUrl) => {
                (StatusCode::UNAUTHORIZED, "token_in_url")
            }
            ApiError::Unauthenticated(AuthError::Store(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::WrongCredentials => (StatusCode::UNAUTHORIZED, "wrong_credentials"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Throttled(..) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Busy(..) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::Unarchivable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not_archivable"),
            ApiError::Store(e) if locked(e) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<crate::auth::password::Busy> for ApiError {
    fn from(_: crate::auth::password::Busy) -> Self {
        ApiError::Busy(
            "too many passwords are being checked at once; try again in a moment",
            crate::auth::password::BUSY_RETRY_AFTER_SECS,
        )
    }
}

impl From<crate::auth::password::HashError> for ApiError {
    fn from(e: crate::auth::password::HashError) -> Self {
        match e {
            crate::auth::password::HashError::Busy(busy) => busy.into(),
            crate::auth::password::HashError::Failed => ApiError::Unavailable,
        }
    }
}

/// A write the database refused because the protocol is locked (a lock
/// that slipped in after the API's own check).
fn locked(e: &StoreError) -> bool {
    match e {
        StoreError::Locked => true,
        StoreError::Database(e) => crate::store::is_locked_refusal(e),
        _ => false,
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        ApiError::Unauthenticated(e)
    }
}

/// Store errors that are the caller's doing map to 409 and 422.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict => ApiError::Conflict("that already exists"),
        StoreError::UnknownReference => {
            ApiError::Invalid("refers to an agency or user that does not exist".into())
        }
        StoreError::NameTaken => ApiError::Conflict(crate::people::NAME_TAKEN),
        other => ApiError::Store(other),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Store(e) if locked(e) => LOCKED.to_owned(),
            ApiError::Store(e) | ApiError::Unauthenticated(crate::auth::AuthError::Store(e)) => {
                error!(error = %e, "request failed");
                "internal error; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(Body {
                error: ErrorBody {
                    code,
                    message,
                    problem: match &self {
                        ApiError::Unarchivable(problem) => Some(problem),
                        _ => None,
                    },
                },
            }),
        )
            .into_response();
        if let ApiError::Throttled(_, retry) | ApiError::Busy(_, retry) = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry),
            );
        }
        response
    }
}

impl From<MeetingError> for ApiError {
    fn from(e: MeetingError) -> Self {
        match e {
            MeetingError::NotFound(m) => ApiError::NotFound(m),
            MeetingError::Forbidden(m) => ApiError::Forbidden(m),
            MeetingError::Conflict(m) => ApiError::Conflict(m),
            MeetingError::NamesClash(..) => ApiError::Conflict(crate::people::NAME_TAKEN),
            MeetingError::Invalid(m) => ApiError::Invalid(m),
            MeetingError::Unavailable => ApiError::Unavailable,
            MeetingError::Refused(e) => store_error(e),
            MeetingError::Store(e) => ApiError::Store(e),
            MeetingError::Hash(e) => e.into(),
        }
    }
}

/// Turns axum's JSON extractor rejections into our error shape.
pub fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    use axum::extract::rejection::JsonRejection as R;
    match rejection {
        R::JsonDataError(e) => ApiError::Invalid(e.body_text()),
        R::MissingJsonContentType(e) => ApiError::UnsupportedMediaType(e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge(other.body_text())
        }
        other => ApiError::Malformed(other.body_text()),
    }
}
