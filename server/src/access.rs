//! What a signed-in person may do.
//!
//! Every connection carries the `Principal` it was accepted with. Reading a
//! meeting (its document over WebSocket, its agenda and API resources) is
//! for its participants and for administrators; changing the agenda and the
//! participants is for its secretary and administrators. What each
//! principal may write in the document is the section guard's (`guard`).

use std::sync::Arc;

use crate::people::{Role, User, UserId};

/// The identity behind a connection, as others may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub name: String,
    pub agency: Option<String>,
    pub agency_id: Option<crate::people::AgencyId>,
    pub is_admin: bool,
    /// The person's role in the connection's meeting (none for an
    /// administrator who is not a participant).
    pub role: Option<Role>,
}

impl Principal {
    pub fn new(user: &User, role: Option<Role>) -> Arc<Self> {
        Arc::new(Self {
            user_id: user.id,
            name: user.display_name.clone(),
            agency: user.agency.as_ref().map(|a| a.name.clone()),
            agency_id: user.agency.as_ref().map(|a| a.id),
            is_admin: user.is_admin,
            role,
        })
    }
}

/// What someone may do in one meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeetingAccess {
    pub role: Option<Role>,
    pub is_admin: bool,
}

impl MeetingAccess {
    /// Sees the meeting at all: its document, agenda and participants.
    pub fn can_read(&self) -> bool {
        self.is_admin || self.role.is_some()
    }

    /// Changes the agenda, the meeting's details and its participants.
    pub fn can_manage(&self) -> bool {
        self.is_admin || self.role == Some(Role::Secretary)
    }
}
