//! Justering: the chair or a justerare signs off the locked version they
//! were shown; the last required sign-off verifies the protocol, and the
//! server signs the record of who signed what and when.

use protokoll_render::{Protocol, to_canonical_json};
use serde::Serialize;

use super::{
    Actor, FinaliseError, Lifecycle, ProtocolView,
    lock::{is_verifier, locked_version},
    rfc3339,
};
use crate::{
    auth::SignIn,
    meeting::MeetingId,
    people::Vouch,
    store::{SignerAccount, SignoffPlan, StoreError, StoredSignature, now_seconds},
};

/// What is signed when a protocol is verified.
#[derive(Serialize)]
struct SignedRecord<'a> {
    format: &'static str,
    protocol_hash: &'a str,
    meeting_id: &'a str,
    meeting_title: &'a str,
    meeting_date: Option<&'a str>,
    version: u32,
    signoffs: Vec<SignedSignoff>,
    verified_at: String,
    key_id: &'a str,
}

/// A sign-off in the signed record. `protokoll-signature/2` adds the
/// account (username, agency), how it signed in and who vouched for it;
/// a sign-off recorded before those were has only the first four.
#[derive(Serialize)]
struct SignedSignoff {
    name: String,
    role: String,
    at: String,
    hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_in_with: Option<SignIn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vouched_by: Option<Vouch>,
}

impl Lifecycle<'_> {
    /// The chair or a justerare signs off the protocol they were shown.
    /// The last required sign-off verifies the protocol and the server
    /// signs it.
    pub async fn signoff(
        &self,
        meeting: MeetingId,
        actor: &Actor,
        hash: &str,
    ) -> Result<ProtocolView, FinaliseError> {
        let role = actor.verifier("only the chair and the justerare sign off the protocol")?;
        let user = actor.user.id;
        let account = SignerAccount {
            username: actor.user.username.as_str().to_owned(),
            agency: actor.user.agency.as_ref().map(|a| a.name.clone()),
            signed_in_with: actor.signed_in_with.clone(),
            vouched_by: actor.user.vouched.clone(),
        };
        // Loaded before the transaction (a server has it already; the
        // command line reads it only now), needed only if this sign-off
        // completes the justering.
        let signer = self.signer.get().await;
        self.db
            .protocols
            .signoff(
                meeting,
                &actor.audit(),
                user,
                &account,
                role,
                hash,
                |state, protocol, signoffs| {
                    let protocol = locked_version(state, protocol, hash)?;
                    is_verifier(&protocol.canonical, &user.to_string())?;
                    if signoffs.iter().any(|s| s.user == user) {
                        return Err(FinaliseError::Conflict("you have signed off already"));
                    }
                    Ok(())
                },
                |stored, signoffs| {
                    let protocol: Protocol = serde_json::from_str(&stored.canonical)
                        .map_err(|e| StoreError::Corrupt(format!("canonical protocol: {e}")))?;
                    let complete = protocol
                        .verifiers
                        .iter()
                        .all(|v| signoffs.iter().any(|s| s.user.to_string() == v.id));
                    if !complete {
                        return Ok(SignoffPlan { signature: None });
                    }
                    let verified_at = signoffs
                        .iter()
                        .map(|s| s.signed_at)
                        .max()
                        .unwrap_or_else(now_seconds);
                    let signer = signer
                        .as_ref()
                        .map_err(|e| FinaliseError::Signing(e.to_string()))?;
                    let record = SignedRecord {
                        format: "protokoll-signature/2",
                        protocol_hash: &stored.hash,
                        meeting_id: &protocol.meeting.id,
                        meeting_title: &protocol.meeting.title,
                        meeting_date: protocol.meeting.date.as_deref(),
                        version: protocol.version,
                        signoffs: signoffs
                            .iter()
                            .map(|s| SignedSignoff {
                                name: s.name.clone(),
                                role: s.role.clone(),
                                at: rfc3339(s.signed_at),
                                hash: s.hash.clone(),
                                username: s.account.as_ref().map(|a| a.username.clone()),
                                agency: s.account.as_ref().and_then(|a| a.agency.clone()),
                                signed_in_with: s
                                    .account
                                    .as_ref()
                                    .map(|a| a.signed_in_with.clone()),
                                vouched_by: s.account.as_ref().and_then(|a| a.vouched_by.clone()),
                            })
                            .collect(),
                        verified_at: rfc3339(verified_at),
                        key_id: signer.key_id(),
                    };
                    let record = to_canonical_json(&record)
                        .map_err(|e| FinaliseError::Render(e.to_string()))?;
                    Ok(SignoffPlan {
                        signature: Some(StoredSignature {
                            key_id: signer.key_id().to_owned(),
                            signature: signer.sign(record.as_bytes()),
                            record,
                            verified_at,
                        }),
                    })
                },
            )
            .await
            .map_err(FinaliseError::from)?;
        self.view(meeting).await
    }
}
