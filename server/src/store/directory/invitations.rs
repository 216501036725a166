//! Invitations to a meeting: created with a secret's hash, listed for the
//! meeting's managers, revoked, and accepted once (the account, the
//! participation and the audit row in one transaction that holds the
//! meeting).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::{Directory, conflict, name_clashes};
use crate::{
    meeting::MeetingId,
    people::{Agency, AgencyId, InvitationId, Role, UserId, Username},
    store::{
        StoreError,
        pool::{begin_on_meeting, execute, with_pool},
    },
};

/// An invitation, found by its token's hash.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: InvitationId,
    pub meeting: MeetingId,
    pub username: Username,
    pub display_name: String,
    pub agency: Option<AgencyId>,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    pub revoked: bool,
    pub created_by: UserId,
}

/// A pending invitation as its meeting's managers see it (never its
/// secret, which is not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PendingInvitation {
    #[schema(value_type = String, format = Uuid)]
    pub id: InvitationId,
    #[schema(value_type = String)]
    pub username: Username,
    pub display_name: String,
    #[schema(value_type = Option<Object>)]
    pub agency: Option<Agency>,
    #[schema(value_type = String)]
    pub role: Role,
    pub created_by: InvitationCreator,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvitationCreator {
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    pub display_name: String,
}

/// What became of an attempt to accept an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    Accepted(UserId),
    /// Used meanwhile, revoked, or unknown.
    Gone,
    /// The person who sent it may no longer invite (no longer the meeting's
    /// secretary, or no longer an administrator when it names an agency).
    Withdrawn,
    /// The invited username belongs to someone already.
    UsernameTaken,
    /// The meeting's protocol is locked or verified: its participants are
    /// frozen.
    Locked,
    /// Someone in the meeting has a name that reads the same.
    NameTaken,
}

/// Whether invitation `$1`'s sender may still send it: an administrator, or
/// (when it puts nobody in an agency) the secretary of its meeting.
const INVITER_MAY_INVITE: &str =
    "SELECT 1 AS ok FROM invitations i JOIN users u ON u.id = i.created_by
     WHERE i.id = $1 AND (u.is_admin OR (i.agency_id IS NULL AND EXISTS (
         SELECT 1 FROM participants pt
         WHERE pt.meeting_id = i.meeting_id AND pt.user_id = u.id AND pt.role = 'secretary')))";

impl Directory {
    // ---- invitations ------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub async fn create_invitation(
        &self,
        hash: &[u8],
        meeting: MeetingId,
        username: &Username,
        display_name: &str,
        agency: Option<AgencyId>,
        role: Role,
        created_by: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<InvitationId, StoreError> {
        let id = InvitationId::new();
        execute!(self, map_err(conflict), "INSERT INTO invitations (token_hash, meeting_id, username, display_name, agency_id, role, created_by, created_at, expires_at, id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", hash, meeting.as_uuid(), username.as_str(), display_name, agency.map(|a| a.0), role.as_str(), created_by.0, Utc::now(), expires_at, id.0);
        Ok(id)
    }

    pub async fn invitation(&self, hash: &[u8]) -> Result<Option<Invitation>, StoreError> {
        with_pool!(self, p => {
            let row = sqlx::query(
                "SELECT id, meeting_id, username, display_name, agency_id, role, expires_at, created_by,
                        used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked
                 FROM invitations WHERE token_hash = $1")
                .bind(hash)
                .fetch_optional(p)
                .await?;
            match row {
                Some(row) => {
                    let username: String = row.try_get("username")?;
                    let role: String = row.try_get("role")?;
                    let meeting: Uuid = row.try_get("meeting_id")?;
                    let agency: Option<Uuid> = row.try_get("agency_id")?;
                    Ok(Some(Invitation {
                        id: InvitationId(row.try_get("id")?),
                        meeting: meeting.into(),
                        username: Username::parse(&username).map_err(|_| StoreError::Corrupt("invitation username".into()))?,
                        display_name: row.try_get("display_name")?,
                        agency: agency.map(AgencyId),
                        role: role.parse().map_err(|_| StoreError::Corrupt("invitation role".into()))?,
                        expires_at: row.try_get("expires_at")?,
                        used: row.try_get("used")?,
                        revoked: row.try_get("revoked")?,
                        created_by: UserId(row.try_get("created_by")?),
                    }))
                }
                None => Ok(None),
            }
        })
    }

    /// Whether the invitation's sender may still send it (see
    /// `INVITER_MAY_INVITE`).
    pub async fn inviter_may_invite(&self, invitation: InvitationId) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query(INVITER_MAY_INVITE)
            .bind(invitation.0)
            .fetch_optional(p)
            .await?
            .is_some()))
    }

    /// A meeting's invitations that are neither used, revoked nor expired.
    pub async fn pending_invitations(
        &self,
        meeting: MeetingId,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingInvitation>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT i.id, i.username, i.display_name, i.role, i.created_at, i.expires_at,
                        a.id AS agency_id, a.name AS agency_name, u.id AS creator_id, u.display_name AS creator_name
                 FROM invitations i
                 JOIN users u ON u.id = i.created_by
                 LEFT JOIN agencies a ON a.id = i.agency_id
                 WHERE i.meeting_id = $1 AND i.used_at IS NULL AND i.revoked_at IS NULL
                 ORDER BY i.created_at, i.id")
                .bind(meeting.as_uuid())
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
                if expires_at <= now {
                    continue;
                }
                let username: String = row.try_get("username")?;
                let role: String = row.try_get("role")?;
                let agency_id: Option<Uuid> = row.try_get("agency_id")?;
                let agency_name: Option<String> = row.try_get("agency_name")?;
                out.push(PendingInvitation {
                    id: InvitationId(row.try_get("id")?),
                    username: Username::parse(&username).map_err(|_| StoreError::Corrupt("invitation username".into()))?,
                    display_name: row.try_get("display_name")?,
                    agency: agency_id.zip(agency_name).map(|(id, name)| Agency { id: AgencyId(id), name }),
                    role: role.parse().map_err(|_| StoreError::Corrupt("invitation role".into()))?,
                    created_by: InvitationCreator {
                        id: UserId(row.try_get("creator_id")?),
                        display_name: row.try_get("creator_name")?,
                    },
                    created_at: row.try_get("created_at")?,
                    expires_at,
                });
            }
            Ok(out)
        })
    }

    /// Revokes one of a meeting's unused invitations; false if there is no
    /// such invitation (or it was used or revoked already).
    pub async fn revoke_invitation(
        &self,
        meeting: MeetingId,
        id: InvitationId,
    ) -> Result<bool, StoreError> {
        Ok(self.revoke_unused(meeting, "id", id.0).await? == 1)
    }

    /// Revokes the unused invitations `sender` sent for `meeting` (when
    /// they stop being its secretary); returns how many.
    pub async fn revoke_invitations_sent_by(
        &self,
        meeting: MeetingId,
        sender: UserId,
    ) -> Result<u64, StoreError> {
        self.revoke_unused(meeting, "created_by", sender.0).await
    }

    /// Revokes `meeting`'s invitations whose `column` is `value` and that
    /// are neither used nor revoked yet; returns how many.
    async fn revoke_unused(
        &self,
        meeting: MeetingId,
        column: &'static str,
        value: Uuid,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE invitations SET revoked_at = $1
             WHERE meeting_id = $2 AND {column} = $3 AND used_at IS NULL AND revoked_at IS NULL"
        );
        Ok(execute!(self, &sql, Utc::now(), meeting.as_uuid(), value))
    }

    /// Uses an invitation once: marks it used, creates the user with the
    /// given password hash and adds them to the meeting, all or nothing;
    /// and only if its sender may still send it, checked in the same
    /// transaction.
    pub async fn accept_invitation(
        &self,
        hash: &[u8],
        invitation: &Invitation,
        password_hash: &str,
    ) -> Result<Acceptance, StoreError> {
        let user = UserId::new();
        let now = Utc::now();
        begin_on_meeting!(self, invitation.meeting, |tx, state| {
            // The meeting is held from here on: no lock and no other
            // newcomer gets in between these checks and the inserts.
            match state.as_deref() {
                None => return Ok(Acceptance::Gone),
                Some("draft") => {}
                Some(_) => return Ok(Acceptance::Locked),
            }
            let claimed = sqlx::query(
                "UPDATE invitations SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL")
                .bind(Utc::now())
                .bind(hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if claimed != 1 {
                return Ok(Acceptance::Gone);
            }
            let allowed = sqlx::query(INVITER_MAY_INVITE)
                .bind(invitation.id.0)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !allowed {
                return Ok(Acceptance::Withdrawn);
            }
            if name_clashes(
                &participant_names!(tx, invitation.meeting),
                &invitation.display_name,
            ) {
                return Ok(Acceptance::NameTaken);
            }
            // Not vouched for: whoever holds the link chose the password,
            // and the sender chose the name. An administrator confirms the
            // account before it may sign anything off.
            let inserted = sqlx::query(
                "INSERT INTO users (id, username, display_name, agency_id, is_admin, password_hash, created_at, invited_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(user.0)
                .bind(invitation.username.as_str())
                .bind(&invitation.display_name)
                .bind(invitation.agency.map(|a| a.0))
                .bind(false)
                .bind(password_hash)
                .bind(now)
                .bind(invitation.created_by.0)
                .execute(&mut *tx)
                .await
                .map_err(conflict);
            match inserted {
                Err(StoreError::Conflict) => return Ok(Acceptance::UsernameTaken),
                other => {
                    other?;
                }
            }
            sqlx::query("INSERT INTO participants (meeting_id, user_id, role) VALUES ($1, $2, $3)")
                .bind(invitation.meeting.as_uuid())
                .bind(user.0)
                .bind(invitation.role.as_str())
                .execute(&mut *tx)
                .await?;
            insert_account_audit!(
                &mut *tx,
                user.0,
                now,
                Some(user.0),
                "",
                "accept_invitation",
                "api"
            );
            tx.commit().await?;
        });
        Ok(Acceptance::Accepted(user))
    }
}
