//! `/api/meetings/{id}/agenda`: the agenda's sections, in order. Who may
//! change it, and how it reaches the document, is `crate::meetings`'s;
//! this module maps requests and answers.

use axum::{Json, extract::rejection::JsonRejection, http::StatusCode};
use serde::Deserialize;

use super::{call::Call, error::ApiError};
use crate::{
    meetings::{NewSection, SectionChange},
    people::Section,
};

/// The agenda, in order.
#[utoipa::path(get, path = "/api/meetings/{id}/agenda", tag = "agenda", responses((status = 200), (status = 404)))]
pub async fn agenda(call: Call) -> Result<Json<Vec<Section>>, ApiError> {
    Ok(Json(
        call.app.meetings().agenda(call.user(), &call.path).await?,
    ))
}

/// Add a section at the end of the agenda.
#[utoipa::path(post, path = "/api/meetings/{id}/agenda", tag = "agenda", request_body = NewSection,
    responses((status = 201), (status = 403), (status = 404), (status = 409)))]
pub async fn add_section(
    call: Call,
    body: Result<Json<NewSection>, JsonRejection>,
) -> Result<(StatusCode, Json<Section>), ApiError> {
    let (meetings, draft, body) = call.draft(body).await?;
    let section = meetings.add_section(&draft, body).await?;
    Ok((StatusCode::CREATED, Json(section)))
}

/// Rename, renumber or reassign a section.
#[utoipa::path(patch, path = "/api/meetings/{id}/agenda/{section}", tag = "agenda", request_body = SectionChange,
    responses((status = 200), (status = 403), (status = 404)))]
pub async fn change_section(
    call: Call<(String, String)>,
    body: Result<Json<SectionChange>, JsonRejection>,
) -> Result<Json<Section>, ApiError> {
    let (meetings, draft, body) = call.draft(body).await?;
    let section = &call.path.1;
    Ok(Json(meetings.change_section(&draft, section, body).await?))
}

/// Remove a section from the agenda. Its text stays in the document but is
/// no longer shown, and nobody may write it.
#[utoipa::path(delete, path = "/api/meetings/{id}/agenda/{section}", tag = "agenda",
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove_section(call: Call<(String, String)>) -> Result<StatusCode, ApiError> {
    let (meetings, managed) = call.manage().await?;
    meetings.remove_section(&managed, &call.path.1).await?;
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
    call: Call,
    body: Result<Json<AgendaOrder>, JsonRejection>,
) -> Result<Json<Vec<Section>>, ApiError> {
    let (meetings, draft, body) = call.draft(body).await?;
    Ok(Json(meetings.reorder(&draft, &body.sections).await?))
}
