//! `/api/meetings/{id}/invitations` and `/api/invitations/{secret}`:
//! inviting someone new to a meeting, and the invitee's side (what the
//! link is for, accepting it). The rules are `crate::meetings`'s; this
//! module maps requests and answers, and signs the new account in.

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
    response::Response,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    auth::{UserView, signed_in},
    call::Call,
    error::{ApiError, json_rejection},
};
use crate::{
    auth,
    meeting::MeetingId,
    meetings::InvitationInput,
    people::{InvitationId, Role, Username},
    store::PendingInvitation,
};

#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedInvitation {
    /// Identifies the invitation to list or revoke it.
    #[schema(value_type = String, format = Uuid)]
    id: InvitationId,
    /// The link to send to the invitee; it works once.
    url: String,
    secret: String,
    expires_at: DateTime<Utc>,
}

/// Invite someone new: they choose their own password through the link.
///
/// Only administrators may put the newcomer in an agency (`agency_id`); a
/// secretary's invitations make accounts without one. Whether the username
/// is taken is not revealed here (any secretary could otherwise probe which
/// usernames exist): the answer is the same, and only the invitee learns it
/// when accepting.
#[utoipa::path(post, path = "/api/meetings/{id}/invitations", tag = "participants", request_body = InvitationInput,
    responses((status = 201, body = IssuedInvitation), (status = 403),
        (status = 409, description = "the protocol is locked, or a participant's name reads the same"),
        (status = 422)))]
pub async fn invite(
    call: Call,
    body: Result<Json<InvitationInput>, JsonRejection>,
) -> Result<(StatusCode, Json<IssuedInvitation>), ApiError> {
    let (meetings, draft, body) = call.draft(body).await?;
    let issued = meetings.invite(&draft, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedInvitation {
            id: issued.id,
            url: format!("/invite/{}", issued.secret),
            secret: issued.secret,
            expires_at: issued.expires_at,
        }),
    ))
}

/// The meeting's pending invitations (not used, revoked or expired).
#[utoipa::path(get, path = "/api/meetings/{id}/invitations", tag = "participants",
    responses((status = 200, body = Vec<PendingInvitation>), (status = 403), (status = 404)))]
pub async fn list_invitations(call: Call) -> Result<Json<Vec<PendingInvitation>>, ApiError> {
    let (meetings, managed) = call.manage().await?;
    Ok(Json(meetings.invitations(&managed).await?))
}

/// Revoke a pending invitation: its link stops working.
#[utoipa::path(delete, path = "/api/meetings/{id}/invitations/{invitation}", tag = "participants",
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn revoke_invitation(call: Call<(String, String)>) -> Result<StatusCode, ApiError> {
    let (meetings, managed) = call.manage().await?;
    meetings.revoke_invitation(&managed, &call.path.1).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    meeting_title: String,
    /// Where the invitee lands after accepting.
    #[schema(value_type = String, format = Uuid)]
    meeting_id: MeetingId,
    #[schema(value_type = String)]
    username: Username,
    display_name: String,
    #[schema(value_type = String)]
    role: Role,
    expires_at: DateTime<Utc>,
}

/// What an invitation is for (no sign-in needed: the link is the key).
#[utoipa::path(get, path = "/api/invitations/{secret}", tag = "participants",
    responses((status = 200, body = InvitationView), (status = 403), (status = 404)))]
pub async fn show_invitation(
    State(app): State<AppState>,
    Path(secret): Path<String>,
) -> Result<Json<InvitationView>, ApiError> {
    let (meeting, invitation) = app.meetings().invitation(&secret).await?;
    Ok(Json(InvitationView {
        meeting_title: meeting.title.as_str().to_owned(),
        meeting_id: meeting.id,
        username: invitation.username,
        display_name: invitation.display_name,
        role: invitation.role,
        expires_at: invitation.expires_at,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    password: String,
}

/// Accept an invitation: choose a password; you are signed in. The new
/// account is not yet confirmed: it may take part, but not sign a
/// protocol off, until an administrator confirms it.
#[utoipa::path(post, path = "/api/invitations/{secret}/accept", tag = "participants", request_body = AcceptInvitation,
    responses((status = 201, body = UserView), (status = 403), (status = 404), (status = 409), (status = 422), (status = 503)))]
pub async fn accept_invitation(
    State(app): State<AppState>,
    Path(secret): Path<String>,
    body: Result<Json<AcceptInvitation>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    let user = app
        .meetings()
        .accept_invitation(&secret, &body.password)
        .await?;
    let session = auth::open_session(&app.db.dir, user, app.config.session_ttl()).await?;
    Ok(signed_in(&app, session, StatusCode::CREATED))
}
