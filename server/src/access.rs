//! Who is on the other end of a connection, and what they may do.
//!
//! Every connection carries a `Principal`, fixed when it is accepted. Every
//! document update passes `Access::check_update` before it is applied. Today
//! every principal is anonymous and may write (sign-in and the per-section
//! guard build on these two seams); the seams exist so that no code path
//! applies an update without asking.

use yrs::Update;

use crate::meeting::MeetingId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No sign-in yet: the deployment has no accounts.
    Anonymous,
}

impl Principal {
    /// A label for logs that identifies without revealing secrets.
    pub fn log_label(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission denied: {0}")]
pub struct Denied(pub String);

#[derive(Debug, Clone, Default)]
pub struct Access;

impl Access {
    /// Decides whether `principal` may apply `update` to `meeting`'s document.
    /// Called for every sync step 2 and update message, before applying it.
    pub fn check_update(
        &self,
        _principal: &Principal,
        _meeting: MeetingId,
        _update: &Update,
    ) -> Result<(), Denied> {
        Ok(())
    }
}
