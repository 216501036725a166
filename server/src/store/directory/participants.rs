//! Who takes part in a meeting and in which role: read one by one, in
//! batches (the live connections' recheck) or per user; added, changed and
//! removed (a newcomer only while the protocol is a draft, and not under a
//! name that reads as another participant's).

use std::collections::HashMap;

use sqlx::Row;
use uuid::Uuid;

use super::{
    AGENCY_JOIN, BATCH_PARAMETERS, Directory, USER_COLUMNS, conflict, name_clashes, placeholders,
};
use crate::{
    meeting::MeetingId,
    people::{Participant, Role, UserId},
    store::{
        StoreError,
        pool::{begin_on_meeting, execute, with_pool},
    },
};

impl Directory {
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
        // A row value against a VALUES list: the one form of a
        // multi-column IN that SQLite and Postgres both accept.
        in_batches!(
            self,
            pairs,
            2,
            "SELECT meeting_id, user_id, role FROM participants
                 WHERE (meeting_id, user_id) IN (VALUES {})",
            |query, (meeting, user)| query.bind(meeting.as_uuid()).bind(user.0),
            |row| {
                let meeting: Uuid = row.try_get("meeting_id")?;
                let user: Uuid = row.try_get("user_id")?;
                let role: String = row.try_get("role")?;
                let role: Role = role
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("role {role:?}")))?;
                found.insert((MeetingId::from(meeting), UserId(user)), role);
            }
        );
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
        Ok(execute!(
            self,
            "DELETE FROM participants WHERE meeting_id = $1 AND user_id = $2",
            meeting.as_uuid(),
            user.0
        ) == 1)
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
}
