//! `/api/meetings`: create, list and look up meetings.

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
};
use serde::Deserialize;

use super::{AppState, error::ApiError, error::json_rejection};
use crate::meeting::{Meeting, MeetingId, MeetingTitle};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMeeting {
    title: String,
}

pub async fn create(
    State(app): State<AppState>,
    body: Result<Json<CreateMeeting>, JsonRejection>,
) -> Result<(StatusCode, Json<Meeting>), ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    let title = MeetingTitle::parse(&body.title).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let meeting = app.store.create_meeting(title).await?;
    Ok((StatusCode::CREATED, Json(meeting)))
}

pub async fn list(State(app): State<AppState>) -> Result<Json<Vec<Meeting>>, ApiError> {
    Ok(Json(app.store.list_meetings().await?))
}

pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Meeting>, ApiError> {
    let id: MeetingId = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such meeting"))?;
    app.store
        .get_meeting(id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("no such meeting"))
}
