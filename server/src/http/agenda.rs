//! `/api/meetings/{id}/agenda`: the agenda's sections, in order. Who may
//! change it, and how it reaches the document, is `crate::meetings`'s;
//! this module maps requests and answers.

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
};
use serde::Deserialize;

use super::{
    AppState,
    auth::CurrentUser,
    error::{ApiError, json_rejection},
};
use crate::{
    meetings::{NewSection, SectionChange},
    people::Section,
};

/// The agenda, in order.
#[utoipa::path(get, path = "/api/meetings/{id}/agenda", tag = "agenda", responses((status = 200), (status = 404)))]
pub async fn agenda(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<Section>>, ApiError> {
    Ok(Json(app.meetings().agenda(&me.0.user, &id).await?))
}

/// Add a section at the end of the agenda.
#[utoipa::path(post, path = "/api/meetings/{id}/agenda", tag = "agenda", request_body = NewSection,
    responses((status = 201), (status = 403), (status = 404), (status = 409)))]
pub async fn add_section(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<NewSection>, JsonRejection>,
) -> Result<(StatusCode, Json<Section>), ApiError> {
    let meetings = app.meetings();
    let draft = meetings.manage_draft(&me.0.user, &id).await?;
    let Json(body) = body.map_err(json_rejection)?;
    let section = meetings.add_section(&draft, body).await?;
    Ok((StatusCode::CREATED, Json(section)))
}

/// Rename, renumber or reassign a section.
#[utoipa::path(patch, path = "/api/meetings/{id}/agenda/{section}", tag = "agenda", request_body = SectionChange,
    responses((status = 200), (status = 403), (status = 404)))]
pub async fn change_section(
    State(app): State<AppState>,
    me: CurrentUser,
    Path((id, section)): Path<(String, String)>,
    body: Result<Json<SectionChange>, JsonRejection>,
) -> Result<Json<Section>, ApiError> {
    let meetings = app.meetings();
    let draft = meetings.manage_draft(&me.0.user, &id).await?;
    let Json(body) = body.map_err(json_rejection)?;
    Ok(Json(meetings.change_section(&draft, &section, body).await?))
}

/// Remove a section from the agenda. Its text stays in the document but is
/// no longer shown, and nobody may write it.
#[utoipa::path(delete, path = "/api/meetings/{id}/agenda/{section}", tag = "agenda",
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove_section(
    State(app): State<AppState>,
    me: CurrentUser,
    Path((id, section)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let meetings = app.meetings();
    let managed = meetings.manage(&me.0.user, &id).await?;
    meetings.remove_section(&managed, &section).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgendaOrder {
    /// Every section id of the meeting, once, in the new order.
    sections: Vec<String>,
}

/// Reorder the agenda.
#[utoipa::path(put, path = "/api/meetings/{id}/agenda/order", tag = "agenda", request_body = AgendaOrder,
    responses((status = 200), (status = 403), (status = 404), (status = 422)))]
pub async fn reorder(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<AgendaOrder>, JsonRejection>,
) -> Result<Json<Vec<Section>>, ApiError> {
    let meetings = app.meetings();
    let draft = meetings.manage_draft(&me.0.user, &id).await?;
    let Json(body) = body.map_err(json_rejection)?;
    Ok(Json(meetings.reorder(&draft, &body.sections).await?))
}
