//! Who may do what with a meeting, decided here for the API, the
//! WebSocket and the command line alike.
//!
//! Only participants and administrators see a meeting (to anyone else it
//! does not exist: a meeting's existence is not public); only its secretary
//! and administrators change it; and what the protocol shows (its details,
//! agenda and participants) changes only while it is a draft, so that §
//! numbers and the header stay as they were at the lock. Changes take the
//! proof these checks return ([`Managed`], [`Draft`], [`Creator`]), so no
//! caller can skip them.

use std::ops::Deref;

use super::{MeetingError, Meetings};
use crate::{
    access::MeetingAccess,
    meeting::{Meeting, MeetingId, ProtocolState},
    people::{Role, User, UserId},
    store::StoreError,
};

/// The answer for a meeting that does not exist or that the caller may
/// not see.
pub const NO_SUCH_MEETING: &str = "no such meeting";

/// Why a change to a locked meeting is refused, wherever it is caught.
pub const LOCKED: &str = "the protocol is locked: its agenda, details, participants and \
     invitations cannot change until it is reopened or rejected (and never once it is verified)";

/// A meeting its caller may change: they are its secretary or an
/// administrator.
#[derive(Debug)]
pub struct Managed {
    meeting: Meeting,
    by: UserId,
    by_admin: bool,
}

impl Managed {
    pub fn meeting(&self) -> &Meeting {
        &self.meeting
    }

    pub fn id(&self) -> MeetingId {
        self.meeting.id
    }

    pub fn into_meeting(self) -> Meeting {
        self.meeting
    }

    /// Who is changing it.
    pub(super) fn by(&self) -> UserId {
        self.by
    }

    /// Only administrators may put a person in an agency.
    pub(super) fn by_admin(&self) -> bool {
        self.by_admin
    }
}

/// A [`Managed`] meeting whose protocol is a draft: its header, agenda and
/// participants may change.
#[derive(Debug)]
pub struct Draft(Managed);

impl Draft {
    pub fn into_meeting(self) -> Meeting {
        self.0.meeting
    }
}

impl Deref for Draft {
    type Target = Managed;

    fn deref(&self) -> &Managed {
        &self.0
    }
}

/// Someone who may create a meeting: a person allowed to (who becomes its
/// secretary), or the operator at the command line or the demo (who has
/// the database anyway; the meeting then has no secretary until one is
/// named).
#[derive(Debug, Clone)]
pub struct Creator {
    pub(super) secretary: Option<User>,
}

impl Creator {
    /// Administrators, and people an administrator has allowed to
    /// (`can_create_meetings`). Anyone else could otherwise make
    /// themselves the secretary of a meeting of their own.
    pub fn user(user: &User) -> Result<Self, MeetingError> {
        if !user.may_create_meetings() {
            return Err(MeetingError::Forbidden(
                "only administrators, and people an administrator has allowed to, may create \
                 meetings",
            ));
        }
        Ok(Self {
            secretary: Some(user.clone()),
        })
    }

    /// The operator of the command line or the demo.
    pub fn operator() -> Self {
        Self { secretary: None }
    }
}

impl Meetings<'_> {
    /// What `user` may do in `meeting`, whether or not it exists.
    pub async fn access(
        &self,
        meeting: MeetingId,
        user: &User,
    ) -> Result<MeetingAccess, StoreError> {
        Ok(MeetingAccess {
            role: self.db.dir.role(meeting, user.id).await?,
            is_admin: user.is_admin,
        })
    }

    /// The meeting `id` names and what `user` may do in it; not found
    /// unless they may read it.
    pub async fn open(
        &self,
        user: &User,
        id: &str,
    ) -> Result<(Meeting, MeetingAccess), MeetingError> {
        let not_found = MeetingError::NotFound(NO_SUCH_MEETING);
        let Ok(id) = id.parse::<MeetingId>() else {
            return Err(not_found);
        };
        let Some(meeting) = self.db.dir.get_meeting(id).await? else {
            return Err(not_found);
        };
        let access = self.access(id, user).await?;
        if !access.can_read() {
            return Err(not_found);
        }
        Ok((meeting, access))
    }

    /// The meeting, if `user` may change it (forbidden to other
    /// participants, not found for everyone else).
    pub async fn manage(&self, user: &User, id: &str) -> Result<Managed, MeetingError> {
        let (meeting, access) = self.open(user, id).await?;
        if !access.can_manage() {
            return Err(MeetingError::Forbidden(
                "only the meeting's secretary may change this",
            ));
        }
        Ok(Managed {
            meeting,
            by: user.id,
            by_admin: user.is_admin,
        })
    }

    /// Like [`Meetings::manage`], for changes to what the protocol shows:
    /// refused as a conflict once it is locked.
    pub async fn manage_draft(&self, user: &User, id: &str) -> Result<Draft, MeetingError> {
        let managed = self.manage(user, id).await?;
        if managed.meeting.state != ProtocolState::Draft {
            return Err(MeetingError::Conflict(LOCKED));
        }
        Ok(Draft(managed))
    }

    /// Who may look people and agencies up: administrators and anyone who
    /// runs at least one meeting (they add participants and assign
    /// sections).
    pub async fn may_pick_people(&self, user: &User) -> Result<(), MeetingError> {
        if user.is_admin
            || self
                .db
                .dir
                .roles_of(user.id)
                .await?
                .iter()
                .any(|(_, role)| *role == Role::Secretary)
        {
            return Ok(());
        }
        Err(MeetingError::Forbidden(
            "only secretaries and administrators look people up",
        ))
    }
}
