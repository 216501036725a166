//! Finalising over HTTP, one file per job: [`state`] (the protocol's state,
//! lock, reopen, sign-off, reject and the audit log), [`exports`] (the
//! downloads), [`verify`] (verification and the public signing keys, no
//! sign-in) and [`page`] (the verification page without JavaScript). Who may
//! do what is decided in `crate::finalise`; this module maps requests and
//! answers, and holds what its files share: the error mapping, the
//! lifecycle and the caller as an actor.

mod exports;
mod page;
mod state;
mod verify;

pub use self::{exports::*, page::*, state::*, verify::*};

use super::{AppState, call::Call, error::ApiError};
use crate::{
    finalise::{Actor, FinaliseError, Lifecycle},
    meeting::MeetingId,
    store::StoreError,
};

/// The `Retry-After` of a download that found every rendering slot taken.
const RENDER_RETRY_AFTER_SECS: u64 = 5;

impl From<FinaliseError> for ApiError {
    fn from(e: FinaliseError) -> Self {
        match e {
            FinaliseError::NotFound => ApiError::NotFound("no such meeting"),
            FinaliseError::Forbidden(m) => ApiError::Forbidden(m),
            FinaliseError::Conflict(m) => ApiError::Conflict(m),
            FinaliseError::Invalid(m) => ApiError::Invalid(m.into()),
            FinaliseError::Unavailable => ApiError::Unavailable,
            FinaliseError::Signing(m) => ApiError::Store(StoreError::Corrupt(m)),
            FinaliseError::Render(m) => ApiError::Store(StoreError::Corrupt(m)),
            FinaliseError::Unarchivable(problem) => ApiError::Unarchivable(problem),
            FinaliseError::Busy => ApiError::Busy(
                "the server is busy rendering protocols; try again in a moment",
                RENDER_RETRY_AFTER_SECS,
            ),
            FinaliseError::Store(e) => ApiError::Store(e),
        }
    }
}

fn lifecycle(app: &AppState) -> Lifecycle<'_> {
    Lifecycle {
        db: &app.db,
        signer: &app.signer,
        rooms: Some(&app.rooms),
    }
}

/// The meeting (404 unless the caller may read it) and the caller as an
/// actor in it.
async fn actor(call: Call) -> Result<(AppState, MeetingId, Actor), ApiError> {
    let Call { app, me, path: id } = call;
    let (meeting, access) = app.meetings().open(&me.0.user, &id).await?;
    Ok((
        app,
        meeting.id,
        Actor {
            signed_in_with: me.0.credential.sign_in(),
            user: me.0.user,
            role: access.role,
            via: "api",
        },
    ))
}
