//! The protocol as the API and the command line show it: its state, the
//! locked version, who must sign off and who has, the signature, the
//! download paths.

use serde::Serialize;

use super::{FinaliseError, Lifecycle, parse, rfc3339, signing};
use crate::{
    auth::SignIn,
    meeting::MeetingId,
    people::Vouch,
    store::{ProtocolRecord, StoredSignature, StoredSignoff},
};

/// A person who must sign off, and whether they have.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RequiredSignoff {
    pub user_id: String,
    pub name: String,
    /// `chair` or `justerare`.
    pub role: String,
    /// When they signed off, if they have.
    pub signed_at: Option<String>,
    /// The account that signed off: absent until they have, and for
    /// sign-offs recorded before accounts were (issue 24).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<SignedBy>,
    /// Whether their account may sign off now (an administrator vouched for
    /// it). Only in the meeting's own protocol view, for its participants,
    /// so that the secretary sees in time whom to have confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_confirmed: Option<bool>,
}

/// Who signed off, beyond the name the protocol shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignedBy {
    pub username: String,
    pub agency: Option<String>,
    /// How they signed in: `{"method": "password"}`, `{"method":
    /// "api_token", "token_id": ...}` or `{"method": "command_line"}`
    /// (an open set: show an unknown method by its name).
    pub signed_in_with: SignIn,
    /// Who vouched for the account.
    pub vouched_by: Option<Vouch>,
}

fn signed_by(signoff: &StoredSignoff) -> Option<SignedBy> {
    signoff.account.as_ref().map(|a| SignedBy {
        username: a.username.clone(),
        agency: a.agency.clone(),
        signed_in_with: a.signed_in_with.clone(),
        vouched_by: a.vouched_by.clone(),
    })
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignatureView {
    pub key_id: String,
    pub algorithm: &'static str,
    /// The signed record: canonical JSON, signed as its UTF-8 bytes.
    pub record: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub signature: String,
    pub verified_at: String,
}

/// A meeting's protocol as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProtocolView {
    pub meeting_id: String,
    /// `draft`, `locked` or `verified`.
    pub state: String,
    /// The locked protocol; absent while the meeting is a draft.
    pub locked: Option<LockedView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LockedView {
    /// SHA-256 (hex) of the canonical JSON: the protocol's hash.
    pub hash: String,
    pub version: i32,
    pub locked_at: String,
    pub locked_by: String,
    /// The chair and every justerare, in that order.
    pub required: Vec<RequiredSignoff>,
    pub signature: Option<SignatureView>,
    /// Download paths of the exports.
    pub exports: Exports,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Exports {
    pub html: String,
    pub markdown: String,
    pub pdf: String,
    pub json: String,
}

pub(super) fn locked_view(record: &ProtocolRecord) -> Result<LockedView, FinaliseError> {
    let protocol = parse(record)?;
    let meeting = record.protocol.meeting;
    let required = protocol
        .verifiers
        .iter()
        .map(|v| {
            let signoff = record.signoffs.iter().find(|s| s.user.to_string() == v.id);
            RequiredSignoff {
                user_id: v.id.clone(),
                name: v.name.clone(),
                role: v.role.clone(),
                signed_at: signoff.map(|s| rfc3339(s.signed_at)),
                signed_by: signoff.and_then(signed_by),
                account_confirmed: None,
            }
        })
        .collect();
    Ok(LockedView {
        hash: record.protocol.hash.clone(),
        version: record.protocol.version,
        locked_at: protocol.locked_at.clone(),
        locked_by: protocol.locked_by.clone(),
        required,
        signature: record.signature.as_ref().map(signature_view),
        exports: Exports {
            html: format!("/api/meetings/{meeting}/protocol.html"),
            markdown: format!("/api/meetings/{meeting}/protocol.md"),
            pdf: format!("/api/meetings/{meeting}/protocol.pdf"),
            json: format!("/api/meetings/{meeting}/protocol.json"),
        },
    })
}

pub(super) fn signature_view(s: &StoredSignature) -> SignatureView {
    SignatureView {
        key_id: s.key_id.clone(),
        algorithm: "Ed25519",
        record: s.record.clone(),
        signature: signing::base64(&s.signature),
        verified_at: rfc3339(s.verified_at),
    }
}

impl Lifecycle<'_> {
    /// The meeting's protocol state and, once locked, the protocol.
    pub async fn view(&self, meeting: MeetingId) -> Result<ProtocolView, FinaliseError> {
        let state = self
            .db
            .dir
            .get_meeting(meeting)
            .await?
            .ok_or(FinaliseError::NotFound)?
            .state;
        let locked = match state {
            crate::meeting::ProtocolState::Draft => None,
            _ => match self.db.protocols.current(meeting).await? {
                Some(record) => {
                    let mut view = locked_view(&record)?;
                    for required in &mut view.required {
                        let user = match required.user_id.parse() {
                            Ok(id) => self.db.dir.user(id).await?,
                            Err(_) => None,
                        };
                        required.account_confirmed = Some(user.is_some_and(|u| u.may_sign_off()));
                    }
                    Some(view)
                }
                None => None,
            },
        };
        Ok(ProtocolView {
            meeting_id: meeting.to_string(),
            state: state.as_str().to_owned(),
            locked,
        })
    }
}
