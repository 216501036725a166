//! The meetings service: creating meetings and changing their details,
//! agendas, participants and invitations. The JSON API, the command line
//! and the demo all go through here, so that each rule is written once:
//! who may do what ([`access`]), that a locked protocol's header, agenda
//! and participants stay as they were, that the people of one meeting have
//! names that tell them apart ([`Company`]), and the agenda mirror (the
//! agenda kept in the database, written into the document's `agenda` array
//! for every client to see, [`agenda`]).
//!
//! It decides and stores; it knows nothing of HTTP or of command-line
//! flags. Callers turn [`MeetingError`] into their own answers. The
//! protocol's own life (lock, justering, exports) is `crate::finalise`'s.

pub mod access;
pub mod agenda;
mod create;
mod invitations;
mod participants;

use crate::{
    auth::password::HashError,
    cluster::AccountEvent,
    people::{InvalidInput, NAME_TAKEN},
    store::{Database, StoreError},
    sync::Rooms,
};

pub use access::{Creator, Draft, LOCKED, Managed, NO_SUCH_MEETING};
pub use agenda::{NewSection, SectionChange};
pub use create::{Company, NewMeeting, Overview};
pub use invitations::{InvitationInput, Issued};

/// Where open connections are closed when someone's standing in a meeting
/// changes: on this node and, with several nodes, on every other.
pub trait Connections: Send + Sync {
    /// Closes the connections `event` names; returns how many were open
    /// on this node.
    fn close(&self, event: AccountEvent) -> usize;
}

/// The service over one database. A server passes its rooms (agenda
/// changes reach every open document through them) and its connections
/// (a changed role closes them); the command line and the demo have
/// neither, and only create meetings, whose documents nobody has open yet.
#[derive(Clone, Copy)]
pub struct Meetings<'a> {
    db: &'a Database,
    rooms: Option<&'a Rooms>,
    connections: Option<&'a dyn Connections>,
}

impl<'a> Meetings<'a> {
    /// For a running server.
    pub fn serving(db: &'a Database, rooms: &'a Rooms, connections: &'a dyn Connections) -> Self {
        Self {
            db,
            rooms: Some(rooms),
            connections: Some(connections),
        }
    }

    /// For the command line and the demo: no rooms, no connections.
    pub fn offline(db: &'a Database) -> Self {
        Self {
            db,
            rooms: None,
            connections: None,
        }
    }

    fn close_connections(&self, event: AccountEvent) {
        if let Some(connections) = self.connections {
            connections.close(event);
        }
    }
}

/// Why a change to a meeting was not made.
#[derive(Debug, thiserror::Error)]
pub enum MeetingError {
    /// It does not exist, or the caller may not see it.
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    /// Two people who would take part together have names that read the
    /// same (see `people::NameKey`).
    #[error("{0:?} and {1:?}: {NAME_TAKEN}")]
    NamesClash(String, String),
    #[error("{0}")]
    Invalid(String),
    /// The meeting's room could not take the change.
    #[error("the meeting's room is unavailable")]
    Unavailable,
    /// The store refused the change because of what was asked (a
    /// duplicate, an unknown agency or user, a name that reads the same as
    /// a participant's, a lock that came first).
    #[error(transparent)]
    Refused(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl MeetingError {
    /// A store error caused by the caller's input, as [`MeetingError::Refused`].
    fn refused(e: StoreError) -> Self {
        MeetingError::Refused(e)
    }
}

impl From<InvalidInput> for MeetingError {
    fn from(e: InvalidInput) -> Self {
        MeetingError::Invalid(e.to_string())
    }
}
