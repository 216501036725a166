//! `/api/meetings/{id}/participants`: who takes part in a meeting, and
//! with which role. Who may change that, and what a change does to open
//! connections, is `crate::meetings`'s; this module maps requests and
//! answers.

use axum::{Json, extract::rejection::JsonRejection, http::StatusCode};
use serde::{Deserialize, Serialize};

use super::{auth::UserView, call::Call, error::ApiError};
use crate::people::{Participant, Role};

#[derive(Serialize, utoipa::ToSchema)]
pub struct ParticipantView {
    user: UserView,
    #[schema(value_type = String)]
    role: Role,
}

impl From<Participant> for ParticipantView {
    fn from(p: Participant) -> Self {
        Self {
            user: p.user.into(),
            role: p.role,
        }
    }
}

/// The participants and their roles.
#[utoipa::path(get, path = "/api/meetings/{id}/participants", tag = "participants", responses((status = 200), (status = 404)))]
pub async fn participants(call: Call) -> Result<Json<Vec<ParticipantView>>, ApiError> {
    let participants = call
        .app
        .meetings()
        .participants(call.user(), &call.path)
        .await?;
    Ok(Json(participants.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    #[schema(value_type = String)]
    role: Role,
}

/// Add a participant, or change their role (their open connections to the
/// meeting reconnect).
#[utoipa::path(put, path = "/api/meetings/{id}/participants/{user}", tag = "participants", request_body = RoleInput,
    responses((status = 204), (status = 403), (status = 404),
        (status = 409, description = "the protocol is locked, or a participant's name reads the same"),
        (status = 422)))]
pub async fn set_participant(
    call: Call<(String, String)>,
    body: Result<Json<RoleInput>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let (meetings, draft, body) = call.draft(body).await?;
    meetings
        .set_participant(&draft, &call.path.1, body.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a participant; their open connections to the meeting close.
#[utoipa::path(delete, path = "/api/meetings/{id}/participants/{user}", tag = "participants",
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "the protocol is locked")))]
pub async fn remove_participant(call: Call<(String, String)>) -> Result<StatusCode, ApiError> {
    let (id, user) = &call.path;
    let meetings = call.app.meetings();
    let draft = meetings.manage_draft(call.user(), id).await?;
    meetings.remove_participant(&draft, user).await?;
    Ok(StatusCode::NO_CONTENT)
}
