//! Finalising a protocol: lock, reopen, justering (sign-off and
//! rejection), the server's signature, exports and verification.
//!
//! The lifecycle is `draft -> locked -> verified`; `locked -> draft` by a
//! rejection (the chair or a justerare, with a reason) or by the secretary
//! reopening before anyone signed. Who may do what is decided here, for the
//! API and the CLI alike; the state itself lives in the database
//! (`store::Protocols`), whose triggers refuse appends to a locked
//! meeting's document and any change to what was recorded.
//!
//! A lock goes through the meeting's room when the server has one (see
//! `sync::Rooms::transition`): the room commits every update it accepted
//! before, runs the lock, and from then on refuses updates with close code
//! 4423. The lock transaction reads the document from the database, so
//! updates another node committed are in the text too.
//!
//! Every export is rendered once per (protocol, stage, format) and kept in
//! the database (`protocol_renditions`): the locked stage's inside the
//! lock's transaction, so that a protocol that cannot become its archival
//! PDF is not locked (the secretary is told which section and what to
//! change), and the verified stage's on its first download. At most
//! [`MAX_CONCURRENT_RENDERS`] renderings run at once in a process, on a
//! blocking thread; what a protocol may ask of the typesetter is bounded
//! by `protokoll_render::limits`.
//!
//! This file holds who acts and what may go wrong; the jobs have a file
//! each: `lock.rs` (lock, reopen, reject), `signoff.rs` (justering and the
//! signature), `exports.rs`, `verify.rs`, `views.rs` (what the API shows),
//! `canonical.rs` (the hashed form) and `signing.rs` (the server's key).

pub mod canonical;
mod exports;
mod lock;
pub mod signing;
mod signoff;
mod verify;
mod views;

use chrono::{DateTime, SecondsFormat, Utc};
use protokoll_render::{Problem, Protocol};
use sha2::{Digest, Sha256};

pub use crate::people::MAX_REASON_CHARS;
use crate::{
    auth::SignIn,
    meeting::MeetingId,
    people::{Role, User},
    store::{AuditActor, ChangeRefused, Database, ProtocolRecord, StoreError},
    sync::{Rooms, Transition},
};
pub use exports::{Export, Format, MAX_CONCURRENT_RENDERS, RENDER_WAIT};
pub use signing::{Signer, SignerSlot};
pub use verify::{SignatureCheck, VerifiedProtocol, VerifyReport, VerifyStatus};
pub use views::{Exports, LockedView, ProtocolView, RequiredSignoff, SignatureView, SignedBy};

/// Why an account that nobody vouched for may not sign off.
pub const NOT_VOUCHED: &str = "an administrator must confirm your account before you can sign \
     off or reject a protocol: it was made through an invitation, and nobody has vouched for who \
     you are yet; ask an administrator to confirm it";

/// The answer when the key this process loaded is no longer the one in use.
const KEY_NOT_IN_USE: &str = "the server's signing key has been retired (or replaced) since it \
     started, so it cannot sign this protocol: the server must be restarted with the key in use; \
     nothing was recorded, sign off again afterwards";

#[derive(Debug, thiserror::Error)]
pub enum FinaliseError {
    #[error("no such meeting")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Invalid(&'static str),
    #[error("the protocol could not be rendered: {0}")]
    Render(String),
    /// The protocol cannot become its archival PDF: which section, and
    /// what to change.
    #[error("the protocol cannot be archived as PDF: {0}")]
    Unarchivable(Problem),
    /// Too many renderings are waiting; try again shortly.
    #[error("the server is busy rendering protocols; try again in a moment")]
    Busy,
    #[error("the meeting's room is unavailable")]
    Unavailable,
    /// No signing key could be loaded to sign the verified protocol.
    #[error("the protocol cannot be signed: {0}")]
    Signing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ChangeRefused<FinaliseError>> for FinaliseError {
    fn from(e: ChangeRefused<FinaliseError>) -> Self {
        match e {
            ChangeRefused::NoMeeting => FinaliseError::NotFound,
            ChangeRefused::Refused(e) => e,
            ChangeRefused::Store(StoreError::SigningKeyNotInUse(_)) => {
                FinaliseError::Conflict(KEY_NOT_IN_USE)
            }
            ChangeRefused::Store(e) => FinaliseError::Store(e),
        }
    }
}

/// Who acts, with their role in the meeting.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub role: Option<Role>,
    /// `api` or `cli`, for the audit log.
    pub via: &'static str,
    /// How they signed in, as a sign-off records it.
    pub signed_in_with: SignIn,
}

impl Actor {
    fn audit(&self) -> AuditActor {
        AuditActor {
            id: Some(self.user.id),
            name: self.user.display_name.clone(),
            via: self.via,
        }
    }

    /// The secretary locks and reopens; so may an administrator, who may
    /// manage every meeting. Both are recorded by name in the audit log.
    /// `refusal` for anyone else.
    fn may_lock(&self, refusal: &'static str) -> Result<(), FinaliseError> {
        if self.user.is_admin || self.role == Some(Role::Secretary) {
            Ok(())
        } else {
            Err(FinaliseError::Forbidden(refusal))
        }
    }

    /// The role in which the chair or a justerare signs off or rejects;
    /// `refusal` for anyone else, and `NOT_VOUCHED` for an account nobody
    /// vouched for.
    fn verifier(&self, refusal: &'static str) -> Result<&'static str, FinaliseError> {
        let role = match self.role {
            Some(Role::Chair) => "chair",
            Some(Role::Justerare) => "justerare",
            _ => return Err(FinaliseError::Forbidden(refusal)),
        };
        if !self.user.may_sign_off() {
            return Err(FinaliseError::Forbidden(NOT_VOUCHED));
        }
        Ok(role)
    }
}

/// Formats a time as the canonical form writes it.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    signing::hex(&Sha256::digest(bytes))
}

fn parse(record: &ProtocolRecord) -> Result<Protocol, FinaliseError> {
    serde_json::from_str(&record.protocol.canonical)
        .map_err(|e| StoreError::Corrupt(format!("canonical protocol: {e}")).into())
}

/// The lifecycle over one database, with the server's rooms when running
/// as a server (the CLI has none).
pub struct Lifecycle<'a> {
    pub db: &'a Database,
    pub signer: &'a SignerSlot,
    pub rooms: Option<&'a Rooms>,
}

impl Lifecycle<'_> {
    /// Runs a state change through the meeting's room, if this is a
    /// server; then the protocol as it stands.
    async fn through_room(
        &self,
        meeting: MeetingId,
        job: futures::future::BoxFuture<'static, (Result<(), FinaliseError>, Option<Transition>)>,
    ) -> Result<ProtocolView, FinaliseError> {
        match self.rooms {
            Some(rooms) => rooms
                .transition(meeting, job)
                .await
                .map_err(|_| FinaliseError::Unavailable)??,
            None => job.await.0?,
        }
        self.view(meeting).await
    }
}
