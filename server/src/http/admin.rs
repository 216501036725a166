//! `/api/admin/...`: agencies, users, who may create meetings, who is
//! vouched for, passwords and tokens. Administrators only; everyone else
//! gets 403.

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    auth::{CurrentUser, IssuedToken, NewToken, UserView, issue_token_for, revoke},
    call::Call,
    error::{ApiError, json_rejection, store_error},
};
use crate::{
    auth::password,
    cluster::AccountEvent,
    people::{
        Agency, AgencyId, ApiToken, NewPassword, TokenId, User, UserId, Username, Voucher,
        parse_name,
    },
    store::{AccountAuditEntry, Confirmation, NewUser},
    sync::peer::close_code,
};

fn require_admin(me: &CurrentUser) -> Result<(), ApiError> {
    if me.0.user.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("administrators only"))
    }
}

fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid(e.to_string())
}

/// A user id from the path; one that does not parse names no user (404).
fn user_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("no such user"))
}

/// The user with this id, or 404.
async fn existing_user(app: &AppState, id: UserId) -> Result<User, ApiError> {
    app.db
        .dir
        .user(id)
        .await?
        .ok_or(ApiError::NotFound("no such user"))
}

/// List agencies.
#[utoipa::path(get, path = "/api/admin/agencies", tag = "admin", responses((status = 200), (status = 403)))]
pub async fn list_agencies(
    State(app): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<Agency>>, ApiError> {
    require_admin(&me)?;
    Ok(Json(app.db.dir.list_agencies().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgency {
    name: String,
}

/// Create an agency (Polis, Räddningstjänsten, ...).
#[utoipa::path(post, path = "/api/admin/agencies", tag = "admin", request_body = NewAgency,
    responses((status = 201), (status = 403), (status = 409)))]
pub async fn create_agency(
    State(app): State<AppState>,
    me: CurrentUser,
    body: Result<Json<NewAgency>, JsonRejection>,
) -> Result<(StatusCode, Json<Agency>), ApiError> {
    require_admin(&me)?;
    let Json(body) = body.map_err(json_rejection)?;
    let name = parse_name(&body.name).map_err(invalid)?;
    let agency = app.db.dir.create_agency(&name).await.map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(agency)))
}

/// List users.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", responses((status = 200), (status = 403)))]
pub async fn list_users(
    State(app): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<UserView>>, ApiError> {
    require_admin(&me)?;
    let users = app.db.dir.list_users().await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    username: String,
    display_name: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    agency_id: Option<AgencyId>,
    #[serde(default)]
    is_admin: bool,
    /// May create meetings (administrators always may).
    #[serde(default)]
    can_create_meetings: bool,
    password: String,
}

/// Create a user with a password. The creating administrator vouches for
/// who the account is (it may sign protocols off).
#[utoipa::path(post, path = "/api/admin/users", tag = "admin", request_body = NewUserRequest,
    responses((status = 201, body = UserView), (status = 403), (status = 409), (status = 422)))]
pub async fn create_user(
    State(app): State<AppState>,
    me: CurrentUser,
    body: Result<Json<NewUserRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    require_admin(&me)?;
    let Json(body) = body.map_err(json_rejection)?;
    let username = Username::parse(&body.username).map_err(invalid)?;
    let display_name = parse_name(&body.display_name).map_err(invalid)?;
    let password = NewPassword::parse(&body.password).map_err(invalid)?;
    let hash = password::hash(password).await?;
    let user = app
        .db
        .dir
        .create_user_with(
            NewUser {
                username,
                display_name,
                agency: body.agency_id,
                is_admin: body.is_admin,
                password_hash: Some(hash),
                vouched_by: Voucher::Administrator(me.0.user.id),
            },
            body.can_create_meetings,
        )
        .await
        .map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// Give or take the right to create meetings.
    can_create_meetings: Option<bool>,
}

/// Change a user's permissions: whether they may create meetings.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", request_body = UserChange,
    responses((status = 200, body = UserView), (status = 403), (status = 404)))]
pub async fn update_user(
    call: Call,
    body: Result<Json<UserChange>, JsonRejection>,
) -> Result<Json<UserView>, ApiError> {
    require_admin(&call.me)?;
    let Json(body) = body.map_err(json_rejection)?;
    let id = user_id(&call.path)?;
    if let Some(allowed) = body.can_create_meetings {
        if !call.app.db.dir.set_can_create_meetings(id, allowed).await? {
            return Err(ApiError::NotFound("no such user"));
        }
    }
    let user = existing_user(&call.app, id).await?;
    Ok(Json(user.into()))
}

/// Confirm an account made by accepting an invitation: you vouch that the
/// person who signs in as it is who its name and agency say. Only then may
/// it sign protocols off or reject them as chair or justerare. Recorded in
/// the account's audit log; the sign-offs it makes name you. An account
/// vouched for already is 409.
#[utoipa::path(post, path = "/api/admin/users/{id}/confirm", tag = "admin",
    responses((status = 200, body = UserView), (status = 403), (status = 404), (status = 409)))]
pub async fn confirm_user(call: Call) -> Result<Json<UserView>, ApiError> {
    require_admin(&call.me)?;
    let id = user_id(&call.path)?;
    match call
        .app
        .db
        .dir
        .confirm_user(id, Voucher::Administrator(call.user().id))
        .await?
    {
        Confirmation::Confirmed => {
            tracing::info!(user = %id, by = %call.user().id, "account confirmed");
        }
        Confirmation::AlreadyVouched => {
            return Err(ApiError::Conflict(
                "this account is vouched for already (an administrator created or confirmed it)",
            ));
        }
        Confirmation::NoSuchUser => return Err(ApiError::NotFound("no such user")),
    }
    let user = existing_user(&call.app, id).await?;
    Ok(Json(user.into()))
}

/// An account's audit log: its creation (by an administrator, the command
/// line, the demo, or by accepting an invitation) and its confirmation.
#[utoipa::path(get, path = "/api/admin/users/{id}/audit", tag = "admin",
    responses((status = 200, body = Vec<AccountAuditEntry>), (status = 403), (status = 404)))]
pub async fn user_audit(call: Call) -> Result<Json<Vec<AccountAuditEntry>>, ApiError> {
    require_admin(&call.me)?;
    let id = user_id(&call.path)?;
    existing_user(&call.app, id).await?;
    Ok(Json(call.app.db.dir.account_audit(id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    password: String,
}

/// What a password reset ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResetOutcome {
    /// Sign-ins (session cookies) ended.
    sessions_ended: u64,
    /// API tokens revoked.
    tokens_revoked: usize,
    /// Open WebSockets closed (on this server node; others close within a
    /// ping interval).
    connections_closed: usize,
}

/// Set a user's password. Everything that signed in as them stops working
/// at once: their sessions end, their API tokens are revoked and their open
/// connections close. A reset is what one does when an account may be in
/// the wrong hands.
#[utoipa::path(post, path = "/api/admin/users/{id}/password", tag = "admin", request_body = PasswordReset,
    responses((status = 200, body = ResetOutcome), (status = 403), (status = 404)))]
pub async fn reset_password(
    call: Call,
    body: Result<Json<PasswordReset>, JsonRejection>,
) -> Result<Json<ResetOutcome>, ApiError> {
    require_admin(&call.me)?;
    let Json(body) = body.map_err(json_rejection)?;
    let id = user_id(&call.path)?;
    let password = NewPassword::parse(&body.password).map_err(invalid)?;
    let hash = password::hash(password).await?;
    if !call.app.db.dir.set_password_hash(id, &hash).await? {
        return Err(ApiError::NotFound("no such user"));
    }
    let sessions_ended = call.app.db.dir.delete_sessions_of(id).await?;
    let tokens_revoked = call.app.db.dir.revoke_tokens_of(id).await?.len();
    let connections_closed = call.app.close_connections(AccountEvent::user(
        id,
        close_code::UNAUTHORIZED,
        "password changed",
    ));
    Ok(Json(ResetOutcome {
        sessions_ended,
        tokens_revoked,
        connections_closed,
    }))
}

/// List a user's API tokens, revoked ones too (never their secrets).
#[utoipa::path(get, path = "/api/admin/users/{id}/tokens", tag = "admin",
    responses((status = 200), (status = 403), (status = 404)))]
pub async fn list_user_tokens(call: Call) -> Result<Json<Vec<ApiToken>>, ApiError> {
    require_admin(&call.me)?;
    let id = user_id(&call.path)?;
    existing_user(&call.app, id).await?;
    Ok(Json(call.app.db.dir.list_tokens(id).await?))
}

/// Issue an API token for a user (for scripts and integrations).
#[utoipa::path(post, path = "/api/admin/users/{id}/tokens", tag = "admin", request_body = NewToken,
    responses((status = 201, body = IssuedToken), (status = 403), (status = 404)))]
pub async fn issue_token(
    call: Call,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    require_admin(&call.me)?;
    let Json(body) = body.map_err(json_rejection)?;
    let id = user_id(&call.path)?;
    let user = existing_user(&call.app, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(issue_token_for(&call.app, &user, &body.name).await?),
    ))
}

/// Revoke any API token.
#[utoipa::path(delete, path = "/api/admin/tokens/{id}", tag = "admin", responses((status = 204), (status = 403), (status = 404)))]
pub async fn revoke_any_token(call: Call) -> Result<StatusCode, ApiError> {
    require_admin(&call.me)?;
    let id: TokenId = call
        .path
        .parse()
        .map_err(|_| ApiError::NotFound("no such token"))?;
    revoke(&call.app, id, None).await
}
