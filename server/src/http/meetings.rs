//! `/api/meetings` and `/api/meetings/{id}`: listing, creating, reading and
//! changing meetings. Who may do what is decided by `crate::meetings`;
//! this module maps requests and answers.

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    auth::CurrentUser,
    call::Call,
    error::{ApiError, json_rejection},
    participants::ParticipantView,
};
use crate::{
    meeting::{Meeting, MeetingDetails, MeetingTitle},
    meetings::{Company, Creator, NewMeeting},
    people::{Role, Section},
};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeetingInput {
    title: String,
    #[serde(default)]
    body: String,
    /// `YYYY-MM-DD`
    date: Option<String>,
    /// `HH:MM`
    time: Option<String>,
    #[serde(default)]
    place: String,
    /// Create from this earlier meeting (only on `POST`): its agenda, the
    /// sections' owners and its participants with their roles are copied.
    /// You must be able to read it.
    #[serde(default)]
    from: Option<String>,
}

impl MeetingInput {
    fn parse(&self) -> Result<(MeetingTitle, MeetingDetails), ApiError> {
        let invalid = |e: &dyn std::fmt::Display| ApiError::Invalid(e.to_string());
        let title = MeetingTitle::parse(&self.title).map_err(|e| invalid(&e))?;
        let details = MeetingDetails::parse(
            &self.body,
            self.date.as_deref(),
            self.time.as_deref(),
            &self.place,
        )
        .map_err(|e| invalid(&e))?;
        Ok((title, details))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeetingListItem {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    meeting: Meeting,
    /// Your role in the meeting, if you are a participant.
    #[schema(value_type = Option<String>)]
    your_role: Option<Role>,
}

/// Meetings you take part in (all of them, for administrators), each with
/// your role in it.
#[utoipa::path(get, path = "/api/meetings", tag = "meetings",
    responses((status = 200, body = Vec<MeetingListItem>), (status = 401)))]
pub async fn list(
    State(app): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<MeetingListItem>>, ApiError> {
    let meetings = app.meetings().list(&me.0.user).await?;
    Ok(Json(
        meetings
            .into_iter()
            .map(|(meeting, your_role)| MeetingListItem { meeting, your_role })
            .collect(),
    ))
}

/// Create a meeting; you become its secretary. Administrators, and people
/// an administrator has allowed to (`can_create_meetings`), only.
#[utoipa::path(post, path = "/api/meetings", tag = "meetings", request_body = MeetingInput,
    responses((status = 201), (status = 401), (status = 403), (status = 422)))]
pub async fn create(
    State(app): State<AppState>,
    me: CurrentUser,
    body: Result<Json<MeetingInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Meeting>), ApiError> {
    let meetings = app.meetings();
    let creator = Creator::user(&me.0.user)?;
    let Json(body) = body.map_err(json_rejection)?;
    let (title, details) = body.parse()?;
    // Read the earlier meeting first: nothing is created if it is not
    // yours to read (404, as for any meeting you cannot see), or when its
    // participants could not all join (an earlier meeting may hold names
    // that read the same, from before they were refused).
    let (company, agenda) = match &body.from {
        Some(from) => {
            let (sections, participants) = meetings.template(&me.0.user, from).await?;
            let people = participants.into_iter().map(|p| (p.user, p.role));
            let company = Company::gather(&creator, people.collect())?;
            let agenda = sections.into_iter().map(|s| (s, &[][..])).collect();
            (company, Some(agenda))
        }
        None => (Company::default(), None),
    };
    let new = NewMeeting {
        title,
        details,
        company,
        agenda,
    };
    let meeting = meetings.create(&creator, new).await?;
    Ok((StatusCode::CREATED, Json(meeting)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeetingView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    meeting: Meeting,
    /// Your role in the meeting, if you are a participant.
    #[schema(value_type = Option<String>)]
    your_role: Option<Role>,
    #[schema(value_type = Vec<Object>)]
    agenda: Vec<Section>,
    participants: Vec<ParticipantView>,
    /// The document's encoded size as stored (its snapshot plus the updates
    /// logged after it), in bytes.
    document_bytes: u64,
    /// The most the document may hold (`--max-document-bytes`); updates
    /// that would take it past this are refused.
    document_limit_bytes: u64,
}

/// A meeting with its agenda and participants.
#[utoipa::path(get, path = "/api/meetings/{id}", tag = "meetings",
    responses((status = 200, body = MeetingView), (status = 401), (status = 404)))]
pub async fn get(call: Call) -> Result<Json<MeetingView>, ApiError> {
    let overview = call
        .app
        .meetings()
        .overview(call.user(), &call.path)
        .await?;
    Ok(Json(MeetingView {
        meeting: overview.meeting,
        your_role: overview.your_role,
        agenda: overview.agenda,
        participants: overview.participants.into_iter().map(Into::into).collect(),
        document_bytes: overview.document_bytes,
        document_limit_bytes: call.app.config.max_document_bytes,
    }))
}

/// Change a meeting's title, body, date, time or place.
#[utoipa::path(put, path = "/api/meetings/{id}", tag = "meetings", request_body = MeetingInput,
    responses((status = 200), (status = 403), (status = 404)))]
pub async fn update(
    call: Call,
    body: Result<Json<MeetingInput>, JsonRejection>,
) -> Result<Json<Meeting>, ApiError> {
    let (meetings, draft, body) = call.draft(body).await?;
    let (title, details) = body.parse()?;
    Ok(Json(meetings.update(draft, title, details).await?))
}
