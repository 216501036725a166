//! The relational side of the store: agencies, users and their sign-in
//! credentials, meetings, their participants, agendas and invitations.
//! One file per entity; this one holds the `Directory` handle and what
//! several of them read (a user row, placeholders for batched lookups,
//! constraint violations, the account audit row).

use uuid::Uuid;

use super::{Pool, StoreError};
use crate::people::reads_as_any;

pub use invitations::{Acceptance, Invitation, InvitationCreator, PendingInvitation};
pub use users::{AccountAuditEntry, Confirmation, NewUser};

#[derive(Clone)]
pub struct Directory {
    pool: Pool,
}

impl Directory {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The keys that authenticate messages between nodes (Postgres only).
    pub fn cluster_keys(&self) -> Option<super::ClusterKeys> {
        super::ClusterKeys::of(&self.pool)
    }
}

/// Most parameters one batched lookup binds: well under SQLite's limit
/// (32,766 today, 999 in builds before 3.32), and few enough round trips
/// for every open connection of a node.
const BATCH_PARAMETERS: usize = 500;

/// A lookup of many values in batches of at most `BATCH_PARAMETERS`
/// parameters: `$sql`'s `{}` becomes the placeholders of one batch of
/// `$items` (rows of `$width` values, which `$bind` binds to `$query`), and
/// `$each` runs on every row found.
macro_rules! in_batches {
    ($self:ident, $items:expr, $width:expr, $sql:literal,
     |$query:ident, $item:pat_param| $bind:expr, |$row:ident| $each:block) => {
        for chunk in $items.chunks(BATCH_PARAMETERS / $width) {
            let sql = format!($sql, placeholders(chunk.len(), $width));
            $crate::store::pool::with_pool!($self, p => {
                let mut $query = sqlx::query(&sql);
                for $item in chunk {
                    $query = $bind;
                }
                for $row in $query.fetch_all(p).await? $each
            });
        }
    };
}

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

/// A `User` from a row of `USER_COLUMNS`.
macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        let agency_id: Option<uuid::Uuid> = sqlx::Row::try_get(row, "agency_id")?;
        let agency_name: Option<String> = sqlx::Row::try_get(row, "agency_name")?;
        let username: String = sqlx::Row::try_get(row, "username")?;
        $crate::people::User {
            id: $crate::people::UserId(sqlx::Row::try_get(row, "id")?),
            username: $crate::people::Username::parse(&username).map_err(|_| {
                $crate::store::StoreError::Corrupt(format!("username {username:?}"))
            })?,
            display_name: sqlx::Row::try_get(row, "display_name")?,
            agency: agency_id
                .zip(agency_name)
                .map(|(id, name)| $crate::people::Agency {
                    id: $crate::people::AgencyId(id),
                    name,
                }),
            is_admin: sqlx::Row::try_get(row, "is_admin")?,
            can_create_meetings: sqlx::Row::try_get(row, "can_create_meetings")?,
            has_password: sqlx::Row::try_get(row, "has_password")?,
            vouched: {
                let at: Option<chrono::DateTime<chrono::Utc>> =
                    sqlx::Row::try_get(row, "vouched_at")?;
                let via: Option<String> = sqlx::Row::try_get(row, "vouched_via")?;
                let voucher: Option<uuid::Uuid> = sqlx::Row::try_get(row, "voucher_id")?;
                let voucher_username: Option<String> = sqlx::Row::try_get(row, "voucher_username")?;
                let voucher_name: Option<String> = sqlx::Row::try_get(row, "voucher_name")?;
                at.map(|at| $crate::people::Vouch {
                    via: via.unwrap_or_else(|| "upgrade".to_owned()),
                    by: voucher.map(|id| $crate::people::VouchingAdministrator {
                        id: $crate::people::UserId(id),
                        username: voucher_username.unwrap_or_default(),
                        display_name: voucher_name.unwrap_or_default(),
                    }),
                    at,
                })
            },
        }
    }};
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
        let mut names: Vec<(uuid::Uuid, String)> = Vec::with_capacity(rows.len());
        for row in &rows {
            names.push((
                sqlx::Row::try_get(row, "id")?,
                sqlx::Row::try_get(row, "display_name")?,
            ));
        }
        names
    }};
}

/// Whether `name` reads the same as one of `participants`' names.
fn name_clashes(participants: &[(Uuid, String)], name: &str) -> bool {
    reads_as_any(name, participants.iter().map(|(_, other)| other.as_str()))
}

// After the macros above, which they use.
mod agencies;
mod agenda;
mod invitations;
mod meetings;
mod participants;
mod sessions;
mod users;

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
