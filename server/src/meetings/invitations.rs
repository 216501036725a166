//! Invitations: a meeting's secretary invites someone new, who chooses
//! their own password through the link and joins the meeting.
//!
//! Only the hash of a link's secret is stored. A link works once, for
//! `INVITATION_TTL_DAYS`, and only while whoever sent it may still invite
//! to the meeting (checked again, in the store's transaction, on
//! acceptance). An account made this way is not vouched for: it takes
//! part, but signs nothing off until an administrator confirms it.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Draft, Managed, MeetingError, Meetings, NO_SUCH_MEETING};
use crate::{
    auth::{self, password, secret},
    meeting::Meeting,
    people::{
        AgencyId, InvitationId, NAME_TAKEN, NewPassword, Role, User, Username, parse_name,
        reads_as_any,
    },
    store::{Acceptance, Invitation, PendingInvitation},
};

/// How long an invitation link works.
const INVITATION_TTL_DAYS: i64 = 14;

// Whom to invite, and as what (no doc comment: it would change the OpenAPI schema).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationInput {
    pub username: String,
    pub display_name: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub agency_id: Option<AgencyId>,
    #[schema(value_type = String)]
    pub role: Role,
}

/// An invitation just made: the secret is shown this once.
pub struct Issued {
    pub id: InvitationId,
    pub secret: String,
    pub expires_at: DateTime<Utc>,
}

const INVITATION_GONE: MeetingError =
    MeetingError::NotFound("this invitation is unknown, used or expired");
const INVITATION_WITHDRAWN: MeetingError = MeetingError::Forbidden(
    "this invitation no longer holds: the person who sent it may no longer invite to this \
     meeting; ask the meeting's secretary for a new one",
);
const USERNAME_TAKEN: MeetingError = MeetingError::Conflict(
    "the username in this invitation belongs to someone else already; contact the meeting's \
     secretary for a new invitation (or, if it is yours, sign in and ask to be added)",
);
const INVITATION_LOCKED: MeetingError = MeetingError::Conflict(
    "the meeting's protocol is locked (or verified), so nobody can join it now; the invitation \
     still holds should the protocol be reopened, or ask the meeting's secretary",
);
const INVITATION_NAME_TAKEN: MeetingError = MeetingError::Conflict(
    "someone in this meeting already has the name this invitation gives you (or one that reads \
     the same); ask the meeting's secretary for an invitation under a name that tells you apart",
);

impl Meetings<'_> {
    /// Invites someone new to a draft. Only administrators may put the
    /// newcomer in an agency. Whether the username is taken is not told
    /// (any secretary could otherwise probe which usernames exist): only
    /// the invitee learns it, when accepting.
    pub async fn invite(
        &self,
        draft: &Draft,
        input: InvitationInput,
    ) -> Result<Issued, MeetingError> {
        let username = Username::parse(&input.username)?;
        let display_name = parse_name(&input.display_name)?;
        if input.agency_id.is_some() && !draft.by_admin() {
            return Err(MeetingError::Forbidden(
                "only administrators may put a person in an agency; invite without agency_id",
            ));
        }
        // Acceptance checks again (participants may change meanwhile);
        // telling the secretary now spares the invitee a link that cannot
        // work.
        let taken = self.db.dir.participants(draft.id()).await?;
        if reads_as_any(
            &display_name,
            taken.iter().map(|p| p.user.display_name.as_str()),
        ) {
            return Err(MeetingError::Conflict(NAME_TAKEN));
        }
        let (secret, hash) = secret::generate(auth::INVITATION_PREFIX);
        let expires_at = Utc::now() + chrono::Duration::days(INVITATION_TTL_DAYS);
        let id = self
            .db
            .dir
            .create_invitation(
                &hash,
                draft.id(),
                &username,
                &display_name,
                input.agency_id,
                input.role,
                draft.by(),
                expires_at,
            )
            .await
            .map_err(MeetingError::refused)?;
        Ok(Issued {
            id,
            secret,
            expires_at,
        })
    }

    /// A meeting's pending invitations (not used, revoked or expired).
    pub async fn invitations(
        &self,
        managed: &Managed,
    ) -> Result<Vec<PendingInvitation>, MeetingError> {
        Ok(self
            .db
            .dir
            .pending_invitations(managed.id(), Utc::now())
            .await?)
    }

    /// Revokes a pending invitation: its link stops working.
    pub async fn revoke_invitation(
        &self,
        managed: &Managed,
        invitation: &str,
    ) -> Result<(), MeetingError> {
        const NO_SUCH: MeetingError = MeetingError::NotFound("no such pending invitation");
        let invitation: InvitationId = invitation.parse().map_err(|_| NO_SUCH)?;
        if !self
            .db
            .dir
            .revoke_invitation(managed.id(), invitation)
            .await?
        {
            return Err(NO_SUCH);
        }
        Ok(())
    }

    /// A usable invitation: unused, unrevoked, unexpired, and its sender
    /// may still send it. With its secret's hash.
    async fn pending(&self, secret: &str) -> Result<(Vec<u8>, Invitation), MeetingError> {
        let hash = secret::hash(secret);
        let invitation = self
            .db
            .dir
            .invitation(&hash)
            .await?
            .ok_or(INVITATION_GONE)?;
        if invitation.used || invitation.revoked || invitation.expires_at <= Utc::now() {
            return Err(INVITATION_GONE);
        }
        if !self.db.dir.inviter_may_invite(invitation.id).await? {
            return Err(INVITATION_WITHDRAWN);
        }
        Ok((hash.to_vec(), invitation))
    }

    /// What the invitation with this secret is for (the link is the key:
    /// no sign-in).
    pub async fn invitation(&self, secret: &str) -> Result<(Meeting, Invitation), MeetingError> {
        let (_, invitation) = self.pending(secret).await?;
        let meeting = self
            .db
            .dir
            .get_meeting(invitation.meeting)
            .await?
            .ok_or(MeetingError::NotFound(NO_SUCH_MEETING))?;
        Ok((meeting, invitation))
    }

    /// Accepts the invitation with this secret: makes the account with
    /// `password`, in the meeting. Returns the new account, not yet
    /// confirmed.
    pub async fn accept_invitation(
        &self,
        secret: &str,
        password: &str,
    ) -> Result<User, MeetingError> {
        let (hash, invitation) = self.pending(secret).await?;
        let password = NewPassword::parse(password)?;
        // Checked before the costly hashing; the store checks again.
        if self
            .db
            .dir
            .user_by_username(&invitation.username)
            .await?
            .is_some()
        {
            return Err(USERNAME_TAKEN);
        }
        let password_hash = password::hash(password).await?;
        let user = match self
            .db
            .dir
            .accept_invitation(&hash, &invitation, &password_hash)
            .await
            .map_err(MeetingError::refused)?
        {
            Acceptance::Accepted(user) => user,
            Acceptance::Gone => return Err(INVITATION_GONE),
            Acceptance::Withdrawn => return Err(INVITATION_WITHDRAWN),
            Acceptance::UsernameTaken => return Err(USERNAME_TAKEN),
            Acceptance::Locked => return Err(INVITATION_LOCKED),
            Acceptance::NameTaken => return Err(INVITATION_NAME_TAKEN),
        };
        self.db
            .dir
            .user(user)
            .await?
            .ok_or(MeetingError::NotFound("no such user"))
    }
}
