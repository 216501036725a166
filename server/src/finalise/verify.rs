//! Verification: is this file, or this hash, a protocol of this server
//! (or an untouched export of one), is it in force or withdrawn, and does
//! its signature verify.

use serde::Serialize;

use super::{
    FinaliseError, Lifecycle, RequiredSignoff, SignatureView, parse, rfc3339, sha256_hex, signing,
    views::{locked_view, signature_view},
};

/// The verdict on a file or hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerifyStatus {
    /// A protocol of this server as it stands (locked or verified), or an
    /// untouched export of one.
    Genuine,
    /// Genuine, but that version was sent back to draft (a rejection or a
    /// reopening): it is not the protocol.
    Withdrawn,
    /// Not a protocol of this server, or a changed file.
    NoMatch,
}

/// The answer to "is this one of ours?".
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// The verdict in one word.
    pub status: VerifyStatus,
    /// Whether the file or hash is a locked protocol of this server (or an
    /// export of one), withdrawn or not: see `status`.
    pub matches: bool,
    pub message: String,
    /// `protocol` (the hash or canonical JSON of a protocol) or `export`.
    pub matched: Option<&'static str>,
    /// For an export: `html`, `md`, `pdf` or `json`.
    pub format: Option<String>,
    /// For an export: whether it was made while `locked` or once `verified`.
    pub stage: Option<String>,
    pub protocol: Option<VerifiedProtocol>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifiedProtocol {
    pub hash: String,
    pub version: i32,
    pub meeting_id: String,
    pub meeting_title: String,
    pub meeting_body: String,
    pub meeting_date: Option<String>,
    pub locked_at: String,
    /// `locked`, `verified`, or `withdrawn` (sent back to draft by a
    /// rejection or reopening; a later version may exist).
    pub state: String,
    pub required: Vec<RequiredSignoff>,
    pub signature: Option<SignatureCheck>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignatureCheck {
    #[serde(flatten)]
    pub signature: SignatureView,
    /// Whether the signature verifies with the published key and signs
    /// this protocol's hash.
    pub valid: bool,
    /// The signing key's standing now: `in_use`, `retired` (it signs no
    /// more; what it signed before stays valid) or `not_in_use` (kept
    /// from before the key in use was recorded).
    pub key_status: String,
    /// When the key was retired, if it was.
    pub key_retired_at: Option<String>,
}
impl Lifecycle<'_> {
    /// Verifies a file: an export handed out by this server, or the
    /// canonical JSON of one of its protocols.
    pub async fn verify_file(&self, bytes: &[u8]) -> Result<VerifyReport, FinaliseError> {
        self.verify_digest(&sha256_hex(bytes)).await
    }

    /// Verifies a protocol's hash, or the SHA-256 of an export.
    pub async fn verify_hash(&self, hash: &str) -> Result<VerifyReport, FinaliseError> {
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FinaliseError::Invalid(
                "a hash is 64 hexadecimal digits (SHA-256)",
            ));
        }
        self.verify_digest(&hash).await
    }

    /// Verifies a file by its SHA-256 (hex, lower case).
    pub async fn verify_digest(&self, digest: &str) -> Result<VerifyReport, FinaliseError> {
        let (record, matched, format, stage) = match self.db.protocols.by_hash(digest).await? {
            Some(record) => (record, "protocol", None, None),
            None => match self.db.protocols.export(digest).await? {
                Some((record, stage, format)) => (record, "export", Some(format), Some(stage)),
                None => {
                    return Ok(VerifyReport {
                        status: VerifyStatus::NoMatch,
                        matches: false,
                        message: "does not match: this is not a locked protocol of this server, \
                                  or the file has been changed"
                            .into(),
                        matched: None,
                        format: None,
                        stage: None,
                        protocol: None,
                    });
                }
            },
        };
        let protocol = parse(&record)?;
        let latest = self
            .db
            .protocols
            .current(record.protocol.meeting)
            .await?
            .map(|c| c.protocol.id == record.protocol.id)
            .unwrap_or(false);
        let state = if latest && record.meeting_state != "draft" {
            record.meeting_state.clone()
        } else {
            "withdrawn".to_owned()
        };
        let keys = self.db.protocols.signing_keys().await?;
        let signature = record.signature.as_ref().map(|s| {
            let key = keys.iter().find(|k| k.key_id == s.key_id);
            let public = key.map(|k| k.public_key.clone());
            let signs_this = serde_json::from_str::<serde_json::Value>(&s.record)
                .ok()
                .and_then(|v| {
                    v.get("protocol_hash")
                        .and_then(|h| h.as_str())
                        .map(str::to_owned)
                })
                .is_some_and(|h| h == record.protocol.hash);
            let valid = signs_this
                && public.is_some_and(|p| signing::verify(&p, s.record.as_bytes(), &s.signature));
            SignatureCheck {
                signature: signature_view(s),
                valid,
                key_status: match key {
                    Some(k) if k.retired_at.is_some() => "retired",
                    Some(k) if k.in_use => "in_use",
                    _ => "not_in_use",
                }
                .to_owned(),
                key_retired_at: key.and_then(|k| k.retired_at).map(rfc3339),
            }
        });
        let view = locked_view(&record)?;
        let message = match state.as_str() {
            "verified" => "matches a verified protocol of this server",
            "locked" => "matches a protocol of this server, locked and awaiting justering",
            _ => {
                "genuine but withdrawn: matches a protocol of this server that was later sent \
                 back to draft, so it is not in force"
            }
        };
        Ok(VerifyReport {
            status: if state == "withdrawn" {
                VerifyStatus::Withdrawn
            } else {
                VerifyStatus::Genuine
            },
            matches: true,
            message: message.into(),
            matched: Some(matched),
            format,
            stage,
            protocol: Some(VerifiedProtocol {
                hash: record.protocol.hash.clone(),
                version: record.protocol.version,
                meeting_id: protocol.meeting.id,
                meeting_title: protocol.meeting.title,
                meeting_body: protocol.meeting.body,
                meeting_date: protocol.meeting.date,
                locked_at: protocol.locked_at,
                state,
                required: view.required,
                signature,
            }),
        })
    }
}
