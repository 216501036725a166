//! A meeting's agenda: its sections, their owners and their order.

use sqlx::Row;
use uuid::Uuid;

use super::{Directory, conflict};
use crate::{
    meeting::MeetingId,
    people::{AgencyId, Section, SectionId, SectionOwner, UserId},
    store::{
        StoreError,
        pool::{execute, fetch_all, with_pool},
    },
};

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

impl Directory {
    // ---- agenda -----------------------------------------------------------------

    pub async fn sections(&self, meeting: MeetingId) -> Result<Vec<Section>, StoreError> {
        Ok(fetch_all!(
            self,
            "SELECT id, number, title, owner_kind, owner_agency_id, owner_user_id
                 FROM sections WHERE meeting_id = $1 ORDER BY position",
            [meeting.as_uuid()],
            section_from_row
        ))
    }

    /// Appends a section to the agenda.
    pub async fn add_section(
        &self,
        meeting: MeetingId,
        section: &Section,
    ) -> Result<(), StoreError> {
        let (kind, agency, user) = owner_columns(&section.owner);
        execute!(self, map_err(conflict), "INSERT INTO sections (meeting_id, id, position, number, title, owner_kind, owner_agency_id, owner_user_id)
             VALUES ($1, $2, (SELECT COALESCE(MAX(position), 0) + 1 FROM sections WHERE meeting_id = $1), $3, $4, $5, $6, $7)", meeting.as_uuid(), section.id.as_str(), &section.number, &section.title, kind, agency, user);
        Ok(())
    }

    pub async fn update_section(
        &self,
        meeting: MeetingId,
        section: &Section,
    ) -> Result<bool, StoreError> {
        let (kind, agency, user) = owner_columns(&section.owner);
        Ok(execute!(self, map_err(conflict), "UPDATE sections SET number = $1, title = $2, owner_kind = $3, owner_agency_id = $4, owner_user_id = $5
             WHERE meeting_id = $6 AND id = $7", &section.number, &section.title, kind, agency, user, meeting.as_uuid(), section.id.as_str()) == 1)
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
        Ok(execute!(
            self,
            "DELETE FROM sections WHERE meeting_id = $1 AND id = $2",
            meeting.as_uuid(),
            section.as_str()
        ) == 1)
    }
}
