//! `/api/meetings/...`: meetings, their agenda, participants and
//! invitations. Only participants and administrators see a meeting (others
//! get 404: a meeting's existence is not public); only its secretary and
//! administrators change it (other participants get 403).

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
    auth::{CurrentUser, UserView, signed_in},
    error::{ApiError, json_rejection, store_error},
};
use crate::{
    access::MeetingAccess,
    auth::{self, password, secret},
    cluster::AccountEvent,
    document::{AgendaEntry, seed_empty_sections, write_agenda},
    meeting::{Meeting, MeetingDetails, MeetingId, MeetingTitle},
    people::{
        AgencyId, InvitationId, NewPassword, Participant, Role, Section, SectionId, SectionOwner,
        UserId, Username, checked_text, first_clash, optional_name, parse_date, parse_name,
        parse_time,
    },
    store::{Acceptance, PendingInvitation},
    sync::peer::close_code,
};

/// How long an invitation link works.
const INVITATION_TTL_DAYS: i64 = 14;

fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid(e.to_string())
}

const NO_SUCH_MEETING: ApiError = ApiError::NotFound("no such meeting");

/// The meeting and what the caller may do in it; 404 unless they may read.
pub async fn open(
    app: &AppState,
    me: &CurrentUser,
    id: &str,
) -> Result<(Meeting, MeetingAccess), ApiError> {
    let id: MeetingId = id.parse().map_err(|_| NO_SUCH_MEETING)?;
    let meeting = app.db.dir.get_meeting(id).await?.ok_or(NO_SUCH_MEETING)?;
    let user = &me.0.user;
    let access = MeetingAccess {
        role: app.db.dir.role(id, user.id).await?,
        is_admin: user.is_admin,
    };
    if !access.can_read() {
        return Err(NO_SUCH_MEETING);
    }
    Ok((meeting, access))
}

async fn manage(app: &AppState, me: &CurrentUser, id: &str) -> Result<Meeting, ApiError> {
    let (meeting, access) = open(app, me, id).await?;
    if !access.can_manage() {
        return Err(ApiError::Forbidden(
            "only the meeting's secretary may change this",
        ));
    }
    Ok(meeting)
}

/// Like `manage`, for changes to what the protocol shows (its details,
/// agenda and participants): refused with 409 once it is locked, so that
/// § numbers and the header stay as they were at the lock.
async fn manage_draft(app: &AppState, me: &CurrentUser, id: &str) -> Result<Meeting, ApiError> {
    let meeting = manage(app, me, id).await?;
    if meeting.state != crate::meeting::ProtocolState::Draft {
        return Err(ApiError::Conflict(super::error::LOCKED));
    }
    Ok(meeting)
}

/// Mirrors the agenda from the database into the meeting's document, so
/// every connected client sees it change live.
pub async fn sync_agenda(app: &AppState, meeting: MeetingId) -> Result<(), ApiError> {
    let sections = app.db.dir.sections(meeting).await?;
    let agencies = app.db.dir.list_agencies().await?;
    let ownership = crate::guard::Ownership::from_sections(sections.clone());
    let mut entries = Vec::with_capacity(sections.len());
    for s in sections {
        let owner_name = match s.owner.clone() {
            SectionOwner::Agency { agency_id } => agencies
                .iter()
                .find(|a| a.id == agency_id)
                .map(|a| a.name.clone())
                .unwrap_or_default(),
            SectionOwner::User { user_id } => app
                .db
                .dir
                .user(user_id)
                .await?
                .map(|u| u.display_name)
                .unwrap_or_default(),
            SectionOwner::Secretary => "Sekreterare".into(),
        };
        entries.push(AgendaEntry {
            id: s.id.as_str().to_owned(),
            number: s.number,
            title: s.title,
            owner: s.owner.label(),
            owner_name,
        });
    }
    app.rooms
        .server_edit(
            meeting,
            ownership,
            Box::new(move |txn| {
                write_agenda(txn, &entries);
                seed_empty_sections(txn, entries.iter().map(|e| e.id.as_str()));
            }),
        )
        .await
        .map_err(|_| ApiError::Unavailable)
}

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

fn parse_meeting(input: &MeetingInput) -> Result<(MeetingTitle, MeetingDetails), ApiError> {
    let title = MeetingTitle::parse(&input.title).map_err(invalid)?;
    Ok((
        title,
        MeetingDetails {
            body: optional_name(&input.body).map_err(invalid)?,
            date: input
                .date
                .as_deref()
                .map(parse_date)
                .transpose()
                .map_err(invalid)?,
            time: input
                .time
                .as_deref()
                .map(parse_time)
                .transpose()
                .map_err(invalid)?,
            place: optional_name(&input.place).map_err(invalid)?,
        },
    ))
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
    let user = &me.0.user;
    let filter = (!user.is_admin).then_some(user.id);
    let roles: std::collections::HashMap<_, _> =
        app.db.dir.roles_of(user.id).await?.into_iter().collect();
    Ok(Json(
        app.db
            .dir
            .list_meetings(filter)
            .await?
            .into_iter()
            .map(|meeting| MeetingListItem {
                your_role: roles.get(&meeting.id).copied(),
                meeting,
            })
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
    if !me.0.user.may_create_meetings() {
        return Err(ApiError::Forbidden(
            "only administrators, and people an administrator has allowed to, may create meetings",
        ));
    }
    let Json(body) = body.map_err(json_rejection)?;
    let (title, details) = parse_meeting(&body)?;
    // Read the earlier meeting first: nothing is created if it is not
    // yours to read (404, as for any meeting you cannot see).
    let earlier = match &body.from {
        Some(from) => {
            let (source, _) = open(&app, &me, from).await?;
            let participants = app.db.dir.participants(source.id).await?;
            // Nothing is created when the copied participants could not all
            // join (an earlier meeting may hold names that read the same,
            // from before they were refused).
            let mut names = vec![me.0.user.display_name.as_str()];
            names.extend(
                participants
                    .iter()
                    .filter(|p| p.user.id != me.0.user.id)
                    .map(|p| p.user.display_name.as_str()),
            );
            if first_clash(&names).is_some() {
                return Err(ApiError::Conflict(crate::people::NAME_TAKEN));
            }
            Some((app.db.dir.sections(source.id).await?, participants))
        }
        None => None,
    };
    let meeting = app
        .db
        .dir
        .create_meeting(title, details, Some(me.0.user.id))
        .await
        .map_err(store_error)?;
    if let Some((sections, participants)) = earlier {
        for p in participants.iter().filter(|p| p.user.id != me.0.user.id) {
            app.db
                .dir
                .set_participant(meeting.id, p.user.id, p.role)
                .await
                .map_err(store_error)?;
        }
        for section in &sections {
            app.db
                .dir
                .add_section(meeting.id, section)
                .await
                .map_err(store_error)?;
        }
        sync_agenda(&app, meeting.id).await?;
    }
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

/// A meeting with its agenda and participants.
#[utoipa::path(get, path = "/api/meetings/{id}", tag = "meetings",
    responses((status = 200, body = MeetingView), (status = 401), (status = 404)))]
pub async fn get(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<MeetingView>, ApiError> {
    let (meeting, access) = open(&app, &me, &id).await?;
    let agenda = app.db.dir.sections(meeting.id).await?;
    let participants = app.db.dir.participants(meeting.id).await?;
    let document_bytes = app.db.docs.document_bytes(meeting.id).await?;
    Ok(Json(MeetingView {
        meeting,
        your_role: access.role,
        agenda,
        participants: participants.into_iter().map(Into::into).collect(),
        document_bytes,
        document_limit_bytes: app.config.max_document_bytes,
    }))
}

/// Change a meeting's title, body, date, time or place.
#[utoipa::path(put, path = "/api/meetings/{id}", tag = "meetings", request_body = MeetingInput,
    responses((status = 200), (status = 403), (status = 404)))]
pub async fn update(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<MeetingInput>, JsonRejection>,
) -> Result<Json<Meeting>, ApiError> {
    let meeting = manage_draft(&app, &me, &id).await?;
    let Json(body) = body.map_err(json_rejection)?;
    let (title, details) = parse_meeting(&body)?;
    app.db
        .dir
        .update_meeting(meeting.id, &title, &details)
        .await?;
    Ok(Json(Meeting {
        title,
        details,
        ..meeting
    }))
}

/// The agenda, in order.
#[utoipa::path(get, path = "/api/meetings/{id}/agenda", tag = "agenda", responses((status = 200), (status = 404)))]
pub async fn agenda(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<Section>>, ApiError> {
    let (meeting, _) = open(&app, &me, &id).await?;
    Ok(Json(app.db.dir.sections(meeting.id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSection {
    /// Derived from the title when absent.
    id: Option<String>,
    /// The § number; the next whole number when absent.
    number: Option<String>,
    title: String,
    /// `{"kind": "agency", "agency_id": ...}`, `{"kind": "user", "user_id": ...}`
    /// or `{"kind": "secretary"}`.
    #[schema(value_type = Object)]
    owner: SectionOwner,
}

fn parse_number(raw: &str) -> Result<String, ApiError> {
    checked_text(raw, 16, "a § number is 1-16 characters").map_err(invalid)
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
    let meeting = manage_draft(&app, &me, &id).await?;
    let Json(body) = body.map_err(json_rejection)?;
    let title = parse_name(&body.title).map_err(invalid)?;
    let existing = app.db.dir.sections(meeting.id).await?;
    let section = Section {
        id: match &body.id {
            Some(id) => SectionId::parse(id).map_err(invalid)?,
            None => SectionId::from_title(&title),
        },
        number: match &body.number {
            Some(n) => parse_number(n)?,
            None => (existing
                .iter()
                .filter_map(|s| s.number.parse::<u32>().ok())
                .max()
                .unwrap_or(0)
                + 1)
            .to_string(),
        },
        title,
        owner: body.owner,
    };
    app.db
        .dir
        .add_section(meeting.id, &section)
        .await
        .map_err(store_error)?;
    sync_agenda(&app, meeting.id).await?;
    Ok((StatusCode::CREATED, Json(section)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionChange {
    number: Option<String>,
    title: Option<String>,
    #[schema(value_type = Option<Object>)]
    owner: Option<SectionOwner>,
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
    let meeting = manage_draft(&app, &me, &id).await?;
    let Json(body) = body.map_err(json_rejection)?;
    let mut current = app
        .db
        .dir
        .sections(meeting.id)
        .await?
        .into_iter()
        .find(|s| s.id.as_str() == section)
        .ok_or(ApiError::NotFound("no such section"))?;
    if let Some(n) = &body.number {
        current.number = parse_number(n)?;
    }
    if let Some(t) = &body.title {
        current.title = parse_name(t).map_err(invalid)?;
    }
    if let Some(owner) = body.owner {
        current.owner = owner;
    }
    app.db
        .dir
        .update_section(meeting.id, &current)
        .await
        .map_err(store_error)?;
    sync_agenda(&app, meeting.id).await?;
    Ok(Json(current))
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
    const NO_SUCH_SECTION: ApiError = ApiError::NotFound("no such section");
    let meeting = manage(&app, &me, &id).await?;
    let section = SectionId::parse(&section).map_err(|_| NO_SUCH_SECTION)?;
    if !app.db.dir.remove_section(meeting.id, &section).await? {
        return Err(NO_SUCH_SECTION);
    }
    sync_agenda(&app, meeting.id).await?;
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
    let meeting = manage_draft(&app, &me, &id).await?;
    let Json(body) = body.map_err(json_rejection)?;
    let existing = app.db.dir.sections(meeting.id).await?;
    let mut wanted: Vec<&str> = body.sections.iter().map(String::as_str).collect();
    let mut have: Vec<&str> = existing.iter().map(|s| s.id.as_str()).collect();
    wanted.sort_unstable();
    have.sort_unstable();
    if wanted != have {
        return Err(ApiError::Invalid(
            "name every section of the agenda exactly once".into(),
        ));
    }
    let order: Vec<SectionId> = body
        .sections
        .iter()
        .map(|s| SectionId::parse(s))
        .collect::<Result<_, _>>()
        .map_err(invalid)?;
    app.db.dir.reorder_sections(meeting.id, &order).await?;
    sync_agenda(&app, meeting.id).await?;
    Ok(Json(app.db.dir.sections(meeting.id).await?))
}

/// The participants and their roles.
#[utoipa::path(get, path = "/api/meetings/{id}/participants", tag = "participants", responses((status = 200), (status = 404)))]
pub async fn participants(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<ParticipantView>>, ApiError> {
    let (meeting, _) = open(&app, &me, &id).await?;
    Ok(Json(
        app.db
            .dir
            .participants(meeting.id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
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
    State(app): State<AppState>,
    me: CurrentUser,
    Path((id, user)): Path<(String, String)>,
    body: Result<Json<RoleInput>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let meeting = manage_draft(&app, &me, &id).await?;
    let Json(body) = body.map_err(json_rejection)?;
    let user: UserId = user.parse().map_err(invalid)?;
    let before = app.db.dir.role(meeting.id, user).await?;
    app.db
        .dir
        .set_participant(meeting.id, user, body.role)
        .await
        .map_err(store_error)?;
    if body.role != Role::Secretary {
        end_invitations_of_former_manager(&app, meeting.id, user).await?;
    }
    // A role decides what the connection may write: open connections
    // reconnect (1012) to pick up the new one. Only a participant or an
    // administrator can have one; a role set again unchanged, or a new
    // participant who is not an administrator, disturbs nobody (on several
    // nodes the announcement could otherwise arrive after the newcomer's
    // first connection and close it).
    let reconnect = match before {
        Some(role) => role != body.role,
        None => app.db.dir.user(user).await?.is_some_and(|u| u.is_admin),
    };
    if reconnect {
        app.close_connections(AccountEvent::participant(
            meeting.id,
            user,
            close_code::SERVICE_RESTART,
            "your role changed; reconnect",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a participant; their open connections to the meeting close.
#[utoipa::path(delete, path = "/api/meetings/{id}/participants/{user}", tag = "participants",
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "the protocol is locked")))]
pub async fn remove_participant(
    State(app): State<AppState>,
    me: CurrentUser,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let meeting = manage_draft(&app, &me, &id).await?;
    let user: UserId = user
        .parse()
        .map_err(|_| ApiError::NotFound("no such participant"))?;
    if !app.db.dir.remove_participant(meeting.id, user).await? {
        return Err(ApiError::NotFound("no such participant"));
    }
    end_invitations_of_former_manager(&app, meeting.id, user).await?;
    app.close_connections(AccountEvent::participant(
        meeting.id,
        user,
        close_code::FORBIDDEN,
        "removed from the meeting",
    ));
    Ok(StatusCode::NO_CONTENT)
}

/// Someone who stopped being a meeting's secretary may no longer invite
/// to it: the invitations they sent and nobody has used yet end. (An
/// administrator keeps the right, and their invitations.) Acceptance checks
/// the sender's right again in any case.
async fn end_invitations_of_former_manager(
    app: &AppState,
    meeting: MeetingId,
    user: UserId,
) -> Result<(), ApiError> {
    let still_admin = app.db.dir.user(user).await?.is_some_and(|u| u.is_admin);
    if !still_admin {
        let ended = app.db.dir.revoke_invitations_sent_by(meeting, user).await?;
        if ended > 0 {
            tracing::info!(%meeting, %user, ended, "ended invitations of a former secretary");
        }
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationInput {
    username: String,
    display_name: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    agency_id: Option<AgencyId>,
    #[schema(value_type = String)]
    role: Role,
}

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
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<InvitationInput>, JsonRejection>,
) -> Result<(StatusCode, Json<IssuedInvitation>), ApiError> {
    let meeting = manage_draft(&app, &me, &id).await?;
    let Json(body) = body.map_err(json_rejection)?;
    let username = Username::parse(&body.username).map_err(invalid)?;
    let display_name = parse_name(&body.display_name).map_err(invalid)?;
    if body.agency_id.is_some() && !me.0.user.is_admin {
        return Err(ApiError::Forbidden(
            "only administrators may put a person in an agency; invite without agency_id",
        ));
    }
    // Acceptance checks again (participants may change meanwhile); telling
    // the secretary now spares the invitee a link that cannot work.
    let taken = app.db.dir.participants(meeting.id).await?;
    if taken
        .iter()
        .any(|p| first_clash(&[p.user.display_name.as_str(), display_name.as_str()]).is_some())
    {
        return Err(ApiError::Conflict(crate::people::NAME_TAKEN));
    }
    let (secret, hash) = secret::generate(auth::INVITATION_PREFIX);
    let expires_at = Utc::now() + chrono::Duration::days(INVITATION_TTL_DAYS);
    let id = app
        .db
        .dir
        .create_invitation(
            &hash,
            meeting.id,
            &username,
            &display_name,
            body.agency_id,
            body.role,
            me.0.user.id,
            expires_at,
        )
        .await
        .map_err(store_error)?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedInvitation {
            id,
            url: format!("/invite/{secret}"),
            secret,
            expires_at,
        }),
    ))
}

/// The meeting's pending invitations (not used, revoked or expired).
#[utoipa::path(get, path = "/api/meetings/{id}/invitations", tag = "participants",
    responses((status = 200, body = Vec<PendingInvitation>), (status = 403), (status = 404)))]
pub async fn list_invitations(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<PendingInvitation>>, ApiError> {
    let meeting = manage(&app, &me, &id).await?;
    Ok(Json(
        app.db
            .dir
            .pending_invitations(meeting.id, Utc::now())
            .await?,
    ))
}

/// Revoke a pending invitation: its link stops working.
#[utoipa::path(delete, path = "/api/meetings/{id}/invitations/{invitation}", tag = "participants",
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn revoke_invitation(
    State(app): State<AppState>,
    me: CurrentUser,
    Path((id, invitation)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    const NO_SUCH: ApiError = ApiError::NotFound("no such pending invitation");
    let meeting = manage(&app, &me, &id).await?;
    let invitation: InvitationId = invitation.parse().map_err(|_| NO_SUCH)?;
    if !app.db.dir.revoke_invitation(meeting.id, invitation).await? {
        return Err(NO_SUCH);
    }
    Ok(StatusCode::NO_CONTENT)
}

const INVITATION_GONE: ApiError = ApiError::NotFound("this invitation is unknown, used or expired");
const INVITATION_WITHDRAWN: ApiError = ApiError::Forbidden(
    "this invitation no longer holds: the person who sent it may no longer invite to this \
     meeting; ask the meeting's secretary for a new one",
);

/// A usable invitation: unused, unrevoked, unexpired, and its sender may
/// still send it.
async fn pending_invitation(
    app: &AppState,
    secret: &str,
) -> Result<(Vec<u8>, crate::store::Invitation), ApiError> {
    let hash = secret::hash(secret);
    let invitation = app.db.dir.invitation(&hash).await?.ok_or(INVITATION_GONE)?;
    if invitation.used || invitation.revoked || invitation.expires_at <= Utc::now() {
        return Err(INVITATION_GONE);
    }
    if !app.db.dir.inviter_may_invite(invitation.id).await? {
        return Err(INVITATION_WITHDRAWN);
    }
    Ok((hash.to_vec(), invitation))
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
    let (_, invitation) = pending_invitation(&app, &secret).await?;
    let meeting = app
        .db
        .dir
        .get_meeting(invitation.meeting)
        .await?
        .ok_or(NO_SUCH_MEETING)?;
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

const USERNAME_TAKEN: ApiError = ApiError::Conflict(
    "the username in this invitation belongs to someone else already; contact the meeting's \
     secretary for a new invitation (or, if it is yours, sign in and ask to be added)",
);

const INVITATION_LOCKED: ApiError = ApiError::Conflict(
    "the meeting's protocol is locked (or verified), so nobody can join it now; the invitation \
     still holds should the protocol be reopened, or ask the meeting's secretary",
);
const INVITATION_NAME_TAKEN: ApiError = ApiError::Conflict(
    "someone in this meeting already has the name this invitation gives you (or one that reads \
     the same); ask the meeting's secretary for an invitation under a name that tells you apart",
);

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
    let (hash, invitation) = pending_invitation(&app, &secret).await?;
    let password = NewPassword::parse(&body.password).map_err(invalid)?;
    // Checked before the costly hashing; the store checks again.
    if app
        .db
        .dir
        .user_by_username(&invitation.username)
        .await?
        .is_some()
    {
        return Err(USERNAME_TAKEN);
    }
    let password_hash = password::hash(password).await?;
    let user = match app
        .db
        .dir
        .accept_invitation(&hash, &invitation, &password_hash)
        .await
        .map_err(store_error)?
    {
        Acceptance::Accepted(user) => user,
        Acceptance::Gone => return Err(INVITATION_GONE),
        Acceptance::Withdrawn => return Err(INVITATION_WITHDRAWN),
        Acceptance::UsernameTaken => return Err(USERNAME_TAKEN),
        Acceptance::Locked => return Err(INVITATION_LOCKED),
        Acceptance::NameTaken => return Err(INVITATION_NAME_TAKEN),
    };
    let user = app
        .db
        .dir
        .user(user)
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    let session = auth::open_session(&app.db.dir, user, app.config.session_ttl()).await?;
    Ok(signed_in(&app, session, StatusCode::CREATED))
}

/// Who may look people and agencies up: administrators and anyone who runs
/// at least one meeting (they add participants and assign sections).
async fn may_pick_people(app: &AppState, me: &CurrentUser) -> Result<(), ApiError> {
    let user = &me.0.user;
    if user.is_admin
        || app
            .db
            .dir
            .roles_of(user.id)
            .await?
            .iter()
            .any(|(_, role)| *role == Role::Secretary)
    {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "only secretaries and administrators look people up",
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PersonView {
    #[schema(value_type = String, format = Uuid)]
    id: UserId,
    display_name: String,
    #[schema(value_type = Option<Object>)]
    agency: Option<crate::people::Agency>,
}

/// People to add to a meeting or to give a section: id, name and agency
/// (no usernames). For secretaries and administrators.
#[utoipa::path(get, path = "/api/people", tag = "participants",
    responses((status = 200, body = Vec<PersonView>), (status = 401), (status = 403)))]
pub async fn people(
    State(app): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<PersonView>>, ApiError> {
    may_pick_people(&app, &me).await?;
    Ok(Json(
        app.db
            .dir
            .list_users()
            .await?
            .into_iter()
            .map(|u| PersonView {
                id: u.id,
                display_name: u.display_name,
                agency: u.agency,
            })
            .collect(),
    ))
}

/// Agencies that sections can be assigned to. For secretaries and
/// administrators.
#[utoipa::path(get, path = "/api/agencies", tag = "participants",
    responses((status = 200), (status = 401), (status = 403)))]
pub async fn agencies(
    State(app): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<crate::people::Agency>>, ApiError> {
    may_pick_people(&app, &me).await?;
    Ok(Json(app.db.dir.list_agencies().await?))
}
