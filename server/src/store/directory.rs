//! The relational side of the store: agencies, users, sign-in credentials,
//! meetings, their participants and their agendas.
//!
//! The SQL is the same on both backends (positional `$n` parameters, ids as
//! UUIDs, times bound from Rust), so each query is written once and run on
//! whichever pool is configured; `with_pool!` expands the body once per
//! backend so that each is type-checked against its own driver. Time
//! comparisons happen in Rust, never in SQL, because SQLite stores times as
//! text.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row, SqlitePool};
use uuid::Uuid;

use super::StoreError;
use crate::{
    auth::secret::SecretHash,
    meeting::{Meeting, MeetingDetails, MeetingId, MeetingTitle, ProtocolState},
    people::{
        Agency, AgencyId, ApiToken, InvitationId, Participant, Role, Section, SectionId,
        SectionOwner, TokenId, User, UserId, Username, Vouch, Voucher, VouchingAdministrator,
        reads_as_any,
    },
};

#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Clone)]
pub struct Directory {
    pool: Pool,
}

impl Directory {
    /// The keys that authenticate messages between nodes (Postgres only).
    pub fn cluster_keys(&self) -> Option<super::ClusterKeys> {
        super::ClusterKeys::of(&self.pool)
    }
}

macro_rules! with_pool {
    ($self:ident, $p:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// Most parameters one batched lookup binds: well under SQLite's limit
/// (32,766 today, 999 in builds before 3.32), and few enough round trips
/// for every open connection of a node.
const BATCH_PARAMETERS: usize = 500;

/// `$1, $2, ...` for `rows` single values, or `($1, $2), ($3, $4), ...`
/// for rows of `width` values.
fn placeholders(rows: usize, width: usize) -> String {
    let row = |r: usize| {
        let values: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
        if width == 1 {
            values.concat()
        } else {
            format!("({})", values.join(", "))
        }
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

const USER_COLUMNS: &str = "u.id, u.username, u.display_name, u.is_admin, u.can_create_meetings, \
     (u.password_hash IS NOT NULL) AS has_password, a.id AS agency_id, a.name AS agency_name, \
     u.vouched_at, u.vouched_via, vu.id AS voucher_id, vu.username AS voucher_username, \
     vu.display_name AS voucher_name";
const USER_FROM: &str = "users u LEFT JOIN agencies a ON a.id = u.agency_id \
     LEFT JOIN users vu ON vu.id = u.vouched_by";
/// What `USER_COLUMNS` needs joined to `users u`.
const AGENCY_JOIN: &str =
    "LEFT JOIN agencies a ON a.id = u.agency_id LEFT JOIN users vu ON vu.id = u.vouched_by";

macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        let agency_id: Option<Uuid> = row.try_get("agency_id")?;
        let agency_name: Option<String> = row.try_get("agency_name")?;
        let username: String = row.try_get("username")?;
        User {
            id: UserId(row.try_get("id")?),
            username: Username::parse(&username)
                .map_err(|_| StoreError::Corrupt(format!("username {username:?}")))?,
            display_name: row.try_get("display_name")?,
            agency: agency_id.zip(agency_name).map(|(id, name)| Agency {
                id: AgencyId(id),
                name,
            }),
            is_admin: row.try_get("is_admin")?,
            can_create_meetings: row.try_get("can_create_meetings")?,
            has_password: row.try_get("has_password")?,
            vouched: {
                let at: Option<DateTime<Utc>> = row.try_get("vouched_at")?;
                let via: Option<String> = row.try_get("vouched_via")?;
                let voucher: Option<Uuid> = row.try_get("voucher_id")?;
                let voucher_username: Option<String> = row.try_get("voucher_username")?;
                let voucher_name: Option<String> = row.try_get("voucher_name")?;
                at.map(|at| Vouch {
                    via: via.unwrap_or_else(|| "upgrade".to_owned()),
                    by: voucher.map(|id| VouchingAdministrator {
                        id: UserId(id),
                        username: voucher_username.unwrap_or_default(),
                        display_name: voucher_name.unwrap_or_default(),
                    }),
                    at,
                })
            },
        }
    }};
}

const MEETING_COLUMNS: &str = "id, title, created_at, body, meeting_date, start_time, place, state";

macro_rules! meeting_from_row {
    ($row:expr) => {{
        let row = $row;
        let id: Uuid = row.try_get("id")?;
        let title: String = row.try_get("title")?;
        Meeting {
            id: MeetingId::from(id),
            title: MeetingTitle::from_store(title),
            created_at: row.try_get("created_at")?,
            details: MeetingDetails {
                body: row.try_get("body")?,
                date: row.try_get("meeting_date")?,
                time: row.try_get("start_time")?,
                place: row.try_get("place")?,
            },
            state: {
                let state: String = row.try_get("state")?;
                state
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("state of meeting {id}")))?
            },
        }
    }};
}

macro_rules! section_from_row {
    ($row:expr) => {{
        let row = $row;
        let id: String = row.try_get("id")?;
        let kind: String = row.try_get("owner_kind")?;
        let agency: Option<Uuid> = row.try_get("owner_agency_id")?;
        let user: Option<Uuid> = row.try_get("owner_user_id")?;
        let owner = match (kind.as_str(), agency, user) {
            ("agency", Some(a), _) => SectionOwner::Agency {
                agency_id: AgencyId(a),
            },
            ("user", _, Some(u)) => SectionOwner::User { user_id: UserId(u) },
            ("secretary", _, _) => SectionOwner::Secretary,
            _ => return Err(StoreError::Corrupt(format!("owner of section {id}"))),
        };
        Section {
            id: SectionId::parse(&id)
                .map_err(|_| StoreError::Corrupt(format!("section id {id:?}")))?,
            number: row.try_get("number")?,
            title: row.try_get("title")?,
            owner,
        }
    }};
}

fn owner_columns(owner: &SectionOwner) -> (&'static str, Option<Uuid>, Option<Uuid>) {
    match owner {
        SectionOwner::Agency { agency_id } => ("agency", Some(agency_id.0), None),
        SectionOwner::User { user_id } => ("user", None, Some(user_id.0)),
        SectionOwner::Secretary => ("secretary", None, None),
    }
}

/// A constraint violation (duplicate name, unknown reference) is the
/// caller's mistake, not a failure of the store.
fn conflict(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::UnknownReference,
        _ => StoreError::Database(e),
    }
}

pub struct NewUser {
    pub username: Username,
    pub display_name: String,
    pub agency: Option<AgencyId>,
    pub is_admin: bool,
    pub password_hash: Option<String>,
    /// Who creates the account, and so vouches for who it is.
    pub vouched_by: Voucher,
}

/// A line of an account's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AccountAuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub actor_id: Option<UserId>,
    pub actor_name: String,
    /// `create`, `accept_invitation` or `confirm`.
    pub action: String,
    /// `api`, `cli` or `demo`.
    pub via: String,
}

/// What became of an administrator's confirmation of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Confirmed,
    /// Vouched for already (nothing changed, nothing audited).
    AlreadyVouched,
    NoSuchUser,
}

/// Who is named in the account audit log for a voucher that is no
/// signed-in administrator (an administrator is named by their display
/// name).
fn voucher_name(voucher: Voucher) -> &'static str {
    match voucher {
        Voucher::Administrator(_) => "",
        Voucher::CommandLine => "command line",
        Voucher::Demo => "demo",
    }
}

/// Inserts an account audit row; the actor's name is the acting user's
/// display name when a user acted, `$fallback_name` otherwise.
macro_rules! insert_account_audit {
    ($tx:expr, $user:expr, $at:expr, $actor:expr, $fallback_name:expr, $action:expr, $via:expr) => {
        sqlx::query(
            "INSERT INTO account_audit (user_id, at, actor_id, actor_name, action, via)
             VALUES ($1, $2, $3, COALESCE((SELECT display_name FROM users WHERE id = $3), $4), $5, $6)",
        )
        .bind($user)
        .bind($at)
        .bind($actor)
        .bind($fallback_name)
        .bind($action)
        .bind($via)
        .execute($tx)
        .await?
    };
}

/// An invitation, found by its token's hash.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: InvitationId,
    pub meeting: MeetingId,
    pub username: Username,
    pub display_name: String,
    pub agency: Option<AgencyId>,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    pub revoked: bool,
    pub created_by: UserId,
}

/// A pending invitation as its meeting's managers see it (never its
/// secret, which is not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PendingInvitation {
    #[schema(value_type = String, format = Uuid)]
    pub id: InvitationId,
    #[schema(value_type = String)]
    pub username: Username,
    pub display_name: String,
    #[schema(value_type = Option<Object>)]
    pub agency: Option<Agency>,
    #[schema(value_type = String)]
    pub role: Role,
    pub created_by: InvitationCreator,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvitationCreator {
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    pub display_name: String,
}

/// What became of an attempt to accept an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    Accepted(UserId),
    /// Used meanwhile, revoked, or unknown.
    Gone,
    /// The person who sent it may no longer invite (no longer the meeting's
    /// secretary, or no longer an administrator when it names an agency).
    Withdrawn,
    /// The invited username belongs to someone already.
    UsernameTaken,
    /// The meeting's protocol is locked or verified: its participants are
    /// frozen.
    Locked,
    /// Someone in the meeting has a name that reads the same.
    NameTaken,
}

/// Whether invitation `$1`'s sender may still send it: an administrator, or
/// (when it puts nobody in an agency) the secretary of its meeting.
const INVITER_MAY_INVITE: &str =
    "SELECT 1 AS ok FROM invitations i JOIN users u ON u.id = i.created_by
     WHERE i.id = $1 AND (u.is_admin OR (i.agency_id IS NULL AND EXISTS (
         SELECT 1 FROM participants pt
         WHERE pt.meeting_id = i.meeting_id AND pt.user_id = u.id AND pt.role = 'secretary')))";

/// The participants of a meeting with their display names, read on a
/// transaction: (user id, display name).
macro_rules! participant_names {
    ($tx:ident, $meeting:expr) => {{
        let rows = sqlx::query(
            "SELECT u.id, u.display_name FROM participants pt JOIN users u ON u.id = pt.user_id
             WHERE pt.meeting_id = $1",
        )
        .bind($meeting.as_uuid())
        .fetch_all(&mut *$tx)
        .await?;
        let mut names: Vec<(Uuid, String)> = Vec::with_capacity(rows.len());
        for row in &rows {
            names.push((row.try_get("id")?, row.try_get("display_name")?));
        }
        names
    }};
}

/// Whether `name` reads the same as one of `participants`' names.
fn name_clashes(participants: &[(Uuid, String)], name: &str) -> bool {
    reads_as_any(name, participants.iter().map(|(_, other)| other.as_str()))
}

impl Directory {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    // ---- agencies -------------------------------------------------------

    pub async fn create_agency(&self, name: &str) -> Result<Agency, StoreError> {
        let agency = Agency {
            id: AgencyId::new(),
            name: name.to_owned(),
        };
        with_pool!(self, p => { sqlx::query("INSERT INTO agencies (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(agency.id.0)
            .bind(&agency.name)
            .bind(Utc::now())
            .execute(p)
            .await
            .map_err(conflict)?; });
        Ok(agency)
    }

    pub async fn list_agencies(&self) -> Result<Vec<Agency>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query("SELECT id, name FROM agencies ORDER BY name").fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(Agency { id: AgencyId(r.try_get("id")?), name: r.try_get("name")? }))
                .collect()
        })
    }

    pub async fn agency_by_name(&self, name: &str) -> Result<Option<Agency>, StoreError> {
        Ok(self
            .list_agencies()
            .await?
            .into_iter()
            .find(|a| a.name.eq_ignore_ascii_case(name)))
    }

    // ---- users ------------------------------------------------------------

    pub async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        self.create_user_with(new, false).await
    }

    /// Creates a user; `can_create_meetings` gives them the right to create
    /// meetings.
    pub async fn create_user_with(
        &self,
        new: NewUser,
        can_create_meetings: bool,
    ) -> Result<User, StoreError> {
        let id = UserId::new();
        let now = Utc::now();
        let voucher = new.vouched_by;
        begin_write!(self, |tx| {
            sqlx::query(
                "INSERT INTO users (id, username, display_name, agency_id, is_admin, password_hash, created_at,
                                    can_create_meetings, vouched_at, vouched_by, vouched_via)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $9, $10)")
                .bind(id.0)
                .bind(new.username.as_str())
                .bind(&new.display_name)
                .bind(new.agency.map(|a| a.0))
                .bind(new.is_admin)
                .bind(new.password_hash.as_deref())
                .bind(now)
                .bind(can_create_meetings)
                .bind(voucher.administrator().map(|u| u.0))
                .bind(voucher.via())
                .execute(&mut *tx)
                .await
                .map_err(conflict)?;
            insert_account_audit!(
                &mut *tx,
                id.0,
                now,
                voucher.administrator().map(|u| u.0),
                voucher_name(voucher),
                "create",
                voucher.via()
            );
            tx.commit().await?;
        });
        self.user(id)
            .await?
            .ok_or(StoreError::Corrupt("user vanished after insert".into()))
    }

    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.id = $1");
        with_pool!(self, p => {
            match sqlx::query(&sql).bind(id.0).fetch_optional(p).await? {
                Some(row) => Ok(Some(user_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn user_by_username(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.username = $1");
        with_pool!(self, p => {
            match sqlx::query(&sql).bind(username.as_str()).fetch_optional(p).await? {
                Some(row) => Ok(Some(user_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} ORDER BY u.username");
        with_pool!(self, p => {
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            let mut users = Vec::with_capacity(rows.len());
            for row in &rows {
                users.push(user_from_row!(row));
            }
            Ok(users)
        })
    }

    /// The user and their password hash, for signing in.
    pub async fn credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM {USER_FROM} WHERE u.username = $1"
        );
        with_pool!(self, p => {
            match sqlx::query(&sql).bind(username.as_str()).fetch_optional(p).await? {
                Some(row) => {
                    let hash: Option<String> = row.try_get("password_hash")?;
                    Ok(Some((user_from_row!(&row), hash)))
                }
                None => Ok(None),
            }
        })
    }

    /// Gives or takes the right to create meetings; false if no such user.
    pub async fn set_can_create_meetings(
        &self,
        user: UserId,
        allowed: bool,
    ) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query("UPDATE users SET can_create_meetings = $1 WHERE id = $2")
            .bind(allowed)
            .bind(user.0)
            .execute(p)
            .await?
            .rows_affected() == 1))
    }

    pub async fn set_password_hash(&self, user: UserId, hash: &str) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user.0)
            .execute(p)
            .await?
            .rows_affected() == 1))
    }

    /// An administrator (or an operator at the command line) vouches for
    /// an account that was made by accepting an invitation, so that it may
    /// sign protocols off. Audited; an account vouched for already is left
    /// as it is.
    pub async fn confirm_user(
        &self,
        user: UserId,
        voucher: Voucher,
    ) -> Result<Confirmation, StoreError> {
        let now = Utc::now();
        begin_write!(self, |tx| {
            let vouched: Option<Option<DateTime<Utc>>> =
                sqlx::query_scalar("SELECT vouched_at FROM users WHERE id = $1")
                    .bind(user.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            match vouched {
                None => return Ok(Confirmation::NoSuchUser),
                Some(Some(_)) => return Ok(Confirmation::AlreadyVouched),
                Some(None) => {}
            }
            let changed = sqlx::query(
                "UPDATE users SET vouched_at = $1, vouched_by = $2, vouched_via = $3
                 WHERE id = $4 AND vouched_at IS NULL",
            )
            .bind(now)
            .bind(voucher.administrator().map(|u| u.0))
            .bind(voucher.via())
            .bind(user.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                return Ok(Confirmation::AlreadyVouched);
            }
            insert_account_audit!(
                &mut *tx,
                user.0,
                now,
                voucher.administrator().map(|u| u.0),
                voucher_name(voucher),
                "confirm",
                voucher.via()
            );
            tx.commit().await?;
        });
        Ok(Confirmation::Confirmed)
    }

    /// An account's audit log, oldest first.
    pub async fn account_audit(&self, user: UserId) -> Result<Vec<AccountAuditEntry>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT id, at, actor_id, actor_name, action, via FROM account_audit
                 WHERE user_id = $1 ORDER BY id")
                .bind(user.0)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    let actor: Option<Uuid> = r.try_get("actor_id")?;
                    Ok(AccountAuditEntry {
                        id: r.try_get("id")?,
                        at: r.try_get("at")?,
                        actor_id: actor.map(UserId),
                        actor_name: r.try_get("actor_name")?,
                        action: r.try_get("action")?,
                        via: r.try_get("via")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    // ---- sessions -----------------------------------------------------------

    pub async fn create_session(
        &self,
        hash: &[u8],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_pool!(self, p => { sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(user.0)
            .bind(Utc::now())
            .bind(expires_at)
            .execute(p)
            .await?; });
        Ok(())
    }

    /// The session's user and expiry, if the session exists.
    pub async fn session(&self, hash: &[u8]) -> Result<Option<(User, DateTime<Utc>)>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id {AGENCY_JOIN}
             WHERE s.token_hash = $1"
        );
        with_pool!(self, p => {
            match sqlx::query(&sql).bind(hash).fetch_optional(p).await? {
                Some(row) => {
                    let expires: DateTime<Utc> = row.try_get("expires_at")?;
                    Ok(Some((user_from_row!(&row), expires)))
                }
                None => Ok(None),
            }
        })
    }

    /// Which of the sessions `hashes` still exist (of users that exist),
    /// whatever their expiry: the caller compares times.
    pub async fn live_sessions(
        &self,
        hashes: &[SecretHash],
    ) -> Result<HashSet<SecretHash>, StoreError> {
        let mut live = HashSet::with_capacity(hashes.len());
        for chunk in hashes.chunks(BATCH_PARAMETERS) {
            let sql = format!(
                "SELECT s.token_hash FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash IN ({})",
                placeholders(chunk.len(), 1)
            );
            with_pool!(self, p => {
                let mut query = sqlx::query(&sql);
                for hash in chunk {
                    query = query.bind(hash.as_slice());
                }
                for row in query.fetch_all(p).await? {
                    let hash: Vec<u8> = row.try_get("token_hash")?;
                    let hash = SecretHash::try_from(hash.as_slice())
                        .map_err(|_| StoreError::Corrupt("a session hash".into()))?;
                    live.insert(hash);
                }
            });
        }
        Ok(live)
    }

    pub async fn delete_session(&self, hash: &[u8]) -> Result<(), StoreError> {
        with_pool!(self, p => { sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(hash).execute(p).await?; });
        Ok(())
    }

    /// Ends every session of a user; returns how many there were.
    pub async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError> {
        with_pool!(self, p => Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.0)
            .execute(p)
            .await?
            .rows_affected()))
    }

    // ---- API tokens -----------------------------------------------------------

    pub async fn create_token(
        &self,
        user: UserId,
        name: &str,
        hash: &[u8],
    ) -> Result<ApiToken, StoreError> {
        let token = ApiToken {
            id: TokenId::new(),
            name: name.to_owned(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        with_pool!(self, p => { sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token.id.0)
            .bind(user.0)
            .bind(name)
            .bind(hash)
            .bind(token.created_at)
            .execute(p)
            .await
            .map_err(conflict)?; });
        Ok(token)
    }

    /// The token's user, if the token exists and is not revoked.
    pub async fn token(&self, hash: &[u8]) -> Result<Option<(User, TokenId)>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, t.id AS token_id FROM api_tokens t JOIN users u ON u.id = t.user_id {AGENCY_JOIN}
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
        );
        with_pool!(self, p => {
            match sqlx::query(&sql).bind(hash).fetch_optional(p).await? {
                Some(row) => {
                    let id: Uuid = row.try_get("token_id")?;
                    Ok(Some((user_from_row!(&row), TokenId(id))))
                }
                None => Ok(None),
            }
        })
    }

    /// Which of `ids` are still live (exist and are not revoked).
    pub async fn live_tokens(&self, ids: &[TokenId]) -> Result<HashSet<TokenId>, StoreError> {
        let mut live = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_PARAMETERS) {
            let sql = format!(
                "SELECT id FROM api_tokens WHERE revoked_at IS NULL AND id IN ({})",
                placeholders(chunk.len(), 1)
            );
            with_pool!(self, p => {
                let mut query = sqlx::query(&sql);
                for id in chunk {
                    query = query.bind(id.0);
                }
                for row in query.fetch_all(p).await? {
                    live.insert(TokenId(row.try_get("id")?));
                }
            });
        }
        Ok(live)
    }

    pub async fn list_tokens(&self, user: UserId) -> Result<Vec<ApiToken>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT id, name, created_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY created_at")
                .bind(user.0)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| Ok(ApiToken {
                    id: TokenId(r.try_get("id")?),
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                }))
                .collect()
        })
    }

    /// Revokes every live token of a user; returns their ids.
    pub async fn revoke_tokens_of(&self, user: UserId) -> Result<Vec<TokenId>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id")
                .bind(Utc::now())
                .bind(user.0)
                .fetch_all(p)
                .await?;
            rows.iter().map(|r| Ok(TokenId(r.try_get("id")?))).collect()
        })
    }

    /// Revokes a token; with `owner`, only if it belongs to that user.
    pub async fn revoke_token(
        &self,
        id: TokenId,
        owner: Option<UserId>,
    ) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1
             WHERE id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR user_id = $3)")
            .bind(Utc::now())
            .bind(id.0)
            .bind(owner.map(|u| u.0))
            .execute(p)
            .await?
            .rows_affected() == 1))
    }

    // ---- meetings -------------------------------------------------------------

    /// Creates a meeting; `secretary`, if given, becomes its secretary.
    pub async fn create_meeting(
        &self,
        title: MeetingTitle,
        details: MeetingDetails,
        secretary: Option<UserId>,
    ) -> Result<Meeting, StoreError> {
        let meeting = Meeting {
            id: MeetingId::new(),
            title,
            // Postgres keeps microseconds; round now so the returned value
            // equals what a later read gives back.
            created_at: DateTime::from_timestamp_micros(Utc::now().timestamp_micros())
                .unwrap_or_else(Utc::now),
            details,
            state: crate::meeting::ProtocolState::Draft,
        };
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO meetings (id, title, created_at, body, meeting_date, start_time, place)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(meeting.id.as_uuid())
                .bind(meeting.title.as_str())
                .bind(meeting.created_at)
                .bind(&meeting.details.body)
                .bind(meeting.details.date.as_deref())
                .bind(meeting.details.time.as_deref())
                .bind(&meeting.details.place)
                .execute(&mut *tx)
                .await?;
            if let Some(user) = secretary {
                sqlx::query("INSERT INTO participants (meeting_id, user_id, role) VALUES ($1, $2, 'secretary')")
                    .bind(meeting.id.as_uuid())
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict)?;
            }
            tx.commit().await?;
        });
        Ok(meeting)
    }

    pub async fn update_meeting(
        &self,
        id: MeetingId,
        title: &MeetingTitle,
        details: &MeetingDetails,
    ) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query(
            "UPDATE meetings SET title = $1, body = $2, meeting_date = $3, start_time = $4, place = $5 WHERE id = $6")
            .bind(title.as_str())
            .bind(&details.body)
            .bind(details.date.as_deref())
            .bind(details.time.as_deref())
            .bind(&details.place)
            .bind(id.as_uuid())
            .execute(p)
            .await?
            .rows_affected() == 1))
    }

    pub async fn get_meeting(&self, id: MeetingId) -> Result<Option<Meeting>, StoreError> {
        let sql = format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1");
        with_pool!(self, p => {
            match sqlx::query(&sql).bind(id.as_uuid()).fetch_optional(p).await? {
                Some(row) => Ok(Some(meeting_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    /// The protocol's state of each of `ids` that exists, in batched
    /// queries (every meeting a node holds open, once a second).
    pub async fn protocol_states(
        &self,
        ids: &[MeetingId],
    ) -> Result<Vec<(MeetingId, ProtocolState)>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_PARAMETERS) {
            let sql = format!(
                "SELECT id, state FROM meetings WHERE id IN ({})",
                placeholders(chunk.len(), 1)
            );
            with_pool!(self, p => {
                let mut query = sqlx::query(&sql);
                for id in chunk {
                    query = query.bind(id.as_uuid());
                }
                for row in query.fetch_all(p).await? {
                    let id: Uuid = row.try_get("id")?;
                    let state: String = row.try_get("state")?;
                    let state = state
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("state of meeting {id}")))?;
                    found.push((MeetingId::from(id), state));
                }
            });
        }
        Ok(found)
    }

    /// All meetings, or with `participant`, those the user takes part in.
    pub async fn list_meetings(
        &self,
        participant: Option<UserId>,
    ) -> Result<Vec<Meeting>, StoreError> {
        let sql = format!(
            "SELECT {MEETING_COLUMNS} FROM meetings
             WHERE $1 IS NULL OR id IN (SELECT meeting_id FROM participants WHERE user_id = $1)
             ORDER BY created_at, id"
        );
        with_pool!(self, p => {
            let rows = sqlx::query(&sql).bind(participant.map(|u| u.0)).fetch_all(p).await?;
            let mut meetings = Vec::with_capacity(rows.len());
            for row in &rows {
                meetings.push(meeting_from_row!(row));
            }
            Ok(meetings)
        })
    }

    // ---- participants ---------------------------------------------------------

    pub async fn role(&self, meeting: MeetingId, user: UserId) -> Result<Option<Role>, StoreError> {
        with_pool!(self, p => {
            let row = sqlx::query("SELECT role FROM participants WHERE meeting_id = $1 AND user_id = $2")
                .bind(meeting.as_uuid())
                .bind(user.0)
                .fetch_optional(p)
                .await?;
            match row {
                Some(row) => {
                    let role: String = row.try_get("role")?;
                    Ok(Some(role.parse().map_err(|_| StoreError::Corrupt(format!("role {role:?}")))?))
                }
                None => Ok(None),
            }
        })
    }

    /// Which of the (meeting, user) pairs are still participations, and
    /// with which role.
    pub async fn roles_in(
        &self,
        pairs: &[(MeetingId, UserId)],
    ) -> Result<HashMap<(MeetingId, UserId), Role>, StoreError> {
        let mut found = HashMap::with_capacity(pairs.len());
        for chunk in pairs.chunks(BATCH_PARAMETERS / 2) {
            // A row value against a VALUES list: the one form of a
            // multi-column IN that SQLite and Postgres both accept.
            let sql = format!(
                "SELECT meeting_id, user_id, role FROM participants
                 WHERE (meeting_id, user_id) IN (VALUES {})",
                placeholders(chunk.len(), 2)
            );
            with_pool!(self, p => {
                let mut query = sqlx::query(&sql);
                for (meeting, user) in chunk {
                    query = query.bind(meeting.as_uuid()).bind(user.0);
                }
                for row in query.fetch_all(p).await? {
                    let meeting: Uuid = row.try_get("meeting_id")?;
                    let user: Uuid = row.try_get("user_id")?;
                    let role: String = row.try_get("role")?;
                    let role: Role = role
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("role {role:?}")))?;
                    found.insert((MeetingId::from(meeting), UserId(user)), role);
                }
            });
        }
        Ok(found)
    }

    pub async fn participants(&self, meeting: MeetingId) -> Result<Vec<Participant>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, pt.role FROM participants pt JOIN users u ON u.id = pt.user_id {AGENCY_JOIN}
             WHERE pt.meeting_id = $1 ORDER BY u.display_name"
        );
        with_pool!(self, p => {
            let rows = sqlx::query(&sql).bind(meeting.as_uuid()).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let role: String = row.try_get("role")?;
                out.push(Participant {
                    user: user_from_row!(row),
                    role: role.parse().map_err(|_| StoreError::Corrupt(format!("role {role:?}")))?,
                });
            }
            Ok(out)
        })
    }

    /// Adds a participant, or sets the role of one. Refused while the
    /// protocol is locked or verified (`StoreError::Locked`), for an
    /// unknown meeting or user (`UnknownReference`), and for a newcomer
    /// whose display name reads the same as a participant's (`NameTaken`,
    /// see `NameKey`). One transaction that holds the meeting (as a lock
    /// does), so two newcomers of one name cannot both get in, and no
    /// newcomer gets in beside a lock.
    pub async fn set_participant(
        &self,
        meeting: MeetingId,
        user: UserId,
        role: Role,
    ) -> Result<(), StoreError> {
        begin_on_meeting!(self, meeting, |tx, state| {
            match state.as_deref() {
                None => return Err(StoreError::UnknownReference),
                Some("draft") => {}
                Some(_) => return Err(StoreError::Locked),
            }
            let name: Option<String> =
                sqlx::query_scalar("SELECT display_name FROM users WHERE id = $1")
                    .bind(user.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(name) = name else {
                return Err(StoreError::UnknownReference);
            };
            let others = participant_names!(tx, meeting);
            if !others.iter().any(|(id, _)| *id == user.0) && name_clashes(&others, &name) {
                return Err(StoreError::NameTaken);
            }
            sqlx::query(
                "INSERT INTO participants (meeting_id, user_id, role) VALUES ($1, $2, $3)
                 ON CONFLICT (meeting_id, user_id) DO UPDATE SET role = excluded.role",
            )
            .bind(meeting.as_uuid())
            .bind(user.0)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await
            .map_err(conflict)?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn remove_participant(
        &self,
        meeting: MeetingId,
        user: UserId,
    ) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query("DELETE FROM participants WHERE meeting_id = $1 AND user_id = $2")
            .bind(meeting.as_uuid())
            .bind(user.0)
            .execute(p)
            .await?
            .rows_affected() == 1))
    }

    // ---- agenda -----------------------------------------------------------------

    pub async fn sections(&self, meeting: MeetingId) -> Result<Vec<Section>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT id, number, title, owner_kind, owner_agency_id, owner_user_id
                 FROM sections WHERE meeting_id = $1 ORDER BY position")
                .bind(meeting.as_uuid())
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(section_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Appends a section to the agenda.
    pub async fn add_section(
        &self,
        meeting: MeetingId,
        section: &Section,
    ) -> Result<(), StoreError> {
        let (kind, agency, user) = owner_columns(&section.owner);
        with_pool!(self, p => { sqlx::query(
            "INSERT INTO sections (meeting_id, id, position, number, title, owner_kind, owner_agency_id, owner_user_id)
             VALUES ($1, $2, (SELECT COALESCE(MAX(position), 0) + 1 FROM sections WHERE meeting_id = $1), $3, $4, $5, $6, $7)")
            .bind(meeting.as_uuid())
            .bind(section.id.as_str())
            .bind(&section.number)
            .bind(&section.title)
            .bind(kind)
            .bind(agency)
            .bind(user)
            .execute(p)
            .await
            .map_err(conflict)?; });
        Ok(())
    }

    pub async fn update_section(
        &self,
        meeting: MeetingId,
        section: &Section,
    ) -> Result<bool, StoreError> {
        let (kind, agency, user) = owner_columns(&section.owner);
        with_pool!(self, p => Ok(sqlx::query(
            "UPDATE sections SET number = $1, title = $2, owner_kind = $3, owner_agency_id = $4, owner_user_id = $5
             WHERE meeting_id = $6 AND id = $7")
            .bind(&section.number)
            .bind(&section.title)
            .bind(kind)
            .bind(agency)
            .bind(user)
            .bind(meeting.as_uuid())
            .bind(section.id.as_str())
            .execute(p)
            .await
            .map_err(conflict)?
            .rows_affected() == 1))
    }

    /// Puts the agenda in the given order; `order` must name every section
    /// exactly once (checked by the caller).
    pub async fn reorder_sections(
        &self,
        meeting: MeetingId,
        order: &[SectionId],
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for (i, id) in order.iter().enumerate() {
                sqlx::query("UPDATE sections SET position = $1 WHERE meeting_id = $2 AND id = $3")
                    .bind(i as i32 + 1)
                    .bind(meeting.as_uuid())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes a section from the agenda; its text stays in the document,
    /// where nobody may write it any more.
    pub async fn remove_section(
        &self,
        meeting: MeetingId,
        section: &SectionId,
    ) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query("DELETE FROM sections WHERE meeting_id = $1 AND id = $2")
            .bind(meeting.as_uuid())
            .bind(section.as_str())
            .execute(p)
            .await?
            .rows_affected() == 1))
    }

    /// The user's role in every meeting they take part in.
    pub async fn roles_of(&self, user: UserId) -> Result<Vec<(MeetingId, Role)>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query("SELECT meeting_id, role FROM participants WHERE user_id = $1")
                .bind(user.0)
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let meeting: Uuid = row.try_get("meeting_id")?;
                let role: String = row.try_get("role")?;
                out.push((
                    MeetingId::from(meeting),
                    role.parse().map_err(|_| StoreError::Corrupt(format!("role {role:?}")))?,
                ));
            }
            Ok(out)
        })
    }

    // ---- invitations ------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub async fn create_invitation(
        &self,
        hash: &[u8],
        meeting: MeetingId,
        username: &Username,
        display_name: &str,
        agency: Option<AgencyId>,
        role: Role,
        created_by: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<InvitationId, StoreError> {
        let id = InvitationId::new();
        with_pool!(self, p => { sqlx::query(
            "INSERT INTO invitations (token_hash, meeting_id, username, display_name, agency_id, role, created_by, created_at, expires_at, id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(hash)
            .bind(meeting.as_uuid())
            .bind(username.as_str())
            .bind(display_name)
            .bind(agency.map(|a| a.0))
            .bind(role.as_str())
            .bind(created_by.0)
            .bind(Utc::now())
            .bind(expires_at)
            .bind(id.0)
            .execute(p)
            .await
            .map_err(conflict)?; });
        Ok(id)
    }

    pub async fn invitation(&self, hash: &[u8]) -> Result<Option<Invitation>, StoreError> {
        with_pool!(self, p => {
            let row = sqlx::query(
                "SELECT id, meeting_id, username, display_name, agency_id, role, expires_at, created_by,
                        used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked
                 FROM invitations WHERE token_hash = $1")
                .bind(hash)
                .fetch_optional(p)
                .await?;
            match row {
                Some(row) => {
                    let username: String = row.try_get("username")?;
                    let role: String = row.try_get("role")?;
                    let meeting: Uuid = row.try_get("meeting_id")?;
                    let agency: Option<Uuid> = row.try_get("agency_id")?;
                    Ok(Some(Invitation {
                        id: InvitationId(row.try_get("id")?),
                        meeting: meeting.into(),
                        username: Username::parse(&username).map_err(|_| StoreError::Corrupt("invitation username".into()))?,
                        display_name: row.try_get("display_name")?,
                        agency: agency.map(AgencyId),
                        role: role.parse().map_err(|_| StoreError::Corrupt("invitation role".into()))?,
                        expires_at: row.try_get("expires_at")?,
                        used: row.try_get("used")?,
                        revoked: row.try_get("revoked")?,
                        created_by: UserId(row.try_get("created_by")?),
                    }))
                }
                None => Ok(None),
            }
        })
    }

    /// Whether the invitation's sender may still send it (see
    /// `INVITER_MAY_INVITE`).
    pub async fn inviter_may_invite(&self, invitation: InvitationId) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query(INVITER_MAY_INVITE)
            .bind(invitation.0)
            .fetch_optional(p)
            .await?
            .is_some()))
    }

    /// A meeting's invitations that are neither used, revoked nor expired.
    pub async fn pending_invitations(
        &self,
        meeting: MeetingId,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingInvitation>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT i.id, i.username, i.display_name, i.role, i.created_at, i.expires_at,
                        a.id AS agency_id, a.name AS agency_name, u.id AS creator_id, u.display_name AS creator_name
                 FROM invitations i
                 JOIN users u ON u.id = i.created_by
                 LEFT JOIN agencies a ON a.id = i.agency_id
                 WHERE i.meeting_id = $1 AND i.used_at IS NULL AND i.revoked_at IS NULL
                 ORDER BY i.created_at, i.id")
                .bind(meeting.as_uuid())
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
                if expires_at <= now {
                    continue;
                }
                let username: String = row.try_get("username")?;
                let role: String = row.try_get("role")?;
                let agency_id: Option<Uuid> = row.try_get("agency_id")?;
                let agency_name: Option<String> = row.try_get("agency_name")?;
                out.push(PendingInvitation {
                    id: InvitationId(row.try_get("id")?),
                    username: Username::parse(&username).map_err(|_| StoreError::Corrupt("invitation username".into()))?,
                    display_name: row.try_get("display_name")?,
                    agency: agency_id.zip(agency_name).map(|(id, name)| Agency { id: AgencyId(id), name }),
                    role: role.parse().map_err(|_| StoreError::Corrupt("invitation role".into()))?,
                    created_by: InvitationCreator {
                        id: UserId(row.try_get("creator_id")?),
                        display_name: row.try_get("creator_name")?,
                    },
                    created_at: row.try_get("created_at")?,
                    expires_at,
                });
            }
            Ok(out)
        })
    }

    /// Revokes one of a meeting's unused invitations; false if there is no
    /// such invitation (or it was used or revoked already).
    pub async fn revoke_invitation(
        &self,
        meeting: MeetingId,
        id: InvitationId,
    ) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query(
            "UPDATE invitations SET revoked_at = $1
             WHERE meeting_id = $2 AND id = $3 AND used_at IS NULL AND revoked_at IS NULL")
            .bind(Utc::now())
            .bind(meeting.as_uuid())
            .bind(id.0)
            .execute(p)
            .await?
            .rows_affected() == 1))
    }

    /// Revokes the unused invitations `sender` sent for `meeting` (when
    /// they stop being its secretary); returns how many.
    pub async fn revoke_invitations_sent_by(
        &self,
        meeting: MeetingId,
        sender: UserId,
    ) -> Result<u64, StoreError> {
        with_pool!(self, p => Ok(sqlx::query(
            "UPDATE invitations SET revoked_at = $1
             WHERE meeting_id = $2 AND created_by = $3 AND used_at IS NULL AND revoked_at IS NULL")
            .bind(Utc::now())
            .bind(meeting.as_uuid())
            .bind(sender.0)
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// Uses an invitation once: marks it used, creates the user with the
    /// given password hash and adds them to the meeting, all or nothing;
    /// and only if its sender may still send it, checked in the same
    /// transaction.
    pub async fn accept_invitation(
        &self,
        hash: &[u8],
        invitation: &Invitation,
        password_hash: &str,
    ) -> Result<Acceptance, StoreError> {
        let user = UserId::new();
        let now = Utc::now();
        begin_on_meeting!(self, invitation.meeting, |tx, state| {
            // The meeting is held from here on: no lock and no other
            // newcomer gets in between these checks and the inserts.
            match state.as_deref() {
                None => return Ok(Acceptance::Gone),
                Some("draft") => {}
                Some(_) => return Ok(Acceptance::Locked),
            }
            let claimed = sqlx::query(
                "UPDATE invitations SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL")
                .bind(Utc::now())
                .bind(hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if claimed != 1 {
                return Ok(Acceptance::Gone);
            }
            let allowed = sqlx::query(INVITER_MAY_INVITE)
                .bind(invitation.id.0)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !allowed {
                return Ok(Acceptance::Withdrawn);
            }
            if name_clashes(
                &participant_names!(tx, invitation.meeting),
                &invitation.display_name,
            ) {
                return Ok(Acceptance::NameTaken);
            }
            // Not vouched for: whoever holds the link chose the password,
            // and the sender chose the name. An administrator confirms the
            // account before it may sign anything off.
            let inserted = sqlx::query(
                "INSERT INTO users (id, username, display_name, agency_id, is_admin, password_hash, created_at, invited_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(user.0)
                .bind(invitation.username.as_str())
                .bind(&invitation.display_name)
                .bind(invitation.agency.map(|a| a.0))
                .bind(false)
                .bind(password_hash)
                .bind(now)
                .bind(invitation.created_by.0)
                .execute(&mut *tx)
                .await
                .map_err(conflict);
            match inserted {
                Err(StoreError::Conflict) => return Ok(Acceptance::UsernameTaken),
                other => {
                    other?;
                }
            }
            sqlx::query("INSERT INTO participants (meeting_id, user_id, role) VALUES ($1, $2, $3)")
                .bind(invitation.meeting.as_uuid())
                .bind(user.0)
                .bind(invitation.role.as_str())
                .execute(&mut *tx)
                .await?;
            insert_account_audit!(
                &mut *tx,
                user.0,
                now,
                Some(user.0),
                "",
                "accept_invitation",
                "api"
            );
            tx.commit().await?;
        });
        Ok(Acceptance::Accepted(user))
    }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_number_values_and_rows_in_order() {
        assert_eq!(placeholders(3, 1), "$1, $2, $3");
        assert_eq!(placeholders(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(0, 1), "");
    }
}
