//! Sign-offs: recording one, and with the last one the server's signature
//! and the state `verified`, in one transaction that holds the meeting.

use super::{
    AuditActor, ChangeRefused, Committed, Protocols, SignerAccount, StoredProtocol,
    StoredSignature, StoredSignoff, now_seconds,
};
use crate::{
    meeting::MeetingId,
    people::UserId,
    store::{StoreError, pool::begin_on_meeting},
};

/// What a sign-off decides once it has read the current state.
pub struct SignoffPlan {
    /// Set when this sign-off completes the justering: the signed record.
    pub signature: Option<StoredSignature>,
}

impl Protocols {
    /// Records a sign-off. `check` sees the state, the current protocol and
    /// the sign-offs so far and may refuse; `finish` is called with every
    /// sign-off including this one and returns the signature when the
    /// justering is complete, which then flips the state to verified.
    #[allow(clippy::too_many_arguments)]
    pub async fn signoff<E>(
        &self,
        meeting: MeetingId,
        actor: &AuditActor,
        user: UserId,
        account: &SignerAccount,
        role: &str,
        hash: &str,
        check: impl FnOnce(&str, Option<&StoredProtocol>, &[StoredSignoff]) -> Result<(), E>,
        finish: impl FnOnce(&StoredProtocol, &[StoredSignoff]) -> Result<SignoffPlan, E>,
    ) -> Result<Committed, ChangeRefused<E>> {
        let at = now_seconds();
        begin_on_meeting!(self, meeting, |tx, state| {
            let (protocol, mut signoffs) = checked_protocol!(tx, meeting, state, check);
            let signed_in_with = serde_json::to_string(&account.signed_in_with)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let vouched_by = account
                .vouched_by
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO signoffs (protocol_id, user_id, name, role, hash, signed_at,
                                       username, agency, signed_in_with, vouched_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(protocol.id)
            .bind(user.0)
            .bind(&actor.name)
            .bind(role)
            .bind(hash)
            .bind(at)
            .bind(&account.username)
            .bind(account.agency.as_deref())
            .bind(&signed_in_with)
            .bind(vouched_by.as_deref())
            .execute(&mut *tx)
            .await?;
            insert_audit!(
                tx,
                meeting,
                at,
                actor,
                "signoff",
                None::<String>,
                Some(hash)
            );
            signoffs.push(StoredSignoff {
                user,
                name: actor.name.clone(),
                role: role.to_owned(),
                hash: hash.to_owned(),
                signed_at: at,
                account: Some(account.clone()),
            });
            let plan = finish(&protocol, &signoffs).map_err(ChangeRefused::Refused)?;
            if let Some(sig) = plan.signature {
                // Only the key recorded as in use signs: one retired (or
                // replaced by another process) since this process loaded
                // it does not.
                let in_use: Option<String> = sqlx::query_scalar(
                    "SELECT key_id FROM signing_keys
                     WHERE key_id = $1 AND in_use IS NOT NULL AND retired_at IS NULL",
                )
                .bind(&sig.key_id)
                .fetch_optional(&mut *tx)
                .await?;
                if in_use.is_none() {
                    return Err(ChangeRefused::Store(StoreError::SigningKeyNotInUse(
                        sig.key_id,
                    )));
                }
                sqlx::query(
                    "INSERT INTO protocol_signatures (protocol_id, key_id, record, signature, verified_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(protocol.id)
                .bind(&sig.key_id)
                .bind(&sig.record)
                .bind(&sig.signature)
                .bind(sig.verified_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE meetings SET state = 'verified' WHERE id = $1")
                    .bind(meeting.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                let server = AuditActor {
                    id: None,
                    name: "Protokoll (server)".to_owned(),
                    via: actor.via,
                };
                insert_audit!(
                    tx,
                    meeting,
                    at,
                    server,
                    "verify",
                    None::<String>,
                    Some(hash)
                );
            }
            tx.commit().await?;
            Ok(Committed {
                protocol,
                doc_update: None,
            })
        })
    }
}
