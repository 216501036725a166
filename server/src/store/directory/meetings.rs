//! Meetings: creating one (with its secretary), their details, reading
//! one, all or a participant's, and their protocol states in batches.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{BATCH_PARAMETERS, Directory, conflict, placeholders};
use crate::{
    meeting::{Meeting, MeetingDetails, MeetingId, MeetingTitle, ProtocolState},
    people::UserId,
    store::{
        StoreError,
        pool::{execute, fetch_all, fetch_optional, with_pool},
    },
};

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

impl Directory {
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
        Ok(execute!(
            self,
            "UPDATE meetings SET title = $1, body = $2, meeting_date = $3, start_time = $4, place = $5 WHERE id = $6",
            title.as_str(),
            &details.body,
            details.date.as_deref(),
            details.time.as_deref(),
            &details.place,
            id.as_uuid()
        ) == 1)
    }

    pub async fn get_meeting(&self, id: MeetingId) -> Result<Option<Meeting>, StoreError> {
        let sql = format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1");
        Ok(fetch_optional!(
            self,
            &sql,
            [id.as_uuid()],
            meeting_from_row
        ))
    }

    /// The protocol's state of each of `ids` that exists, in batched
    /// queries (every meeting a node holds open, once a second).
    pub async fn protocol_states(
        &self,
        ids: &[MeetingId],
    ) -> Result<Vec<(MeetingId, ProtocolState)>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        in_batches!(
            self,
            ids,
            1,
            "SELECT id, state FROM meetings WHERE id IN ({})",
            |query, id| query.bind(id.as_uuid()),
            |row| {
                let id: Uuid = row.try_get("id")?;
                let state: String = row.try_get("state")?;
                let state = state
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("state of meeting {id}")))?;
                found.push((MeetingId::from(id), state));
            }
        );
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
        Ok(fetch_all!(
            self,
            &sql,
            [participant.map(|u| u.0)],
            meeting_from_row
        ))
    }
}
