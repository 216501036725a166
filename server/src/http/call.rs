//! The one extractor most API handlers start from: the application state,
//! the signed-in caller and the route's path parameters, taken in the order
//! the handlers always took them (the caller first, so that 401 comes
//! before anything about the path); and, for a meeting's routes, the two
//! steps their changes start with (the meeting for its manager, then the
//! body).

use axum::{
    Json,
    extract::{FromRequestParts, Path, rejection::JsonRejection},
    http::request::Parts,
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;

use super::{
    AppState,
    auth::CurrentUser,
    error::{ApiError, json_rejection},
};
use crate::{
    meetings::{Draft, Managed, Meetings},
    people::User,
};

/// A signed-in request to a route with path parameters `P` (one id by
/// default; a tuple for routes such as `/api/meetings/{id}/agenda/{section}`).
pub struct Call<P = String> {
    pub app: AppState,
    pub me: CurrentUser,
    pub path: P,
}

impl<P> Call<P> {
    /// The signed-in user.
    pub fn user(&self) -> &User {
        &self.me.0.user
    }
}

impl<P> FromRequestParts<AppState> for Call<P>
where
    P: DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let me = CurrentUser::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(path) = Path::<P>::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            app: app.clone(),
            me,
            path,
        })
    }
}

/// Path parameters that start with a meeting's id.
pub trait MeetingPath {
    fn meeting(&self) -> &str;
}

impl MeetingPath for String {
    fn meeting(&self) -> &str {
        self
    }
}

impl MeetingPath for (String, String) {
    fn meeting(&self) -> &str {
        &self.0
    }
}

impl<P: MeetingPath> Call<P> {
    /// The meetings service and the meeting, for its secretary or an
    /// administrator (403 or 404 for anyone else).
    pub async fn manage(&self) -> Result<(Meetings<'_>, Managed), ApiError> {
        let meetings = self.app.meetings();
        let managed = meetings.manage(self.user(), self.path.meeting()).await?;
        Ok((meetings, managed))
    }

    /// Like [`Call::manage`], while the protocol is a draft, and then the
    /// JSON body: who may and whether it may still change come before what
    /// the body says.
    pub async fn draft<T>(
        &self,
        body: Result<Json<T>, JsonRejection>,
    ) -> Result<(Meetings<'_>, Draft, T), ApiError> {
        let meetings = self.app.meetings();
        let draft = meetings
            .manage_draft(self.user(), self.path.meeting())
            .await?;
        let Json(body) = body.map_err(json_rejection)?;
        Ok((meetings, draft, body))
    }
}
