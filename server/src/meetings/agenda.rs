//! A meeting's agenda: its sections in order, and the mirror that writes
//! them into the meeting's document.
//!
//! The agenda lives in the database; the document's `agenda` array shows
//! it to every client, with each owner's name. Every change is written to
//! the database first and then mirrored, through the meeting's room on a
//! server (so that every open connection sees it at once), or straight
//! into the log for a meeting that nobody can have open yet (one just
//! created on the command line or by the demo). The mirror is computed
//! from the database in one place, [`Meetings::agenda_entries`].

use serde::Deserialize;
use yrs::TransactionMut;

use super::{Draft, Managed, MeetingError, Meetings};
use crate::{
    document::{AgendaEntry, write_agenda, write_paragraphs},
    guard::Ownership,
    meeting::MeetingId,
    people::{Section, SectionId, SectionOwner, parse_name, parse_section_number},
    store::{AppendBatch, StoreError},
};

// A section to add at the end of the agenda (no doc comment: it would change
// the OpenAPI schema).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSection {
    /// Derived from the title when absent.
    pub id: Option<String>,
    /// The § number; the next whole number when absent.
    pub number: Option<String>,
    pub title: String,
    /// `{"kind": "agency", "agency_id": ...}`, `{"kind": "user", "user_id": ...}`
    /// or `{"kind": "secretary"}`.
    #[schema(value_type = Object)]
    pub owner: SectionOwner,
}

// What to change of a section; what is absent stays.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionChange {
    pub number: Option<String>,
    pub title: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub owner: Option<SectionOwner>,
}

const NO_SUCH_SECTION: MeetingError = MeetingError::NotFound("no such section");

/// Writes the agenda into a document: `entries` replace its `agenda`
/// array, and each section gets the paragraphs `text` gives it (a section
/// never written gets one empty paragraph, so that two people starting to
/// write at once do not make two).
fn write_mirror<'t>(
    txn: &mut TransactionMut,
    entries: &[AgendaEntry],
    text: impl Fn(&str) -> &'t [&'t str],
) {
    write_agenda(txn, entries);
    for entry in entries {
        write_paragraphs(txn, &entry.id, text(&entry.id));
    }
}

impl Meetings<'_> {
    /// The agenda as the document shows it: each section with its owner's
    /// name.
    async fn agenda_entries(&self, sections: &[Section]) -> Result<Vec<AgendaEntry>, MeetingError> {
        let agencies = self.db.dir.list_agencies().await?;
        let mut entries = Vec::with_capacity(sections.len());
        for s in sections {
            let owner_name = match &s.owner {
                SectionOwner::Agency { agency_id } => agencies
                    .iter()
                    .find(|a| a.id == *agency_id)
                    .map(|a| a.name.clone())
                    .unwrap_or_default(),
                SectionOwner::User { user_id } => self
                    .db
                    .dir
                    .user(*user_id)
                    .await?
                    .map(|u| u.display_name)
                    .unwrap_or_default(),
                SectionOwner::Secretary => SectionOwner::SECRETARY_NAME.to_owned(),
            };
            entries.push(AgendaEntry {
                id: s.id.as_str().to_owned(),
                number: s.number.clone(),
                title: s.title.clone(),
                owner: s.owner.label(),
                owner_name,
            });
        }
        Ok(entries)
    }

    /// Mirrors the agenda from the database into the meeting's open
    /// document, through its room, so every connected client sees it
    /// change live.
    pub(super) async fn mirror_agenda(&self, meeting: MeetingId) -> Result<(), MeetingError> {
        let rooms = self.rooms.ok_or(MeetingError::Unavailable)?;
        let sections = self.db.dir.sections(meeting).await?;
        let entries = self.agenda_entries(&sections).await?;
        let ownership = Ownership::from_sections(sections);
        rooms
            .server_edit(
                meeting,
                ownership,
                Box::new(move |txn| write_mirror(txn, &entries, |_| &[])),
            )
            .await
            .map_err(|_| MeetingError::Unavailable)
    }

    /// Mirrors a change to the sections once the store has taken it; one
    /// it refused (a clash) is the caller's error, and nothing is mirrored.
    async fn mirror_stored<T>(
        &self,
        meeting: MeetingId,
        stored: Result<T, StoreError>,
    ) -> Result<(), MeetingError> {
        stored.map_err(MeetingError::refused)?;
        self.mirror_agenda(meeting).await
    }

    /// The first state of a new meeting's document: its agenda, and the
    /// sections' first text (`text` by section id). Through the room on a
    /// server; straight into the log otherwise, which only a meeting just
    /// created may take (nobody can have its document open yet).
    pub(super) async fn first_document(
        &self,
        meeting: MeetingId,
        text: &[(SectionId, &[&str])],
    ) -> Result<(), MeetingError> {
        if self.rooms.is_some() {
            return self.mirror_agenda(meeting).await;
        }
        let sections = self.db.dir.sections(meeting).await?;
        let entries = self.agenda_entries(&sections).await?;
        let doc = yrs::Doc::new();
        {
            use yrs::Transact;
            let mut txn = doc.transact_mut();
            write_mirror(&mut txn, &entries, |id| {
                text.iter()
                    .find(|(section, _)| section.as_str() == id)
                    .map_or(&[], |(_, paragraphs)| *paragraphs)
            });
        }
        let state = {
            use yrs::{ReadTxn, StateVector, Transact};
            doc.transact()
                .encode_state_as_update_v1(&StateVector::default())
        };
        self.db
            .docs
            .append_updates(&[AppendBatch {
                meeting,
                updates: vec![state.into()],
            }])
            .await?;
        Ok(())
    }

    /// The agenda of a meeting `user` may read, in order.
    pub async fn agenda(
        &self,
        user: &crate::people::User,
        id: &str,
    ) -> Result<Vec<Section>, MeetingError> {
        let (meeting, _) = self.open(user, id).await?;
        Ok(self.db.dir.sections(meeting.id).await?)
    }

    /// Adds a section at the end of the agenda.
    pub async fn add_section(
        &self,
        draft: &Draft,
        new: NewSection,
    ) -> Result<Section, MeetingError> {
        let title = parse_name(&new.title)?;
        let existing = self.db.dir.sections(draft.id()).await?;
        let section = Section {
            id: match &new.id {
                Some(id) => SectionId::parse(id)?,
                None => SectionId::from_title(&title),
            },
            number: match &new.number {
                Some(n) => parse_section_number(n)?,
                None => (existing
                    .iter()
                    .filter_map(|s| s.number.parse::<u32>().ok())
                    .max()
                    .unwrap_or(0)
                    + 1)
                .to_string(),
            },
            title,
            owner: new.owner,
        };
        let stored = self.db.dir.add_section(draft.id(), &section).await;
        self.mirror_stored(draft.id(), stored).await?;
        Ok(section)
    }

    /// Renames, renumbers or reassigns a section.
    pub async fn change_section(
        &self,
        draft: &Draft,
        section: &str,
        change: SectionChange,
    ) -> Result<Section, MeetingError> {
        let mut current = self
            .db
            .dir
            .sections(draft.id())
            .await?
            .into_iter()
            .find(|s| s.id.as_str() == section)
            .ok_or(NO_SUCH_SECTION)?;
        if let Some(n) = &change.number {
            current.number = parse_section_number(n)?;
        }
        if let Some(t) = &change.title {
            current.title = parse_name(t)?;
        }
        if let Some(owner) = change.owner {
            current.owner = owner;
        }
        let stored = self.db.dir.update_section(draft.id(), &current).await;
        self.mirror_stored(draft.id(), stored).await?;
        Ok(current)
    }

    /// Removes a section from the agenda. Its text stays in the document
    /// but is no longer shown, and nobody may write it.
    pub async fn remove_section(
        &self,
        managed: &Managed,
        section: &str,
    ) -> Result<(), MeetingError> {
        let section = SectionId::parse(section).map_err(|_| NO_SUCH_SECTION)?;
        if !self.db.dir.remove_section(managed.id(), &section).await? {
            return Err(NO_SUCH_SECTION);
        }
        self.mirror_agenda(managed.id()).await
    }

    /// Puts the agenda in the order `order` gives, which must name every
    /// section of the meeting once; returns the agenda.
    pub async fn reorder(
        &self,
        draft: &Draft,
        order: &[String],
    ) -> Result<Vec<Section>, MeetingError> {
        let existing = self.db.dir.sections(draft.id()).await?;
        let mut wanted: Vec<&str> = order.iter().map(String::as_str).collect();
        let mut have: Vec<&str> = existing.iter().map(|s| s.id.as_str()).collect();
        wanted.sort_unstable();
        have.sort_unstable();
        if wanted != have {
            return Err(MeetingError::Invalid(
                "name every section of the agenda exactly once".into(),
            ));
        }
        let order: Vec<SectionId> = order
            .iter()
            .map(|s| SectionId::parse(s))
            .collect::<Result<_, _>>()?;
        self.db.dir.reorder_sections(draft.id(), &order).await?;
        self.mirror_agenda(draft.id()).await?;
        Ok(self.db.dir.sections(draft.id()).await?)
    }
}
