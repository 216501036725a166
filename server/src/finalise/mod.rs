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

pub mod canonical;
pub mod signing;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use protokoll_render::{
    Problem, Protocol, Rendition, SignOff, Verification,
    limits::{self, ItemRef, ProblemKind},
    pdf::PdfError,
    to_canonical_json,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use yrs::Transact;

pub use crate::people::MAX_REASON_CHARS;
use crate::{
    auth::SignIn,
    document::{write_draft, write_locked},
    meeting::MeetingId,
    people::{Role, User, Vouch, parse_reason},
    store::{
        AuditActor, ChangeRefused, Committed, Database, LockPlan, LockSnapshot, NewRendition,
        ProtocolRecord, SignerAccount, SignoffPlan, StoreError, StoredProtocol, StoredSignature,
        StoredSignoff, now_seconds,
    },
    sync::{Rooms, Transition},
};
pub use signing::{Signer, SignerSlot};

/// Why an account that nobody vouched for may not sign off.
pub const NOT_VOUCHED: &str = "an administrator must confirm your account before you can sign \
     off or reject a protocol: it was made through an invitation, and nobody has vouched for who \
     you are yet; ask an administrator to confirm it";

/// The answer when the key this process loaded is no longer the one in use.
const KEY_NOT_IN_USE: &str = "the server's signing key has been retired (or replaced) since it \
     started, so it cannot sign this protocol: the server must be restarted with the key in use; \
     nothing was recorded, sign off again afterwards";

/// Renderings (above all PDFs) that may run at once in this process. One
/// PDF of the largest protocol the bounds allow takes about 300 MB and 3 s
/// of the typesetter; each (protocol, stage, format) is rendered once in
/// its life, so queueing costs only the first download of each.
pub const MAX_CONCURRENT_RENDERS: usize = 1;

/// How long a download waits for its turn to render before it is answered
/// 503 with `Retry-After`.
pub const RENDER_WAIT: Duration = Duration::from_secs(30);

static RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_RENDERS);

/// A rendition being made, by (protocol, stage, format): a download of the
/// same file waits for it rather than render it again.
type RenditionKey = (uuid::Uuid, &'static str, &'static str);

// std Mutex: only looked up and changed, never held across an await; the
// per-file tokio Mutex inside is what is held while rendering.
static IN_PROGRESS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<RenditionKey, Arc<tokio::sync::Mutex<()>>>>,
> = std::sync::LazyLock::new(Default::default);

/// Holds the right to make one rendition; forgets it when the last holder
/// is done.
struct Making {
    key: RenditionKey,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Making {
    async fn start(key: RenditionKey) -> Self {
        let lock = IN_PROGRESS
            .lock()
            .expect("renditions in progress")
            .entry(key)
            .or_default()
            .clone();
        Self {
            key,
            _turn: lock.lock_owned().await,
        }
    }
}

impl Drop for Making {
    fn drop(&mut self) {
        let mut map = IN_PROGRESS.lock().expect("renditions in progress");
        // Only this guard's Arc and the map's: nobody else waits.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            map.remove(&self.key);
        }
    }
}

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
    fn may_lock(&self) -> bool {
        self.user.is_admin || self.role == Some(Role::Secretary)
    }

    fn verifier_role(&self) -> Option<&'static str> {
        match self.role {
            Some(Role::Chair) => Some("chair"),
            Some(Role::Justerare) => Some("justerare"),
            _ => None,
        }
    }
}

/// Formats a time as the canonical form writes it.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    signing::hex(&Sha256::digest(bytes))
}

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

fn parse(record: &ProtocolRecord) -> Result<Protocol, FinaliseError> {
    serde_json::from_str(&record.protocol.canonical)
        .map_err(|e| StoreError::Corrupt(format!("canonical protocol: {e}")).into())
}

fn locked_view(record: &ProtocolRecord) -> Result<LockedView, FinaliseError> {
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

fn signature_view(s: &StoredSignature) -> SignatureView {
    SignatureView {
        key_id: s.key_id.clone(),
        algorithm: "Ed25519",
        record: s.record.clone(),
        signature: signing::base64(&s.signature),
        verified_at: rfc3339(s.verified_at),
    }
}

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

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
    Pdf,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "html" => Some(Format::Html),
            "md" | "markdown" => Some(Format::Markdown),
            "pdf" => Some(Format::Pdf),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Markdown => "md",
            Format::Pdf => "pdf",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Pdf => "application/pdf",
            Format::Json => "application/json",
        }
    }
}

/// An export file.
pub struct Export {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub filename: String,
    pub sha256: String,
    pub protocol_hash: String,
}

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

/// The lifecycle over one database, with the server's rooms when running
/// as a server (the CLI has none).
pub struct Lifecycle<'a> {
    pub db: &'a Database,
    pub signer: &'a SignerSlot,
    pub rooms: Option<&'a Rooms>,
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

    /// Runs a state change through the meeting's room, if this is a server.
    async fn through_room(
        &self,
        meeting: MeetingId,
        job: futures::future::BoxFuture<'static, (Result<(), FinaliseError>, Option<Transition>)>,
    ) -> Result<(), FinaliseError> {
        match self.rooms {
            Some(rooms) => rooms
                .transition(meeting, job)
                .await
                .map_err(|_| FinaliseError::Unavailable)?,
            None => job.await.0,
        }
    }

    /// Locks a draft. Everything the room accepted before is in the text;
    /// nothing is accepted after.
    pub async fn lock(
        &self,
        meeting: MeetingId,
        actor: &Actor,
    ) -> Result<ProtocolView, FinaliseError> {
        if !actor.may_lock() {
            return Err(FinaliseError::Forbidden(
                "only the meeting's secretary may lock the protocol",
            ));
        }
        let db = self.db.clone();
        let audit = actor.audit();
        let job = Box::pin(async move {
            let at = now_seconds();
            let at_text = rfc3339(at);
            let id = meeting.to_string();
            // Typeset first, outside the transaction: on SQLite it holds the
            // database's write lock, and Typst may take seconds. The room
            // holds this meeting's updates back meanwhile, so the locked
            // text is normally what was typeset; should another node's
            // update have slipped in, the transaction typesets again.
            let prepared = match db.protocols.lock_snapshot(meeting).await {
                Ok(Some(snapshot)) => match prepare(&id, snapshot, &at_text, &audit.name) {
                    Ok(lock) => {
                        let renditions = match typeset(&lock.protocol, &lock.hash).await {
                            Ok(r) => r,
                            Err(e) => return (Err(e), None),
                        };
                        Some((lock.hash, renditions))
                    }
                    Err(e) => return (Err(e), None),
                },
                Ok(None) => return (Err(FinaliseError::NotFound), None),
                Err(e) => return (Err(e.into()), None),
            };
            let locked_by = audit.name.clone();
            let locked = db
                .protocols
                .lock(meeting, &audit, at, |snapshot| async move {
                    let lock = prepare(&id, snapshot, &at_text, &locked_by)?;
                    let renditions = match prepared {
                        Some((hash, renditions)) if hash == lock.hash => renditions,
                        _ => typeset(&lock.protocol, &lock.hash).await?,
                    };
                    let doc_update = {
                        let mut txn = lock.doc.transact_mut();
                        write_locked(&mut txn, &lock.hash, &at_text);
                        txn.encode_update_v1()
                    };
                    Ok(LockPlan {
                        canonical: lock.canonical,
                        hash: lock.hash,
                        doc_update,
                        renditions,
                    })
                })
                .await;
            transition(locked.map_err(Into::into), true)
        });
        self.through_room(meeting, job).await?;
        self.view(meeting).await
    }

    /// The secretary takes a locked protocol back to draft, while nobody
    /// has signed it off.
    pub async fn reopen(
        &self,
        meeting: MeetingId,
        actor: &Actor,
    ) -> Result<ProtocolView, FinaliseError> {
        if !actor.may_lock() {
            return Err(FinaliseError::Forbidden(
                "only the meeting's secretary may reopen the protocol",
            ));
        }
        let db = self.db.clone();
        let audit = actor.audit();
        let job = Box::pin(async move {
            let result = db
                .protocols
                .unlock(
                    meeting,
                    &audit,
                    "reopen",
                    None,
                    |state, _, signoffs| {
                        if state != "locked" {
                            return Err(FinaliseError::Conflict(
                                "only a locked protocol that nobody has signed off can be reopened",
                            ));
                        }
                        if !signoffs.is_empty() {
                            return Err(FinaliseError::Conflict(
                                "someone has signed off already: only a rejection by the chair \
                                 or a justerare can send it back now",
                            ));
                        }
                        Ok(())
                    },
                    draft_update,
                )
                .await;
            transition(result.map_err(Into::into), false)
        });
        self.through_room(meeting, job).await?;
        self.view(meeting).await
    }

    /// The chair or a justerare sends a locked protocol back to draft.
    pub async fn reject(
        &self,
        meeting: MeetingId,
        actor: &Actor,
        hash: &str,
        reason: &str,
    ) -> Result<ProtocolView, FinaliseError> {
        let Some(_) = actor.verifier_role() else {
            return Err(FinaliseError::Forbidden(
                "only the chair and the justerare may reject the protocol",
            ));
        };
        if !actor.user.may_sign_off() {
            return Err(FinaliseError::Forbidden(NOT_VOUCHED));
        }
        let reason = parse_reason(reason).map_err(|e| FinaliseError::Invalid(e.0))?;
        let db = self.db.clone();
        let audit = actor.audit();
        let user = actor.user.id.to_string();
        let hash = hash.to_owned();
        let job = Box::pin(async move {
            let result = db
                .protocols
                .unlock(
                    meeting,
                    &audit,
                    "reject",
                    Some(&reason),
                    |state, protocol, _| {
                        let protocol = locked_version(state, protocol, &hash)?;
                        is_verifier(&protocol.canonical, &user)
                    },
                    draft_update,
                )
                .await;
            transition(result.map_err(Into::into), false)
        });
        self.through_room(meeting, job).await?;
        self.view(meeting).await
    }

    /// The chair or a justerare signs off the protocol they were shown.
    /// The last required sign-off verifies the protocol and the server
    /// signs it.
    pub async fn signoff(
        &self,
        meeting: MeetingId,
        actor: &Actor,
        hash: &str,
    ) -> Result<ProtocolView, FinaliseError> {
        let Some(role) = actor.verifier_role() else {
            return Err(FinaliseError::Forbidden(
                "only the chair and the justerare sign off the protocol",
            ));
        };
        if !actor.user.may_sign_off() {
            return Err(FinaliseError::Forbidden(NOT_VOUCHED));
        }
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

    /// An export of the meeting's locked or verified protocol: rendered
    /// once and kept (its SHA-256 remembered, so that the file can be
    /// verified later), then handed out as kept.
    pub async fn export(
        &self,
        meeting: MeetingId,
        format: Format,
    ) -> Result<Export, FinaliseError> {
        let record = match self.db.protocols.current(meeting).await? {
            Some(r) if r.meeting_state != "draft" => r,
            _ => return Err(FinaliseError::Conflict("the protocol is not locked")),
        };
        let stage = if record.signature.is_some() {
            "verified"
        } else {
            "locked"
        };
        let (bytes, sha256) = match format {
            Format::Json => {
                let bytes = record.protocol.canonical.clone().into_bytes();
                let sha256 = sha256_hex(&bytes);
                self.db
                    .protocols
                    .record_export(&sha256, record.protocol.id, stage, format.extension())
                    .await?;
                (bytes, sha256)
            }
            _ => {
                let kept = self.rendition(&record, stage, format).await?;
                (kept.bytes, kept.sha256)
            }
        };
        let date = parse(&record)?.meeting.date.unwrap_or_default();
        let filename = format!(
            "protokoll-{}{}-v{}.{}",
            if date.is_empty() {
                String::new()
            } else {
                format!("{date}-")
            },
            &record.protocol.hash[..8],
            record.protocol.version,
            format.extension()
        );
        Ok(Export {
            bytes,
            format,
            filename,
            sha256,
            protocol_hash: record.protocol.hash,
        })
    }

    /// The kept rendition, or a new one rendered (in turn with every other
    /// rendering of this process) and kept.
    async fn rendition(
        &self,
        record: &ProtocolRecord,
        stage: &'static str,
        format: Format,
    ) -> Result<crate::store::StoredRendition, FinaliseError> {
        let protocols = &self.db.protocols;
        let id = record.protocol.id;
        let ext = format.extension();
        if let Some(kept) = protocols.rendition(id, stage, ext).await? {
            return Ok(kept);
        }
        // One request makes it; the others wait for it, then read it.
        let _making = tokio::time::timeout(RENDER_WAIT, Making::start((id, stage, ext)))
            .await
            .map_err(|_| FinaliseError::Busy)?;
        if let Some(kept) = protocols.rendition(id, stage, ext).await? {
            return Ok(kept);
        }
        let permit = tokio::time::timeout(RENDER_WAIT, RENDERS.acquire())
            .await
            .map_err(|_| FinaliseError::Busy)?
            .expect("the render semaphore is never closed");
        let protocol = parse(record)?;
        let verification = record.signature.as_ref().map(|s| Verification {
            signoffs: record
                .signoffs
                .iter()
                .map(|o| SignOff {
                    name: o.name.clone(),
                    role: o.role.clone(),
                    at: rfc3339(o.signed_at),
                })
                .collect(),
            verified_at: rfc3339(s.verified_at),
            key_id: s.key_id.clone(),
            signature: signing::base64(&s.signature),
        });
        let hash = record.protocol.hash.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            render(
                Rendition {
                    protocol: &protocol,
                    hash: &hash,
                    verification: verification.as_ref(),
                },
                format,
            )
        })
        .await
        .map_err(|e| FinaliseError::Render(e.to_string()))??;
        // The permit bounds the typesetter's memory; keeping the file is a
        // database write, which must never wait on a rendering (a lock
        // holds the database while it typesets).
        drop(permit);
        Ok(protocols
            .keep_rendition(
                id,
                NewRendition {
                    stage,
                    format: ext,
                    sha256: sha256_hex(&bytes),
                    bytes,
                },
            )
            .await?)
    }

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

/// A protocol about to be locked: built from what the lock reads.
struct Prepared {
    protocol: Protocol,
    canonical: String,
    hash: String,
    doc: yrs::Doc,
}

/// Builds the canonical protocol from what a lock reads, and checks that
/// it may be locked: a draft, someone to verify it, within the bounds of
/// what can be archived.
fn prepare(
    meeting: &str,
    mut snapshot: LockSnapshot,
    at: &str,
    locked_by: &str,
) -> Result<Prepared, FinaliseError> {
    if snapshot.state != "draft" {
        return Err(FinaliseError::Conflict("the protocol is already locked"));
    }
    let doc = canonical::build_document(std::mem::take(&mut snapshot.document));
    let protocol = canonical::protocol(meeting, &snapshot, &doc, at, locked_by)
        .map_err(FinaliseError::Unarchivable)?;
    if protocol.verifiers.is_empty() {
        return Err(FinaliseError::Conflict(
            "nobody could verify this protocol: add the chair or a justerare \
             to the meeting before locking",
        ));
    }
    limits::check(&protocol).map_err(FinaliseError::Unarchivable)?;
    let canonical =
        to_canonical_json(&protocol).map_err(|e| FinaliseError::Render(e.to_string()))?;
    let hash = sha256_hex(canonical.as_bytes());
    Ok(Prepared {
        protocol,
        canonical,
        hash,
        doc,
    })
}

/// One export of a protocol, counted and timed.
fn render(r: Rendition<'_>, format: Format) -> Result<Vec<u8>, FinaliseError> {
    use crate::telemetry::metric;
    let stage = if r.verification.is_some() {
        "verified"
    } else {
        "locked"
    };
    metrics::counter!(metric::PROTOCOL_RENDERS, "format" => format.extension(), "stage" => stage)
        .increment(1);
    let started = std::time::Instant::now();
    let rendered = render_uncounted(r, format);
    metrics::histogram!(metric::PROTOCOL_RENDER_SECONDS, "format" => format.extension())
        .record(started.elapsed().as_secs_f64());
    rendered
}

fn render_uncounted(r: Rendition<'_>, format: Format) -> Result<Vec<u8>, FinaliseError> {
    match format {
        Format::Json => to_canonical_json(r.protocol)
            .map(String::into_bytes)
            .map_err(|e| FinaliseError::Render(e.to_string())),
        Format::Html => Ok(protokoll_render::html::render(r).into_bytes()),
        Format::Markdown => Ok(protokoll_render::markdown::render(r).into_bytes()),
        Format::Pdf => protokoll_render::pdf::render(r).map_err(|e| match e {
            PdfError::Limit(problem) => FinaliseError::Unarchivable(problem),
            other => FinaliseError::Render(other.to_string()),
        }),
    }
}

/// The locked stage's exports, typeset in turn with every other rendering
/// of this process, on a blocking thread. A PDF the typesetter refuses is
/// traced to the section that makes it fail, where one does.
async fn typeset(protocol: &Protocol, hash: &str) -> Result<Vec<NewRendition>, FinaliseError> {
    let _permit = RENDERS
        .acquire()
        .await
        .expect("the render semaphore is never closed");
    let protocol = protocol.clone();
    let hash = hash.to_owned();
    tokio::task::spawn_blocking(move || {
        let r = Rendition {
            protocol: &protocol,
            hash: &hash,
            verification: None,
        };
        let mut out = Vec::with_capacity(3);
        for format in [Format::Html, Format::Markdown, Format::Pdf] {
            let bytes = match render(r, format) {
                Ok(bytes) => bytes,
                Err(FinaliseError::Render(message)) => {
                    return Err(FinaliseError::Unarchivable(culprit(&protocol, message)));
                }
                Err(e) => return Err(e),
            };
            out.push(NewRendition {
                stage: "locked",
                format: format.extension(),
                sha256: sha256_hex(&bytes),
                bytes,
            });
        }
        Ok(out)
    })
    .await
    .map_err(|e| FinaliseError::Render(e.to_string()))?
}

/// The first agenda item that the typesetter refuses on its own, with its
/// message; the protocol as a whole when none does.
fn culprit(protocol: &Protocol, message: String) -> Problem {
    for item in &protocol.agenda {
        let mut alone = protocol.clone();
        alone.agenda = vec![item.clone()];
        let r = Rendition {
            protocol: &alone,
            hash: "0",
            verification: None,
        };
        if let Err(e) = protokoll_render::pdf::render(r) {
            return Problem {
                item: Some(ItemRef::of(item)),
                kind: ProblemKind::Typeset {
                    message: e.to_string(),
                },
            };
        }
    }
    Problem {
        item: None,
        kind: ProblemKind::Typeset { message },
    }
}

const STALE: &str = "the protocol has changed since you saw it: reload and check the new hash";

/// The locked protocol a verifier acts on, if it is still the version they
/// were shown (`hash`): a verified, unlocked or since relocked protocol is a
/// conflict.
fn locked_version<'a>(
    state: &str,
    protocol: Option<&'a StoredProtocol>,
    hash: &str,
) -> Result<&'a StoredProtocol, FinaliseError> {
    let protocol = match (state, protocol) {
        ("locked", Some(p)) => p,
        ("verified", _) => {
            return Err(FinaliseError::Conflict("the protocol is verified already"));
        }
        _ => return Err(FinaliseError::Conflict("the protocol is not locked")),
    };
    if protocol.hash != hash {
        return Err(FinaliseError::Conflict(STALE));
    }
    Ok(protocol)
}

fn is_verifier(canonical: &str, user: &str) -> Result<(), FinaliseError> {
    let protocol: Protocol = serde_json::from_str(canonical)
        .map_err(|e| StoreError::Corrupt(format!("canonical protocol: {e}")))?;
    if protocol.verifiers.iter().any(|v| v.id == user) {
        Ok(())
    } else {
        Err(FinaliseError::Forbidden(
            "you are not among those who verify this protocol",
        ))
    }
}

/// The document update that announces "draft" again.
fn draft_update(stored: crate::store::StoredDocument) -> Vec<u8> {
    let doc = canonical::build_document(stored);
    let mut txn = doc.transact_mut();
    write_draft(&mut txn);
    txn.encode_update_v1()
}

/// What the room does after a committed change.
fn transition(
    result: Result<Committed, FinaliseError>,
    locked: bool,
) -> (Result<(), FinaliseError>, Option<Transition>) {
    match result {
        Ok(committed) => (
            Ok(()),
            Some(Transition {
                locked,
                update: committed.doc_update,
            }),
        ),
        Err(e) => (Err(e), None),
    }
}
