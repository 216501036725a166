//! A meeting's participants and their roles.
//!
//! A role decides what someone's connections may write, so a changed role
//! closes their open connections to the meeting (they reconnect with the
//! new one) and a removal closes them for good. Someone who stops being
//! the secretary can no longer invite: the invitations they sent end.
//! That a locked meeting's participants stay, and that a newcomer's name
//! must not read the same as a participant's, the store checks in the
//! transaction that adds them.

use super::{Draft, MeetingError, Meetings};
use crate::{
    cluster::AccountEvent,
    meeting::MeetingId,
    people::{Participant, Role, User, UserId},
    sync::peer::close_code,
};

impl Meetings<'_> {
    /// The participants of a meeting `user` may read, with their roles.
    pub async fn participants(
        &self,
        user: &User,
        id: &str,
    ) -> Result<Vec<Participant>, MeetingError> {
        let (meeting, _) = self.open(user, id).await?;
        Ok(self.db.dir.participants(meeting.id).await?)
    }

    /// Adds a participant, or changes their role.
    pub async fn set_participant(
        &self,
        draft: &Draft,
        user: &str,
        role: Role,
    ) -> Result<(), MeetingError> {
        let meeting = draft.id();
        let user: UserId = user.parse()?;
        let before = self.db.dir.role(meeting, user).await?;
        self.db
            .dir
            .set_participant(meeting, user, role)
            .await
            .map_err(MeetingError::refused)?;
        if role != Role::Secretary {
            self.end_invitations_of_former_manager(meeting, user)
                .await?;
        }
        // Only a participant or an administrator can have a connection: a
        // role set again unchanged, or a new participant who is not an
        // administrator, disturbs nobody (on several nodes the
        // announcement could otherwise arrive after the newcomer's first
        // connection and close it).
        let reconnect = match before {
            Some(before) => before != role,
            None => self.db.dir.user(user).await?.is_some_and(|u| u.is_admin),
        };
        if reconnect {
            self.close_connections(AccountEvent::participant(
                meeting,
                user,
                close_code::SERVICE_RESTART,
                "your role changed; reconnect",
            ));
        }
        Ok(())
    }

    /// Removes a participant; their open connections to the meeting close.
    pub async fn remove_participant(&self, draft: &Draft, user: &str) -> Result<(), MeetingError> {
        const NO_SUCH_PARTICIPANT: MeetingError = MeetingError::NotFound("no such participant");
        let meeting = draft.id();
        let user: UserId = user.parse().map_err(|_| NO_SUCH_PARTICIPANT)?;
        if !self.db.dir.remove_participant(meeting, user).await? {
            return Err(NO_SUCH_PARTICIPANT);
        }
        self.end_invitations_of_former_manager(meeting, user)
            .await?;
        self.close_connections(AccountEvent::participant(
            meeting,
            user,
            close_code::FORBIDDEN,
            "removed from the meeting",
        ));
        Ok(())
    }

    /// Someone who stopped being a meeting's secretary may no longer
    /// invite to it: the invitations they sent and nobody has used yet end.
    /// (An administrator keeps the right, and their invitations.)
    /// Acceptance checks the sender's right again in any case.
    async fn end_invitations_of_former_manager(
        &self,
        meeting: MeetingId,
        user: UserId,
    ) -> Result<(), MeetingError> {
        let still_admin = self.db.dir.user(user).await?.is_some_and(|u| u.is_admin);
        if !still_admin {
            let ended = self
                .db
                .dir
                .revoke_invitations_sent_by(meeting, user)
                .await?;
            if ended > 0 {
                tracing::info!(%meeting, %user, ended, "ended invitations of a former secretary");
            }
        }
        Ok(())
    }
}
