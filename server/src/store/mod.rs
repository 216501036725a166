//! Durable storage: meetings, each document's append-only update log, and
//! snapshots that compact the log.
//!
//! One async trait for the log (`Store`), one implementation per backend
//! (SQLite embedded by default, Postgres in production), chosen by the URL
//! scheme. Each backend has its own migrations folder under `migrations/`.
//! An `append_updates` call returns only after the rows are committed and
//! fsynced: callers rely on that to broadcast an update only once it can no
//! longer be lost. The rows beside the log are written once for both
//! backends over one `Pool` (`pool.rs`): people and meetings
//! (`directory/`), locked protocols (`protocols/`) and the cluster keys.

mod cluster_keys;
mod directory;
mod pool;
mod postgres;
mod protocols;
mod sqlite;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::meeting::MeetingId;

pub use cluster_keys::{ClusterKey, ClusterKeys, KeyInfo, KeySecret, Rotation};
pub use directory::{
    Acceptance, AccountAuditEntry, Confirmation, Directory, Invitation, InvitationCreator, NewUser,
    PendingInvitation,
};
pub use pool::Pool;
pub use postgres::PostgresStore;
pub use protocols::{
    AuditActor, AuditEntry, ChangeRefused, Committed, KeyClaim, LockPlan, LockSnapshot,
    NewRendition, ProtocolRecord, Protocols, SignerAccount, SignoffPlan, StoredKey, StoredProtocol,
    StoredRendition, StoredSignature, StoredSignoff, now_seconds,
};
pub use sqlite::SqliteStore;
pub use writer::{CommitWriter, CommitWriterError};

/// Position of an update in its meeting's log. Increases with every append;
/// a snapshot covers every update of its meeting up to and including
/// `upto`. On Postgres it is the per-meeting `mseq` of migration 0006:
/// without holes, and visible in order, so that a reader that has
/// everything up to n can ask for `> n` and miss nothing.
pub type Seq = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: expected sqlite:PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("corrupt row in the store: {0}")]
    Corrupt(String),
    #[error("already exists")]
    Conflict,
    #[error("refers to something that does not exist")]
    UnknownReference,
    #[error("the protocol is locked")]
    Locked,
    /// A meeting already has a participant whose name reads the same.
    #[error("{}", crate::people::NAME_TAKEN)]
    NameTaken,
    /// A signature by a key that is no longer the one in use (retired
    /// meanwhile, or another process recorded its own).
    #[error("signing key {0} is no longer the key in use")]
    SigningKeyNotInUse(String),
    /// A snapshot that would claim positions the log does not hold: it is
    /// refused, the log keeps everything (see `Store::write_snapshot`).
    #[error("a snapshot up to {upto} was refused: the log ends at {head}")]
    SnapshotPastLog { upto: Seq, head: Seq },
}

/// Whether the database refused a write because the meeting's protocol is
/// locked (the triggers of migration 0004).
pub fn is_locked_refusal(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("P0423") || db.message().contains("the protocol is locked")
        }
        _ => false,
    }
}

/// What became of one batch of a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored; the sequence number of its last update.
    Stored(Seq),
    /// Refused: the meeting's protocol is locked. Nothing of it is stored.
    Locked,
}

/// Everything needed to rebuild a meeting's document.
#[derive(Debug, Default)]
pub struct StoredDocument {
    /// The latest snapshot (a Yjs v1 update holding the whole state), if any.
    pub snapshot: Option<Snapshot>,
    /// Updates logged after the snapshot, in log order.
    pub updates: Vec<(Seq, Vec<u8>)>,
}

#[derive(Debug)]
pub struct Snapshot {
    pub state: Vec<u8>,
    pub upto: Seq,
}

impl StoredDocument {
    /// The log position this document reflects.
    pub fn last_seq(&self) -> Seq {
        self.updates
            .last()
            .map(|(seq, _)| *seq)
            .or(self.snapshot.as_ref().map(|s| s.upto))
            .unwrap_or(0)
    }
}

/// Updates for one meeting, appended in one group commit with others.
#[derive(Debug)]
pub struct AppendBatch {
    pub meeting: MeetingId,
    pub updates: Vec<Bytes>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is, for logs and metrics labels.
    fn backend(&self) -> &'static str;

    /// Fails unless the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn load_document(&self, id: MeetingId) -> Result<StoredDocument, StoreError>;

    /// What a reader that holds the log up to `after` lacks: the updates
    /// after it, and the snapshot too if the snapshot covers more (the
    /// rows it covers may be gone).
    async fn load_after(&self, id: MeetingId, after: Seq) -> Result<StoredDocument, StoreError> {
        let mut stored = self.load_document(id).await?;
        if stored.snapshot.as_ref().is_some_and(|s| s.upto <= after) {
            stored.snapshot = None;
        }
        let from = stored.snapshot.as_ref().map_or(after, |s| s.upto);
        stored.updates.retain(|(seq, _)| *seq > from);
        Ok(stored)
    }

    /// The updates after `after`, when the log still holds every one of
    /// them; `None` when a snapshot covers more than `after` (its rows may
    /// be gone: read `load_after`). One read where the database allows:
    /// while Redis is away, every node asks this of every meeting it holds
    /// once a second.
    async fn log_after(
        &self,
        id: MeetingId,
        after: Seq,
    ) -> Result<Option<Vec<(Seq, Vec<u8>)>>, StoreError> {
        let stored = self.load_after(id, after).await?;
        Ok(stored.snapshot.is_none().then_some(stored.updates))
    }

    /// The position of the last committed update of each of `meetings`
    /// that has one. Only the Postgres backend keeps per-meeting heads
    /// (several nodes share it); the others return nothing.
    async fn log_heads(
        &self,
        _meetings: &[MeetingId],
    ) -> Result<Vec<(MeetingId, Seq)>, StoreError> {
        Ok(Vec::new())
    }

    /// Appends every batch of a meeting that is still a draft in one
    /// transaction, committed durably before this returns, and refuses the
    /// batches of meetings whose protocol is locked: one locked meeting does
    /// not fail the others. Returns what became of each batch.
    async fn append_to_drafts(&self, batches: &[AppendBatch]) -> Result<Vec<Appended>, StoreError>;

    /// Like `append_to_drafts`, failing with `StoreError::Locked` if any
    /// batch was refused. Returns, per batch, the sequence number of its
    /// last update.
    async fn append_updates(&self, batches: &[AppendBatch]) -> Result<Vec<Seq>, StoreError> {
        self.append_to_drafts(batches)
            .await?
            .into_iter()
            .map(|a| match a {
                Appended::Stored(seq) => Ok(seq),
                Appended::Locked => Err(StoreError::Locked),
            })
            .collect()
    }

    /// Replaces the meeting's snapshot with `state`, which must contain every
    /// update up to `upto` (unless the stored one already covers more).
    /// Loading reads only the log after the snapshot, so the rows it covers
    /// may stay until `compact_log` drops them. A snapshot holds only what
    /// the log holds: an `upto` past the log's head (in the same
    /// transaction) is refused with `StoreError::SnapshotPastLog`, since
    /// the positions up to it would then count as covered and real updates
    /// there would be skipped.
    async fn write_snapshot(
        &self,
        id: MeetingId,
        state: &[u8],
        upto: Seq,
    ) -> Result<(), StoreError>;

    /// Deletes the meeting's log rows up to `upto`, which a written snapshot
    /// covers.
    async fn compact_log(&self, id: MeetingId, upto: Seq) -> Result<(), StoreError>;

    /// Number of updates in the log (not yet folded into a snapshot).
    async fn log_len(&self, id: MeetingId) -> Result<u64, StoreError>;

    /// The stored document's encoded size: the snapshot's length plus the
    /// lengths of the logged updates after it (what loading it reads).
    async fn document_bytes(&self, id: MeetingId) -> Result<u64, StoreError>;

    async fn close(&self);
}

pub type DynStore = Arc<dyn Store>;

/// Both halves of the store over one database: documents and directory.
#[derive(Clone)]
pub struct Database {
    pub docs: DynStore,
    pub dir: Directory,
    /// Locked protocols, sign-offs, signatures, audit log.
    pub protocols: Protocols,
}

impl Database {
    /// The directory and the protocols on `pool`, the documents in `docs`
    /// (a backend over the same database).
    fn over(pool: Pool, docs: DynStore) -> Self {
        Database {
            dir: Directory::new(pool.clone()),
            protocols: Protocols::new(pool),
            docs,
        }
    }

    pub async fn close(&self) {
        self.docs.close().await;
    }
}

/// Whether `url` names a Postgres database (`postgres://` or
/// `postgresql://`), the backend several nodes can share.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the database named by `url` and applies its migrations.
///
/// `sqlite:PATH` selects the embedded backend; `postgres://` or
/// `postgresql://` selects Postgres.
pub async fn connect(url: &str) -> Result<Database, StoreError> {
    if is_postgres(url) {
        let store = PostgresStore::connect(url).await?;
        Ok(Database::over(
            Pool::Postgres(store.pool()),
            Arc::new(store),
        ))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))
    {
        let store = SqliteStore::open(path).await?;
        Ok(Database::over(Pool::Sqlite(store.pool()), Arc::new(store)))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
