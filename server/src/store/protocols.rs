//! The finalised side of the store: locking a meeting's protocol, sign-offs,
//! the server's signature, the hashes of handed-out exports, the audit log
//! and the signing keys.
//!
//! Every state change is one transaction that first takes the meeting row
//! (`FOR UPDATE` on Postgres; `BEGIN IMMEDIATE` on SQLite, which takes the
//! database's write lock), then checks the state, then writes. A lock reads
//! the document from the database inside that transaction, so every update
//! committed before it (by any server node) is in the locked text, and the
//! trigger on `doc_updates` refuses every append after it. This module
//! decides nothing about who may act: the caller (`crate::finalise`) does,
//! through the checks it passes in.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{Pool, Seq, Snapshot, StoreError, StoredDocument};
use crate::{
    auth::SignIn,
    meeting::MeetingId,
    people::{SectionOwner, UserId, Vouch},
};

#[derive(Clone)]
pub struct Protocols {
    pool: Pool,
}

/// A locked protocol as stored.
#[derive(Debug, Clone)]
pub struct StoredProtocol {
    pub id: Uuid,
    pub meeting: MeetingId,
    pub version: i32,
    pub hash: String,
    pub canonical: String,
    pub locked_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct StoredSignoff {
    pub user: UserId,
    pub name: String,
    pub role: String,
    pub hash: String,
    pub signed_at: DateTime<Utc>,
    /// Who signed, beyond the name: absent on sign-offs recorded before
    /// migration 0008.
    pub account: Option<SignerAccount>,
}

/// What a sign-off records about the account that signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerAccount {
    pub username: String,
    pub agency: Option<String>,
    pub signed_in_with: SignIn,
    /// Who vouched for the account (a sign-off needs someone to have).
    pub vouched_by: Option<Vouch>,
}

#[derive(Debug, Clone)]
pub struct StoredSignature {
    pub key_id: String,
    pub record: String,
    pub signature: Vec<u8>,
    pub verified_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<UserId>,
    pub actor_name: String,
    pub action: String,
    pub reason: Option<String>,
    pub hash: Option<String>,
    pub via: String,
}

/// Who does something, as the audit log records it.
#[derive(Debug, Clone)]
pub struct AuditActor {
    pub id: Option<UserId>,
    pub name: String,
    /// `api` or `cli`.
    pub via: &'static str,
}

/// What a lock reads inside its transaction.
#[derive(Debug)]
pub struct LockSnapshot {
    pub state: String,
    pub title: String,
    pub body: String,
    pub date: Option<String>,
    pub time: Option<String>,
    pub place: String,
    /// (user id, name, role, agency name)
    pub participants: Vec<(UserId, String, String, Option<String>)>,
    /// (section id, number, title, owner's name), in agenda order.
    pub sections: Vec<(String, String, String, String)>,
    pub document: StoredDocument,
    /// The version the new protocol gets.
    pub next_version: i32,
}

/// What the caller decided to store for a lock.
pub struct LockPlan {
    pub canonical: String,
    pub hash: String,
    /// A document update (writing the `protocol` map), appended while the
    /// meeting is still a draft, in the same transaction.
    pub doc_update: Vec<u8>,
    /// The exports of the locked protocol, stored with it.
    pub renditions: Vec<NewRendition>,
}

/// An export file rendered once and kept.
#[derive(Debug, Clone)]
pub struct NewRendition {
    /// `locked` or `verified`.
    pub stage: &'static str,
    /// `html`, `md` or `pdf`.
    pub format: &'static str,
    pub sha256: String,
    pub bytes: Vec<u8>,
}

/// A stored export file: its SHA-256 and bytes.
#[derive(Debug, Clone)]
pub struct StoredRendition {
    pub sha256: String,
    pub bytes: Vec<u8>,
}

/// Why a state change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeRefused<E> {
    #[error("no such meeting")]
    NoMeeting,
    #[error(transparent)]
    Refused(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E> From<sqlx::Error> for ChangeRefused<E> {
    fn from(e: sqlx::Error) -> Self {
        ChangeRefused::Store(StoreError::Database(e))
    }
}

/// A committed change: the protocol it concerns and, when the document was
/// written, the update and its log position.
#[derive(Debug)]
pub struct Committed {
    pub protocol: StoredProtocol,
    pub doc_update: Option<(Vec<u8>, Seq)>,
}

/// The current protocol of a meeting with its sign-offs and signature.
#[derive(Debug, Clone)]
pub struct ProtocolRecord {
    pub protocol: StoredProtocol,
    pub meeting_state: String,
    pub signoffs: Vec<StoredSignoff>,
    pub signature: Option<StoredSignature>,
}

/// What a sign-off decides once it has read the current state.
pub struct SignoffPlan {
    /// Set when this sign-off completes the justering: the signed record.
    pub signature: Option<StoredSignature>,
}

const PROTOCOL_COLUMNS: &str = "id, meeting_id, version, hash, canonical, locked_at";

macro_rules! protocol_from_row {
    ($row:expr) => {{
        let row = $row;
        let meeting: Uuid = row.try_get("meeting_id")?;
        StoredProtocol {
            id: row.try_get("id")?,
            meeting: meeting.into(),
            version: row.try_get("version")?,
            hash: row.try_get("hash")?,
            canonical: row.try_get("canonical")?,
            locked_at: row.try_get("locked_at")?,
        }
    }};
}

macro_rules! signoff_from_row {
    ($row:expr) => {{
        let row = $row;
        let username: Option<String> = row.try_get("username")?;
        let signed_in_with: Option<String> = row.try_get("signed_in_with")?;
        let vouched_by: Option<String> = row.try_get("vouched_by")?;
        let account = match (username, signed_in_with) {
            (Some(username), Some(signed_in_with)) => Some(SignerAccount {
                username,
                agency: row.try_get("agency")?,
                signed_in_with: serde_json::from_str(&signed_in_with)
                    .map_err(|e| StoreError::Corrupt(format!("sign-off's sign-in: {e}")))?,
                vouched_by: vouched_by
                    .map(|v| serde_json::from_str(&v))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("sign-off's voucher: {e}")))?,
            }),
            _ => None,
        };
        StoredSignoff {
            user: UserId(row.try_get("user_id")?),
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            hash: row.try_get("hash")?,
            signed_at: row.try_get("signed_at")?,
            account,
        }
    }};
}

macro_rules! signature_from_row {
    ($row:expr) => {{
        let row = $row;
        StoredSignature {
            key_id: row.try_get("key_id")?,
            record: row.try_get("record")?,
            signature: row.try_get("signature")?,
            verified_at: row.try_get("verified_at")?,
        }
    }};
}

macro_rules! with_pool {
    ($self:ident, $p:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// Reads the document (snapshot and log tail) on a transaction.
macro_rules! read_document {
    ($tx:ident, $meeting:expr) => {{
        let snapshot = sqlx::query("SELECT state, upto FROM doc_snapshots WHERE meeting_id = $1")
            .bind($meeting.as_uuid())
            .fetch_optional(&mut *$tx)
            .await?
            .map(|row| -> Result<Snapshot, sqlx::Error> {
                Ok(Snapshot {
                    state: row.try_get("state")?,
                    upto: row.try_get("upto")?,
                })
            })
            .transpose()?;
        let after = snapshot.as_ref().map_or(0, |s| s.upto);
        let updates = sqlx::query(
            "SELECT mseq, data FROM doc_updates WHERE meeting_id = $1 AND mseq > $2 ORDER BY mseq",
        )
        .bind($meeting.as_uuid())
        .bind(after)
        .fetch_all(&mut *$tx)
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get("mseq")?, row.try_get("data")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        StoredDocument { snapshot, updates }
    }};
}

macro_rules! insert_audit {
    ($tx:ident, $meeting:expr, $at:expr, $actor:expr, $action:expr, $reason:expr, $hash:expr) => {
        sqlx::query(
            "INSERT INTO audit (meeting_id, at, actor_id, actor_name, action, reason, hash, via)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($meeting.as_uuid())
        .bind($at)
        .bind($actor.id.map(|u: UserId| u.0))
        .bind(&$actor.name)
        .bind($action)
        .bind($reason)
        .bind($hash)
        .bind($actor.via)
        .execute(&mut *$tx)
        .await?
    };
}

/// Appends one update to the log on a transaction; returns its seq.
macro_rules! append_update {
    ($tx:ident, $meeting:expr, $data:expr) => {{
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO doc_updates (meeting_id, data) VALUES ($1, $2) RETURNING mseq",
        )
        .bind($meeting.as_uuid())
        .bind($data)
        .fetch_one(&mut *$tx)
        .await?;
        seq
    }};
}

macro_rules! latest_protocol {
    ($tx:ident, $meeting:expr) => {{
        let sql = format!(
            "SELECT {PROTOCOL_COLUMNS} FROM protocols WHERE meeting_id = $1 ORDER BY version DESC LIMIT 1"
        );
        match sqlx::query(&sql)
            .bind($meeting.as_uuid())
            .fetch_optional(&mut *$tx)
            .await?
        {
            Some(row) => Some(protocol_from_row!(&row)),
            None => None,
        }
    }};
}

macro_rules! signoffs_of {
    ($conn:expr, $protocol:expr) => {{
        let rows = sqlx::query(
            "SELECT user_id, name, role, hash, signed_at, username, agency, signed_in_with, vouched_by
             FROM signoffs WHERE protocol_id = $1 ORDER BY signed_at, name",
        )
        .bind($protocol)
        .fetch_all($conn)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(signoff_from_row!(row));
        }
        out
    }};
}

/// A signing key as stored.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub key_id: String,
    pub public_key: Vec<u8>,
    /// Kept here when the key is not in a file (`--signing-key-file`);
    /// erased when the key is retired.
    pub secret_key: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    /// The key new signatures are made with (at most one).
    pub in_use: bool,
    /// Retired keys never sign again; their signatures still verify.
    pub retired_at: Option<DateTime<Utc>>,
}

/// What became of a claim to be the key in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// It is the key in use (now, or already).
    Claimed,
    /// Another key is in use.
    OtherInUse(String),
    /// The key was retired; it cannot sign again.
    Retired,
    /// Another process claimed a key at the same moment: read again.
    Raced,
}

/// A unique violation (another process won a race) as `Conflict`.
fn conflict_or_database(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(e),
    }
}

/// Reads everything a lock shows, on a transaction.
macro_rules! read_lock_snapshot {
    ($tx:ident, $meeting:expr, $state:expr) => {{
        let meeting = $meeting;
        let state = $state;
        let row = sqlx::query(
            "SELECT title, body, meeting_date, start_time, place FROM meetings WHERE id = $1",
        )
        .bind(meeting.as_uuid())
        .fetch_one(&mut *$tx)
        .await?;
        let participants = sqlx::query(
            "SELECT u.id, u.display_name, pt.role, a.name AS agency
             FROM participants pt JOIN users u ON u.id = pt.user_id
             LEFT JOIN agencies a ON a.id = u.agency_id
             WHERE pt.meeting_id = $1",
        )
        .bind(meeting.as_uuid())
        .fetch_all(&mut *$tx)
        .await?
        .iter()
        .map(|r| {
            Ok((
                UserId(r.try_get("id")?),
                r.try_get("display_name")?,
                r.try_get("role")?,
                r.try_get("agency")?,
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let sections = sqlx::query(
            "SELECT s.id, s.number, s.title, s.owner_kind, a.name AS agency, u.display_name AS person
             FROM sections s
             LEFT JOIN agencies a ON a.id = s.owner_agency_id
             LEFT JOIN users u ON u.id = s.owner_user_id
             WHERE s.meeting_id = $1 ORDER BY s.position",
        )
        .bind(meeting.as_uuid())
        .fetch_all(&mut *$tx)
        .await?
        .iter()
        .map(|r| {
            let kind: String = r.try_get("owner_kind")?;
            let owner: Option<String> = match kind.as_str() {
                "agency" => r.try_get("agency")?,
                "user" => r.try_get("person")?,
                _ => Some(SectionOwner::SECRETARY_NAME.to_owned()),
            };
            Ok((
                r.try_get("id")?,
                r.try_get("number")?,
                r.try_get("title")?,
                owner.unwrap_or_default(),
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let document = read_document!($tx, meeting);
        let last: Option<i32> =
            sqlx::query_scalar("SELECT MAX(version) FROM protocols WHERE meeting_id = $1")
                .bind(meeting.as_uuid())
                .fetch_one(&mut *$tx)
                .await?;
        let snapshot = LockSnapshot {
            state,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            date: row.try_get("meeting_date")?,
            time: row.try_get("start_time")?,
            place: row.try_get("place")?,
            participants,
            sections,
            document,
            next_version: last.unwrap_or(0) + 1,
        };
        snapshot
    }};
}

/// Stores a rendition and remembers its SHA-256 for verification, on a
/// transaction; a rendition already there is kept as it is.
macro_rules! insert_rendition {
    ($tx:ident, $protocol:expr, $r:expr, $at:expr) => {{
        let r: &NewRendition = $r;
        sqlx::query(
            "INSERT INTO protocol_renditions (protocol_id, stage, format, sha256, bytes, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (protocol_id, stage, format) DO NOTHING",
        )
        .bind($protocol)
        .bind(r.stage)
        .bind(r.format)
        .bind(&r.sha256)
        .bind(&r.bytes)
        .bind($at)
        .execute(&mut *$tx)
        .await?;
        sqlx::query(
            "INSERT INTO protocol_exports (sha256, protocol_id, stage, format, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&r.sha256)
        .bind($protocol)
        .bind(r.stage)
        .bind(r.format)
        .bind($at)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Seconds precision: what the canonical form and every rendering show,
/// and what both backends store exactly.
pub fn now_seconds() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now)
}

impl Protocols {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// What a lock would read now, without taking any lock: the finaliser
    /// typesets the protocol from it before the lock's transaction, so that
    /// the transaction (on SQLite, the database's write lock) is not held
    /// while Typst works. None: no such meeting.
    pub async fn lock_snapshot(
        &self,
        meeting: MeetingId,
    ) -> Result<Option<LockSnapshot>, StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM meetings WHERE id = $1")
                .bind(meeting.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(state) = state else {
                return Ok(None);
            };
            let snapshot = read_lock_snapshot!(tx, meeting, state);
            tx.rollback().await?;
            Ok(Some(snapshot))
        })
    }

    /// Locks a draft: reads everything the protocol shows inside the
    /// transaction, lets `plan` build the canonical protocol, its
    /// renditions and the document update, then appends the update, stores
    /// the protocol and its renditions, flips the state and writes the
    /// audit row, all or nothing.
    pub async fn lock<E, F>(
        &self,
        meeting: MeetingId,
        actor: &AuditActor,
        at: DateTime<Utc>,
        plan: impl FnOnce(LockSnapshot) -> F,
    ) -> Result<Committed, ChangeRefused<E>>
    where
        F: std::future::Future<Output = Result<LockPlan, E>>,
    {
        begin_on_meeting!(self, meeting, |tx, state| {
            let Some(state) = state else {
                return Err(ChangeRefused::NoMeeting);
            };
            let snapshot = read_lock_snapshot!(tx, meeting, state);
            let version = snapshot.next_version;
            let planned = plan(snapshot).await.map_err(ChangeRefused::Refused)?;
            // The last append: the meeting is still a draft here.
            let seq = append_update!(tx, meeting, &planned.doc_update);
            sqlx::query("UPDATE meetings SET state = 'locked' WHERE id = $1")
                .bind(meeting.as_uuid())
                .execute(&mut *tx)
                .await?;
            let protocol = StoredProtocol {
                id: Uuid::new_v4(),
                meeting,
                version,
                hash: planned.hash,
                canonical: planned.canonical,
                locked_at: at,
            };
            sqlx::query(
                "INSERT INTO protocols (id, meeting_id, version, hash, canonical, locked_at, locked_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(protocol.id)
            .bind(meeting.as_uuid())
            .bind(version)
            .bind(&protocol.hash)
            .bind(&protocol.canonical)
            .bind(at)
            .bind(actor.id.map(|u| u.0))
            .execute(&mut *tx)
            .await?;
            for r in &planned.renditions {
                insert_rendition!(tx, protocol.id, r, at);
            }
            insert_audit!(
                tx,
                meeting,
                at,
                actor,
                "lock",
                None::<String>,
                Some(&protocol.hash)
            );
            tx.commit().await?;
            Ok(Committed {
                protocol,
                doc_update: Some((planned.doc_update, seq)),
            })
        })
    }

    /// Takes a locked protocol back to draft (a reopening or a rejection):
    /// `check` sees the current protocol and its sign-offs and may refuse;
    /// `update` builds the document update from the stored document, which
    /// is appended after the state is draft again.
    pub async fn unlock<E>(
        &self,
        meeting: MeetingId,
        actor: &AuditActor,
        action: &'static str,
        reason: Option<&str>,
        check: impl FnOnce(&str, Option<&StoredProtocol>, &[StoredSignoff]) -> Result<(), E>,
        update: impl FnOnce(StoredDocument) -> Vec<u8>,
    ) -> Result<Committed, ChangeRefused<E>> {
        let at = now_seconds();
        begin_on_meeting!(self, meeting, |tx, state| {
            let Some(state) = state else {
                return Err(ChangeRefused::NoMeeting);
            };
            let protocol = latest_protocol!(tx, meeting);
            let signoffs = match &protocol {
                Some(p) => signoffs_of!(&mut *tx, p.id),
                None => Vec::new(),
            };
            check(&state, protocol.as_ref(), &signoffs).map_err(ChangeRefused::Refused)?;
            let Some(protocol) = protocol else {
                return Err(ChangeRefused::NoMeeting);
            };
            sqlx::query("UPDATE meetings SET state = 'draft' WHERE id = $1")
                .bind(meeting.as_uuid())
                .execute(&mut *tx)
                .await?;
            let document = read_document!(tx, meeting);
            let data = update(document);
            let seq = append_update!(tx, meeting, &data);
            insert_audit!(tx, meeting, at, actor, action, reason, Some(&protocol.hash));
            tx.commit().await?;
            Ok(Committed {
                protocol,
                doc_update: Some((data, seq)),
            })
        })
    }

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
            let Some(state) = state else {
                return Err(ChangeRefused::NoMeeting);
            };
            let protocol = latest_protocol!(tx, meeting);
            let mut signoffs = match &protocol {
                Some(p) => signoffs_of!(&mut *tx, p.id),
                None => Vec::new(),
            };
            check(&state, protocol.as_ref(), &signoffs).map_err(ChangeRefused::Refused)?;
            let Some(protocol) = protocol else {
                return Err(ChangeRefused::NoMeeting);
            };
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

    /// The meeting's latest protocol, if it was ever locked.
    pub async fn current(&self, meeting: MeetingId) -> Result<Option<ProtocolRecord>, StoreError> {
        let sql = format!(
            "SELECT {PROTOCOL_COLUMNS} FROM protocols WHERE meeting_id = $1 ORDER BY version DESC LIMIT 1"
        );
        let protocol = with_pool!(self, p => {
            match sqlx::query(&sql).bind(meeting.as_uuid()).fetch_optional(p).await? {
                Some(row) => Some(protocol_from_row!(&row)),
                None => None,
            }
        });
        match protocol {
            Some(protocol) => Ok(Some(self.record(protocol).await?)),
            None => Ok(None),
        }
    }

    /// A protocol by its hash.
    pub async fn by_hash(&self, hash: &str) -> Result<Option<ProtocolRecord>, StoreError> {
        let sql = format!("SELECT {PROTOCOL_COLUMNS} FROM protocols WHERE hash = $1");
        let protocol = with_pool!(self, p => {
            match sqlx::query(&sql).bind(hash).fetch_optional(p).await? {
                Some(row) => Some(protocol_from_row!(&row)),
                None => None,
            }
        });
        match protocol {
            Some(protocol) => Ok(Some(self.record(protocol).await?)),
            None => Ok(None),
        }
    }

    /// A protocol by its id.
    async fn by_id(&self, id: Uuid) -> Result<Option<StoredProtocol>, StoreError> {
        let sql = format!("SELECT {PROTOCOL_COLUMNS} FROM protocols WHERE id = $1");
        with_pool!(self, p => {
            match sqlx::query(&sql).bind(id).fetch_optional(p).await? {
                Some(row) => Ok(Some(protocol_from_row!(&row))),
                None => Ok(None),
            }
        })
    }

    async fn record(&self, protocol: StoredProtocol) -> Result<ProtocolRecord, StoreError> {
        with_pool!(self, p => {
            let meeting_state: String = sqlx::query_scalar("SELECT state FROM meetings WHERE id = $1")
                .bind(protocol.meeting.as_uuid())
                .fetch_one(p)
                .await?;
            let signoffs = signoffs_of!(p, protocol.id);
            let signature = match sqlx::query(
                "SELECT key_id, record, signature, verified_at FROM protocol_signatures WHERE protocol_id = $1")
                .bind(protocol.id)
                .fetch_optional(p)
                .await?
            {
                Some(row) => Some(signature_from_row!(&row)),
                None => None,
            };
            Ok(ProtocolRecord { protocol, meeting_state, signoffs, signature })
        })
    }

    /// Remembers the SHA-256 of an export handed out (once per file).
    pub async fn record_export(
        &self,
        sha256: &str,
        protocol: Uuid,
        stage: &str,
        format: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, p => { sqlx::query(
            "INSERT INTO protocol_exports (sha256, protocol_id, stage, format, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING")
            .bind(sha256)
            .bind(protocol)
            .bind(stage)
            .bind(format)
            .bind(Utc::now())
            .execute(p)
            .await?; });
        Ok(())
    }

    /// An export rendered before, if there is one.
    pub async fn rendition(
        &self,
        protocol: Uuid,
        stage: &str,
        format: &str,
    ) -> Result<Option<StoredRendition>, StoreError> {
        with_pool!(self, p => {
            let row = sqlx::query(
                "SELECT sha256, bytes FROM protocol_renditions
                 WHERE protocol_id = $1 AND stage = $2 AND format = $3")
                .bind(protocol)
                .bind(stage)
                .bind(format)
                .fetch_optional(p)
                .await?;
            match row {
                Some(row) => Ok(Some(StoredRendition {
                    sha256: row.try_get("sha256")?,
                    bytes: row.try_get("bytes")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Keeps a rendered export. Should another request or node have kept
    /// one first, that one stays, and is what this returns: every
    /// download of a (protocol, stage, format) is the same file.
    pub async fn keep_rendition(
        &self,
        protocol: Uuid,
        rendition: NewRendition,
    ) -> Result<StoredRendition, StoreError> {
        let at = Utc::now();
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            insert_rendition!(tx, protocol, &rendition, at);
            tx.commit().await?;
        });
        self.rendition(protocol, rendition.stage, rendition.format)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("rendition of {protocol} vanished")))
    }

    /// The protocol an export file with this SHA-256 belongs to, with the
    /// file's stage and format.
    pub async fn export(
        &self,
        sha256: &str,
    ) -> Result<Option<(ProtocolRecord, String, String)>, StoreError> {
        let found: Option<(Uuid, String, String)> = with_pool!(self, p => {
            match sqlx::query("SELECT protocol_id, stage, format FROM protocol_exports WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(p)
                .await?
            {
                Some(row) => Some((row.try_get("protocol_id")?, row.try_get("stage")?, row.try_get("format")?)),
                None => None,
            }
        });
        let Some((id, stage, format)) = found else {
            return Ok(None);
        };
        let protocol = self
            .by_id(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("export of unknown protocol {id}")))?;
        Ok(Some((self.record(protocol).await?, stage, format)))
    }

    pub async fn audit(&self, meeting: MeetingId) -> Result<Vec<AuditEntry>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT id, at, actor_id, actor_name, action, reason, hash, via FROM audit
                 WHERE meeting_id = $1 ORDER BY id")
                .bind(meeting.as_uuid())
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    let actor: Option<Uuid> = r.try_get("actor_id")?;
                    Ok(AuditEntry {
                        id: r.try_get("id")?,
                        at: r.try_get("at")?,
                        actor_id: actor.map(UserId),
                        actor_name: r.try_get("actor_name")?,
                        action: r.try_get("action")?,
                        reason: r.try_get("reason")?,
                        hash: r.try_get("hash")?,
                        via: r.try_get("via")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    // ---- signing keys ----------------------------------------------------------

    /// Every key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        with_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT key_id, public_key, secret_key, created_at, in_use IS NOT NULL AS in_use, retired_at
                 FROM signing_keys ORDER BY created_at, key_id")
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| Ok(StoredKey {
                    key_id: r.try_get("key_id")?,
                    public_key: r.try_get("public_key")?,
                    secret_key: r.try_get("secret_key")?,
                    created_at: r.try_get("created_at")?,
                    in_use: r.try_get("in_use")?,
                    retired_at: r.try_get("retired_at")?,
                }))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Records `key_id` as the key in use (adding it first if it is new),
    /// unless another key is in use already or this one was retired. Two
    /// processes claiming at once: one wins, the other is told which key
    /// is in use.
    pub async fn claim_signing_key(
        &self,
        key_id: &str,
        public_key: &[u8],
        secret_key: Option<&[u8]>,
    ) -> Result<KeyClaim, StoreError> {
        let now = Utc::now();
        let outcome: Result<KeyClaim, StoreError> = begin_write!(self, |tx| {
            let in_use: Option<String> =
                sqlx::query_scalar("SELECT key_id FROM signing_keys WHERE in_use IS NOT NULL")
                    .fetch_optional(&mut *tx)
                    .await?;
            match in_use {
                Some(id) if id == key_id => return Ok(KeyClaim::Claimed),
                Some(id) => return Ok(KeyClaim::OtherInUse(id)),
                None => {}
            }
            sqlx::query(
                "INSERT INTO signing_keys (key_id, public_key, secret_key, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key_id) DO NOTHING")
                .bind(key_id)
                .bind(public_key)
                .bind(secret_key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let claimed = sqlx::query(
                "UPDATE signing_keys SET in_use = TRUE WHERE key_id = $1 AND retired_at IS NULL",
            )
            .bind(key_id)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_database);
            match claimed {
                Ok(done) if done.rows_affected() == 1 => {}
                Ok(_) => return Ok(KeyClaim::Retired),
                Err(StoreError::Conflict) => return Ok(KeyClaim::Raced),
                Err(e) => return Err(e),
            }
            tx.commit()
                .await
                .map_err(conflict_or_database)
                .map(|_| KeyClaim::Claimed)
        });
        match outcome {
            Err(StoreError::Conflict) => Ok(KeyClaim::Raced),
            other => other,
        }
    }

    /// Retires a key: it never signs again and its secret, if kept here, is
    /// erased; signatures it made still verify. False if there is no such
    /// key that is not retired already.
    pub async fn retire_signing_key(&self, key_id: &str) -> Result<bool, StoreError> {
        with_pool!(self, p => Ok(sqlx::query(
            "UPDATE signing_keys SET retired_at = $1, in_use = NULL, secret_key = NULL
             WHERE key_id = $2 AND retired_at IS NULL")
            .bind(Utc::now())
            .bind(key_id)
            .execute(p)
            .await?
            .rows_affected() == 1))
    }
}
