//! Meetings as a whole: creating one with its first participants and
//! agenda, changing its header, listing meetings and reading one.
//!
//! A new meeting is checked whole before anything is stored: its people
//! must have names that tell them apart ([`Company`]), whoever creates it
//! must be allowed to ([`Creator`]).

use super::{Creator, Draft, MeetingError, Meetings};
use crate::{
    meeting::{Meeting, MeetingDetails, MeetingTitle},
    people::{Participant, Role, Section, SectionId, User, UserId, first_clash},
};

/// The people a new meeting starts with, besides its creator: checked to
/// have names that tell them apart (a meeting must not hold two names that
/// read the same; see `people::NameKey`).
#[derive(Debug, Default)]
pub struct Company {
    joining: Vec<(UserId, Role)>,
}

impl Company {
    /// `people` with their roles (someone named twice takes the last
    /// role), beside `creator`, who becomes the secretary and is left out
    /// of `people`.
    pub fn gather(creator: &Creator, people: Vec<(User, Role)>) -> Result<Self, MeetingError> {
        let secretary = creator.secretary.as_ref();
        let mut names: Vec<&str> = secretary
            .map(|u| u.display_name.as_str())
            .into_iter()
            .collect();
        let mut counted: Vec<UserId> = secretary.map(|u| u.id).into_iter().collect();
        for (user, _) in &people {
            if !counted.contains(&user.id) {
                counted.push(user.id);
                names.push(&user.display_name);
            }
        }
        if let Some((a, b)) = first_clash(&names) {
            return Err(MeetingError::NamesClash(a.to_owned(), b.to_owned()));
        }
        Ok(Self {
            joining: people
                .into_iter()
                .filter(|(user, _)| secretary.is_none_or(|s| s.id != user.id))
                .map(|(user, role)| (user.id, role))
                .collect(),
        })
    }
}

/// A meeting to create.
pub struct NewMeeting<'a> {
    pub title: MeetingTitle,
    pub details: MeetingDetails,
    pub company: Company,
    /// The agenda, in order, each section with its first paragraphs (none
    /// for an empty section), written into the document as well. `None`
    /// leaves the document untouched (an agenda copied from an earlier
    /// meeting is written even when it is empty).
    pub agenda: Option<Vec<(Section, &'a [&'a str])>>,
}

/// A meeting as one who may read it sees it.
pub struct Overview {
    pub meeting: Meeting,
    /// The reader's role in it, if they take part.
    pub your_role: Option<Role>,
    pub agenda: Vec<Section>,
    pub participants: Vec<Participant>,
    /// The document's encoded size as stored, in bytes.
    pub document_bytes: u64,
}

impl Meetings<'_> {
    /// Creates a meeting with its participants and agenda, and writes the
    /// agenda into its document.
    pub async fn create(
        &self,
        creator: &Creator,
        new: NewMeeting<'_>,
    ) -> Result<Meeting, MeetingError> {
        let meeting = self
            .db
            .dir
            .create_meeting(
                new.title,
                new.details,
                creator.secretary.as_ref().map(|u| u.id),
            )
            .await
            .map_err(MeetingError::refused)?;
        for (user, role) in new.company.joining {
            self.db
                .dir
                .set_participant(meeting.id, user, role)
                .await
                .map_err(MeetingError::refused)?;
        }
        if let Some(agenda) = &new.agenda {
            for (section, _) in agenda {
                self.db
                    .dir
                    .add_section(meeting.id, section)
                    .await
                    .map_err(MeetingError::refused)?;
            }
            let text: Vec<(SectionId, &[&str])> = agenda
                .iter()
                .map(|(section, text)| (section.id.clone(), *text))
                .collect();
            self.first_document(meeting.id, &text).await?;
        }
        Ok(meeting)
    }

    /// The agenda and participants of a meeting `user` may read, to copy
    /// into a new one; not found otherwise.
    pub async fn template(
        &self,
        user: &User,
        id: &str,
    ) -> Result<(Vec<Section>, Vec<Participant>), MeetingError> {
        let (source, _) = self.open(user, id).await?;
        let participants = self.db.dir.participants(source.id).await?;
        let sections = self.db.dir.sections(source.id).await?;
        Ok((sections, participants))
    }

    /// Changes a draft's title and header.
    pub async fn update(
        &self,
        draft: Draft,
        title: MeetingTitle,
        details: MeetingDetails,
    ) -> Result<Meeting, MeetingError> {
        self.db
            .dir
            .update_meeting(draft.id(), &title, &details)
            .await?;
        Ok(Meeting {
            title,
            details,
            ..draft.into_meeting()
        })
    }

    /// The meetings `user` takes part in (every meeting, for an
    /// administrator), each with their role in it.
    pub async fn list(&self, user: &User) -> Result<Vec<(Meeting, Option<Role>)>, MeetingError> {
        let filter = (!user.is_admin).then_some(user.id);
        let roles: std::collections::HashMap<_, _> =
            self.db.dir.roles_of(user.id).await?.into_iter().collect();
        Ok(self
            .db
            .dir
            .list_meetings(filter)
            .await?
            .into_iter()
            .map(|meeting| {
                let role = roles.get(&meeting.id).copied();
                (meeting, role)
            })
            .collect())
    }

    /// A meeting `user` may read, with its agenda and participants.
    pub async fn overview(&self, user: &User, id: &str) -> Result<Overview, MeetingError> {
        let (meeting, access) = self.open(user, id).await?;
        let agenda = self.db.dir.sections(meeting.id).await?;
        let participants = self.db.dir.participants(meeting.id).await?;
        let document_bytes = self.db.docs.document_bytes(meeting.id).await?;
        Ok(Overview {
            meeting,
            your_role: access.role,
            agenda,
            participants,
            document_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::Username;

    fn person(name: &str) -> User {
        User {
            id: UserId::new(),
            username: Username::parse("someone").unwrap(),
            display_name: name.to_owned(),
            agency: None,
            is_admin: false,
            can_create_meetings: true,
            has_password: true,
            vouched: None,
        }
    }

    #[test]
    fn a_company_refuses_two_names_that_read_the_same() {
        let people = vec![
            (person("Anna Andersson"), Role::Member),
            (person("ANNA  ANDERSSON"), Role::Chair),
        ];
        match Company::gather(&Creator::operator(), people) {
            Err(MeetingError::NamesClash(a, b)) => {
                assert_eq!(
                    (a.as_str(), b.as_str()),
                    ("Anna Andersson", "ANNA  ANDERSSON")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_creator_counts_among_the_names_but_joins_as_secretary_only() {
        let me = person("Eva Lindqvist");
        let creator = Creator::user(&me).unwrap();
        let clash = vec![(person("eva lindqvist"), Role::Member)];
        assert!(Company::gather(&creator, clash).is_err());
        let company = Company::gather(
            &creator,
            vec![
                (me.clone(), Role::Member),
                (person("Johan Ek"), Role::Member),
            ],
        )
        .unwrap();
        assert_eq!(company.joining.len(), 1, "the creator is left out");
    }

    #[test]
    fn someone_named_twice_is_one_name() {
        let anna = person("Anna");
        let company = Company::gather(
            &Creator::operator(),
            vec![(anna.clone(), Role::Member), (anna.clone(), Role::Chair)],
        )
        .unwrap();
        assert_eq!(
            company.joining,
            vec![(anna.id, Role::Member), (anna.id, Role::Chair)]
        );
    }
}
