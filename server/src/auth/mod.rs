//! Who is calling: sign-in with a password (a session cookie), personal API
//! tokens (Bearer header, or the `token` query parameter on the WebSocket
//! endpoint only), and one-time invitations. Secrets are never stored or
//! logged in the clear.

pub mod password;
pub mod throttle;

/// How a signer signed in is a person's record (`people::SignIn`).
pub use crate::people::SignIn;
/// Bearer secrets live in the foundations (`crate::secret`), where the
/// store reads their hashes too; `auth::secret` stays their path here.
pub use crate::secret;

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Instant,
};

use chrono::{DateTime, Utc};

use crate::{
    people::{TokenId, User, Username},
    store::{Directory, StoreError},
};
use secret::SecretHash;

pub const SESSION_COOKIE: &str = "protokoll_session";
pub const TOKEN_PREFIX: &str = "pk_";
pub const INVITATION_PREFIX: &str = "inv_";

/// How a request or connection proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session {
        hash: SecretHash,
        expires_at: DateTime<Utc>,
    },
    Token {
        id: TokenId,
    },
}

/// Identifies a credential without revealing it, to find the connections
/// that use it when it is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKey {
    Session(SecretHash),
    Token(TokenId),
}

impl Credential {
    pub fn key(&self) -> CredentialKey {
        match self {
            Credential::Session { hash, .. } => CredentialKey::Session(*hash),
            Credential::Token { id } => CredentialKey::Token(*id),
        }
    }

    /// Ambient credentials (cookies) are sent by browsers on cross-site
    /// requests too; those requests must have their origin checked.
    pub fn is_ambient(&self) -> bool {
        matches!(self, Credential::Session { .. })
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Credential::Session { expires_at, .. } => Some(*expires_at),
            Credential::Token { .. } => None,
        }
    }
}

impl Credential {
    /// How this credential signed its user in.
    pub fn sign_in(&self) -> SignIn {
        match self {
            Credential::Session { .. } => SignIn::password(),
            Credential::Token { id } => SignIn::api_token(*id),
        }
    }
}

/// A signed-in user and the credential they used.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub credential: Credential,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("sign in first")]
    Missing,
    #[error("the API token is not valid (revoked or mistyped)")]
    InvalidToken,
    #[error("the session has expired; sign in again")]
    SessionExpired,
    #[error("the session is not valid; sign in again")]
    InvalidSession,
    #[error(
        "an API token in the URL (?token=) is accepted only on the WebSocket endpoint \
         /sync/{{meetingId}}; send it as the header `Authorization: Bearer pk_...`"
    )]
    TokenInUrl,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a request carries that may prove who it is.
#[derive(Default)]
pub struct Presented<'a> {
    pub bearer: Option<&'a str>,
    /// Only ever set for the WebSocket endpoint: URLs end up in proxy logs,
    /// browser history and `Referer` headers.
    pub query_token: Option<&'a str>,
    pub session_cookie: Option<&'a str>,
}

/// Resolves the presented credential. A token wins over a cookie, so that a
/// script's explicit token is never overridden by a browser's session.
pub async fn authenticate(
    dir: &Directory,
    presented: Presented<'_>,
    now: DateTime<Utc>,
) -> Result<AuthUser, AuthError> {
    if let Some(token) = presented.bearer.or(presented.query_token) {
        let (user, id) = dir
            .token(&secret::hash(token))
            .await?
            .ok_or(AuthError::InvalidToken)?;
        return Ok(AuthUser {
            user,
            credential: Credential::Token { id },
        });
    }
    if let Some(session) = presented.session_cookie {
        let hash = secret::hash(session);
        let (user, expires_at) = dir.session(&hash).await?.ok_or(AuthError::InvalidSession)?;
        if expires_at <= now {
            dir.delete_session(&hash).await?;
            return Err(AuthError::SessionExpired);
        }
        return Ok(AuthUser {
            user,
            credential: Credential::Session { hash, expires_at },
        });
    }
    Err(AuthError::Missing)
}

/// Which of the credentials open connections hold no longer hold: a
/// session that has ended or is gone (signed out, password changed, user
/// deleted), a token that is revoked or gone. For a whole node at once
/// (`live::recheck`), in a few queries; `ends` is each credential's end as
/// it was presented.
pub async fn no_longer_valid(
    dir: &Directory,
    ends: &HashMap<CredentialKey, Option<DateTime<Utc>>>,
    now: DateTime<Utc>,
) -> Result<HashSet<CredentialKey>, StoreError> {
    let mut invalid = HashSet::new();
    let mut sessions = Vec::new();
    let mut tokens = Vec::new();
    for (key, end) in ends {
        if end.is_some_and(|end| end <= now) {
            invalid.insert(*key);
            continue;
        }
        match key {
            CredentialKey::Session(hash) => sessions.push(*hash),
            CredentialKey::Token(id) => tokens.push(*id),
        }
    }
    let live_sessions = dir.live_sessions(&sessions).await?;
    let live_tokens = dir.live_tokens(&tokens).await?;
    invalid.extend(
        sessions
            .into_iter()
            .filter(|hash| !live_sessions.contains(hash))
            .map(CredentialKey::Session),
    );
    invalid.extend(
        tokens
            .into_iter()
            .filter(|id| !live_tokens.contains(id))
            .map(CredentialKey::Token),
    );
    Ok(invalid)
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("too many failed sign-ins; try again in {0} seconds")]
    Throttled(u64),
    #[error("wrong username or password")]
    Invalid,
    #[error(transparent)]
    Busy(#[from] password::Busy),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Session {
    pub user: User,
    /// The cookie value; goes to the client once and nowhere else.
    pub secret: String,
    pub expires_at: DateTime<Utc>,
}

/// Checks a password and opens a session.
///
/// The attempt takes its throttle slot before the password is checked, so
/// that concurrent guesses cannot all get past the limit; it counts as a
/// failure unless it succeeds, and not at all if no password was checked
/// (the server was too busy, or the store failed).
pub async fn login(
    dir: &Directory,
    throttle: &throttle::LoginThrottle,
    username: &str,
    password: String,
    ip: Option<IpAddr>,
    ttl: chrono::Duration,
) -> Result<Session, LoginError> {
    // Input that is no username can match no account: it counts against
    // the address only, and needs no password check.
    let username = Username::parse(username).ok();
    let attempt = throttle
        .begin(username.as_ref(), ip, Instant::now())
        .map_err(|wait| LoginError::Throttled(wait.as_secs().max(1)))?;
    let Some(username) = username else {
        return Err(LoginError::Invalid);
    };
    let found = match dir.credentials(&username).await {
        Ok(found) => found,
        Err(e) => {
            attempt.cancelled();
            return Err(e.into());
        }
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    match password::verify(password, hash).await {
        Err(busy) => {
            attempt.cancelled();
            return Err(busy.into());
        }
        Ok(false) => return Err(LoginError::Invalid),
        Ok(true) => {}
    }
    let user = user.ok_or(LoginError::Invalid)?;
    attempt.succeeded();
    open_session(dir, user, ttl)
        .await
        .map_err(LoginError::Store)
}

pub async fn open_session(
    dir: &Directory,
    user: User,
    ttl: chrono::Duration,
) -> Result<Session, StoreError> {
    let (secret, hash) = secret::generate("");
    let expires_at = Utc::now() + ttl;
    dir.create_session(&hash, user.id, expires_at).await?;
    Ok(Session {
        user,
        secret,
        expires_at,
    })
}
