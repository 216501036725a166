//! The finalised side of the store: locking a meeting's protocol, sign-offs,
//! the server's signature, the hashes of handed-out exports, the audit log
//! and the signing keys. One file per job; this one holds the records they
//! share and the statements several of them run on a transaction.
//!
//! Every state change is one transaction that first takes the meeting row
//! (`FOR UPDATE` on Postgres; `BEGIN IMMEDIATE` on SQLite, which takes the
//! database's write lock), then checks the state, then writes. A lock reads
//! the document from the database inside that transaction, so every update
//! committed before it (by any server node) is in the locked text, and the
//! trigger on `doc_updates` refuses every append after it. This module
//! decides nothing about who may act: the caller does, through the checks
//! it passes in.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Pool, Seq, StoreError};
use crate::{
    meeting::MeetingId,
    people::SignIn,
    people::{UserId, Vouch},
};

pub use keys::{KeyClaim, StoredKey};
pub use lock::{LockPlan, LockSnapshot};
pub use renditions::{NewRendition, StoredRendition};
pub use signoffs::SignoffPlan;

#[derive(Clone)]
pub struct Protocols {
    pool: Pool,
}

impl Protocols {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
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

/// The columns `protocol_from_row!` reads.
const PROTOCOL_COLUMNS: &str = "id, meeting_id, version, hash, canonical, locked_at";

/// A `StoredProtocol` from a row of `PROTOCOL_COLUMNS`.
macro_rules! protocol_from_row {
    ($row:expr) => {{
        let row = $row;
        let meeting: uuid::Uuid = sqlx::Row::try_get(row, "meeting_id")?;
        $crate::store::StoredProtocol {
            id: sqlx::Row::try_get(row, "id")?,
            meeting: meeting.into(),
            version: sqlx::Row::try_get(row, "version")?,
            hash: sqlx::Row::try_get(row, "hash")?,
            canonical: sqlx::Row::try_get(row, "canonical")?,
            locked_at: sqlx::Row::try_get(row, "locked_at")?,
        }
    }};
}

/// A `StoredSignoff` from a row of `signoffs`.
macro_rules! signoff_from_row {
    ($row:expr) => {{
        let row = $row;
        let username: Option<String> = sqlx::Row::try_get(row, "username")?;
        let signed_in_with: Option<String> = sqlx::Row::try_get(row, "signed_in_with")?;
        let vouched_by: Option<String> = sqlx::Row::try_get(row, "vouched_by")?;
        let account = match (username, signed_in_with) {
            (Some(username), Some(signed_in_with)) => Some($crate::store::SignerAccount {
                username,
                agency: sqlx::Row::try_get(row, "agency")?,
                signed_in_with: serde_json::from_str(&signed_in_with).map_err(|e| {
                    $crate::store::StoreError::Corrupt(format!("sign-off's sign-in: {e}"))
                })?,
                vouched_by: vouched_by
                    .map(|v| serde_json::from_str(&v))
                    .transpose()
                    .map_err(|e| {
                        $crate::store::StoreError::Corrupt(format!("sign-off's voucher: {e}"))
                    })?,
            }),
            _ => None,
        };
        $crate::store::StoredSignoff {
            user: $crate::people::UserId(sqlx::Row::try_get(row, "user_id")?),
            name: sqlx::Row::try_get(row, "name")?,
            role: sqlx::Row::try_get(row, "role")?,
            hash: sqlx::Row::try_get(row, "hash")?,
            signed_at: sqlx::Row::try_get(row, "signed_at")?,
            account,
        }
    }};
}

/// A `StoredSignature` from a row of `protocol_signatures`.
macro_rules! signature_from_row {
    ($row:expr) => {{
        let row = $row;
        $crate::store::StoredSignature {
            key_id: sqlx::Row::try_get(row, "key_id")?,
            record: sqlx::Row::try_get(row, "record")?,
            signature: sqlx::Row::try_get(row, "signature")?,
            verified_at: sqlx::Row::try_get(row, "verified_at")?,
        }
    }};
}

/// Writes a row of the meeting's audit log on a transaction.
macro_rules! insert_audit {
    ($tx:ident, $meeting:expr, $at:expr, $actor:expr, $action:expr, $reason:expr, $hash:expr) => {
        sqlx::query(
            "INSERT INTO audit (meeting_id, at, actor_id, actor_name, action, reason, hash, via)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($meeting.as_uuid())
        .bind($at)
        .bind($actor.id.map(|u: $crate::people::UserId| u.0))
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

/// The meeting's latest protocol, on `$conn` (a pool or a transaction).
macro_rules! latest_protocol {
    ($conn:expr, $meeting:expr) => {{
        let sql = format!(
            "SELECT {} FROM protocols WHERE meeting_id = $1 ORDER BY version DESC LIMIT 1",
            $crate::store::protocols::PROTOCOL_COLUMNS
        );
        match sqlx::query(&sql)
            .bind($meeting.as_uuid())
            .fetch_optional($conn)
            .await?
        {
            Some(row) => Some(protocol_from_row!(&row)),
            None => None,
        }
    }};
}

/// The sign-offs of a protocol, on `$conn` (a pool or a transaction).
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

/// In a transaction that holds the meeting (`begin_on_meeting!`, whose
/// `$state` it takes): the meeting's latest protocol and its sign-offs, once
/// `$check` has seen them with the state and let them through.
macro_rules! checked_protocol {
    ($tx:ident, $meeting:expr, $state:expr, $check:expr) => {{
        let Some(state) = $state else {
            return Err(ChangeRefused::NoMeeting);
        };
        let protocol = latest_protocol!(&mut *$tx, $meeting);
        let signoffs = match &protocol {
            Some(p) => signoffs_of!(&mut *$tx, p.id),
            None => Vec::new(),
        };
        $check(&state, protocol.as_ref(), &signoffs).map_err(ChangeRefused::Refused)?;
        let Some(protocol) = protocol else {
            return Err(ChangeRefused::NoMeeting);
        };
        (protocol, signoffs)
    }};
}

/// Stores a rendition and remembers its SHA-256 for verification, on a
/// transaction; a rendition already there is kept as it is.
macro_rules! insert_rendition {
    ($tx:ident, $protocol:expr, $r:expr, $at:expr) => {{
        let r: &$crate::store::NewRendition = $r;
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

// After the macros above, which they use.
mod keys;
mod lock;
mod records;
mod renditions;
mod signoffs;
