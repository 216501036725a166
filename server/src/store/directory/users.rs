//! User accounts: creating them, reading them (for sign-in too), their
//! rights and passwords, an administrator vouching for one, and the
//! account audit log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::{Directory, USER_COLUMNS, USER_FROM, conflict};
use crate::{
    people::{AgencyId, User, UserId, Username, Voucher},
    store::{
        StoreError,
        pool::{begin_write, execute, fetch_all, fetch_optional},
    },
};

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

/// Inserts the account audit row of `$voucher`'s act on `$tx`.
macro_rules! insert_voucher_audit {
    ($tx:ident, $user:expr, $at:expr, $voucher:expr, $action:expr) => {
        insert_account_audit!(
            &mut *$tx,
            $user,
            $at,
            $voucher.administrator().map(|u| u.0),
            voucher_name($voucher),
            $action,
            $voucher.via()
        )
    };
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

impl Directory {
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
            insert_voucher_audit!(tx, id.0, now, voucher, "create");
            tx.commit().await?;
        });
        self.user(id)
            .await?
            .ok_or(StoreError::Corrupt("user vanished after insert".into()))
    }

    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.id = $1");
        Ok(fetch_optional!(self, &sql, [id.0], user_from_row))
    }

    pub async fn user_by_username(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.username = $1");
        Ok(fetch_optional!(
            self,
            &sql,
            [username.as_str()],
            user_from_row
        ))
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} ORDER BY u.username");
        Ok(fetch_all!(self, &sql, [], user_from_row))
    }

    /// The user and their password hash, for signing in.
    pub async fn credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM {USER_FROM} WHERE u.username = $1"
        );
        Ok(fetch_optional!(self, &sql, [username.as_str()], |row| {
            let hash: Option<String> = row.try_get("password_hash")?;
            (user_from_row!(&row), hash)
        }))
    }

    /// Gives or takes the right to create meetings; false if no such user.
    pub async fn set_can_create_meetings(
        &self,
        user: UserId,
        allowed: bool,
    ) -> Result<bool, StoreError> {
        Ok(execute!(
            self,
            "UPDATE users SET can_create_meetings = $1 WHERE id = $2",
            allowed,
            user.0
        ) == 1)
    }

    pub async fn set_password_hash(&self, user: UserId, hash: &str) -> Result<bool, StoreError> {
        Ok(execute!(
            self,
            "UPDATE users SET password_hash = $1 WHERE id = $2",
            hash,
            user.0
        ) == 1)
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
            insert_voucher_audit!(tx, user.0, now, voucher, "confirm");
            tx.commit().await?;
        });
        Ok(Confirmation::Confirmed)
    }

    /// An account's audit log, oldest first.
    pub async fn account_audit(&self, user: UserId) -> Result<Vec<AccountAuditEntry>, StoreError> {
        Ok(fetch_all!(
            self,
            "SELECT id, at, actor_id, actor_name, action, via FROM account_audit
                 WHERE user_id = $1 ORDER BY id",
            [user.0],
            |r| {
                let actor: Option<Uuid> = r.try_get("actor_id")?;
                AccountAuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor_id: actor.map(UserId),
                    actor_name: r.try_get("actor_name")?,
                    action: r.try_get("action")?,
                    via: r.try_get("via")?,
                }
            }
        ))
    }
}
