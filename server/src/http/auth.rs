//! Sign-in over HTTP: the `CurrentUser` extractor (session cookie or Bearer
//! token, with an Origin check for cookies), `SyncUser` for the WebSocket
//! endpoint (which also takes a `token` query parameter, since browsers
//! cannot set headers on a WebSocket), and `/api/login`, `/api/logout`,
//! `/api/me` and personal API tokens.

use axum::{
    Json,
    extract::{FromRequestParts, Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{AppendHeaders, IntoResponse, Response},
};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    client::{ClientIp, has_query_token},
    error::{ApiError, json_rejection, store_error},
};
use crate::{
    auth::{self, AuthUser, LoginError, Presented, SESSION_COOKIE, secret},
    cluster::AccountEvent,
    config::ServerConfig,
    people::{ApiToken, TokenId, User},
    sync::peer::close_code,
};

/// The signed-in user making the request; 401 otherwise.
pub struct CurrentUser(pub AuthUser);

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// Whether a browser request comes from an origin we serve. Requests
/// without an `Origin` header are not cross-site browser requests.
pub fn origin_allowed(headers: &HeaderMap, config: &ServerConfig) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if !config.public_origins.is_empty() {
        return config
            .public_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin);
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// The signed-in user opening a WebSocket: like [`CurrentUser`], and a
/// `token` query parameter is accepted too.
pub struct SyncUser(pub CurrentUser);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        // A token in the URL is refused, not ignored: ignoring it would let
        // a cookie sign the request in while the token leaks into logs.
        if has_query_token(&parts.uri) {
            return Err(ApiError::Unauthenticated(auth::AuthError::TokenInUrl));
        }
        authenticate(parts, app, None).await
    }
}

impl FromRequestParts<AppState> for SyncUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let query = axum::extract::Query::<TokenQuery>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|q| q.0.token);
        Ok(SyncUser(authenticate(parts, app, query.as_deref()).await?))
    }
}

async fn authenticate(
    parts: &Parts,
    app: &AppState,
    query_token: Option<&str>,
) -> Result<CurrentUser, ApiError> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = session_cookie(&parts.headers);
    let user = auth::authenticate(
        &app.db.dir,
        Presented {
            bearer,
            query_token,
            session_cookie: cookie.as_deref(),
        },
        Utc::now(),
    )
    .await?;
    // Cookies ride along on cross-site requests (and WebSocket upgrades,
    // which CORS does not cover): refuse those from foreign origins.
    if user.credential.is_ambient() && !origin_allowed(&parts.headers, &app.config) {
        return Err(ApiError::Forbidden(
            "requests from this origin are not allowed",
        ));
    }
    Ok(CurrentUser(user))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    #[schema(value_type = String, format = Uuid)]
    id: crate::people::UserId,
    #[schema(value_type = String)]
    username: crate::people::Username,
    display_name: String,
    #[schema(value_type = Option<Object>)]
    agency: Option<crate::people::Agency>,
    is_admin: bool,
    /// May create meetings (administrators always may).
    can_create_meetings: bool,
    /// Whether an administrator vouches for who this account is: only then
    /// may it sign protocols off or reject them as chair or justerare.
    /// Accounts made by accepting an invitation are not confirmed until an
    /// administrator confirms them.
    confirmed: bool,
    /// Who vouched for the account, and when.
    #[schema(value_type = Option<Object>)]
    vouched: Option<crate::people::Vouch>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            can_create_meetings: u.may_create_meetings(),
            confirmed: u.may_sign_off(),
            vouched: u.vouched,
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            agency: u.agency,
            is_admin: u.is_admin,
        }
    }
}

fn set_cookie(value: &str, max_age_secs: i64, config: &ServerConfig) -> String {
    cookie::Cookie::build((SESSION_COOKIE, value.to_owned()))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(config.secure_cookies)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build()
        .to_string()
}

/// Responds with the user and the session cookie.
pub fn signed_in(app: &AppState, session: auth::Session, status: StatusCode) -> Response {
    let cookie = set_cookie(
        &session.secret,
        app.config.session_ttl().num_seconds(),
        &app.config,
    );
    (
        status,
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Json(UserView::from(session.user)),
    )
        .into_response()
}

/// Sign in with username and password; sets the session cookie.
#[utoipa::path(post, path = "/api/login", tag = "sign-in", request_body = LoginRequest,
    responses((status = 200, body = UserView), (status = 401), (status = 429), (status = 503)))]
pub async fn login(
    State(app): State<AppState>,
    ClientIp(client): ClientIp,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    match auth::login(
        &app.db.dir,
        &app.throttle,
        &body.username,
        body.password,
        Some(client),
        app.config.session_ttl(),
    )
    .await
    {
        Ok(session) => Ok(signed_in(&app, session, StatusCode::OK)),
        Err(LoginError::Invalid) => Err(ApiError::WrongCredentials),
        Err(e @ LoginError::Throttled(secs)) => {
            tracing::info!(%client, "sign-in throttled");
            Err(ApiError::Throttled(e.to_string(), secs))
        }
        Err(LoginError::Busy(busy)) => Err(busy.into()),
        Err(LoginError::Store(e)) => Err(ApiError::Store(e)),
    }
}

/// Sign out: ends the session and closes its open connections.
#[utoipa::path(post, path = "/api/logout", tag = "sign-in", responses((status = 204)))]
pub async fn logout(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
) -> Result<Response, ApiError> {
    if let auth::Credential::Session { hash, .. } = &me.credential {
        app.db.dir.delete_session(hash).await?;
        app.close_connections(AccountEvent::credential(
            me.credential.key(),
            close_code::UNAUTHORIZED,
            "signed out",
        ));
    }
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders([(header::SET_COOKIE, set_cookie("", 0, &app.config))]),
    )
        .into_response())
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/me", tag = "sign-in", responses((status = 200, body = UserView), (status = 401)))]
pub async fn me(CurrentUser(me): CurrentUser) -> Json<UserView> {
    Json(me.user.into())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    #[schema(value_type = Object)]
    token: ApiToken,
    /// Shown once; store it safely.
    secret: String,
}

pub async fn issue_token_for(
    app: &AppState,
    user: &User,
    name: &str,
) -> Result<IssuedToken, ApiError> {
    let name = crate::people::parse_name(name).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let (secret, hash) = secret::generate(auth::TOKEN_PREFIX);
    let token = app
        .db
        .dir
        .create_token(user.id, &name, &hash)
        .await
        .map_err(store_error)?;
    Ok(IssuedToken { token, secret })
}

/// Issue a personal API token.
#[utoipa::path(post, path = "/api/me/tokens", tag = "sign-in", request_body = NewToken,
    responses((status = 201, body = IssuedToken)))]
pub async fn create_token(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    Ok((
        StatusCode::CREATED,
        Json(issue_token_for(&app, &me.user, &body.name).await?),
    ))
}

/// List your API tokens (never their secrets).
#[utoipa::path(get, path = "/api/me/tokens", tag = "sign-in", responses((status = 200)))]
pub async fn list_tokens(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    Ok(Json(app.db.dir.list_tokens(me.user.id).await?))
}

/// Revoke one of your API tokens; connections using it close at once.
#[utoipa::path(delete, path = "/api/me/tokens/{id}", tag = "sign-in", responses((status = 204), (status = 404)))]
pub async fn revoke_token(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: TokenId = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such token"))?;
    revoke(&app, id, (!me.user.is_admin).then_some(me.user.id)).await
}

pub async fn revoke(
    app: &AppState,
    id: TokenId,
    owner: Option<crate::people::UserId>,
) -> Result<StatusCode, ApiError> {
    if !app.db.dir.revoke_token(id, owner).await? {
        return Err(ApiError::NotFound("no such token"));
    }
    app.close_connections(AccountEvent::credential(
        auth::CredentialKey::Token(id),
        close_code::UNAUTHORIZED,
        "token revoked",
    ));
    Ok(StatusCode::NO_CONTENT)
}
