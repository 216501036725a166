//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a commit is on disk before `append_updates` returns.

use std::{collections::HashSet, path::Path, str::FromStr, time::Duration};

use async_trait::async_trait;
use chrono::Utc;
use sqlx::{
    QueryBuilder, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tracing::instrument;

use super::{AppendBatch, Appended, Seq, Store, StoreError, StoredDocument, pool::read_document};
use crate::meeting::MeetingId;

/// SQLite caps bound parameters per statement; two per update row.
const ROWS_PER_INSERT: usize = 8_000;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // Checkpoints run in the background (below), not inside
            // whichever commit happens to cross the WAL size limit: that
            // commit would copy pages and fsync the database file while
            // every room waits for it.
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", (64 * 1024 * 1024).to_string());
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A ping before every use is a round trip to the connection's
            // thread for a file that cannot go away like a network peer.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        tokio::spawn(checkpoint_in_background(pool.clone()));
        Ok(Self { pool })
    }

    pub fn pool(&self) -> SqlitePool {
        self.pool.clone()
    }

    /// Inserts the batches of the meetings not in `locked`.
    async fn insert_batches(
        &self,
        conn: &mut sqlx::SqliteConnection,
        batches: &[AppendBatch],
        locked: &HashSet<uuid::Uuid>,
    ) -> Result<Vec<Appended>, StoreError> {
        let rows: Vec<(usize, uuid::Uuid, &[u8])> = batches
            .iter()
            .enumerate()
            .filter(|(_, b)| !locked.contains(&b.meeting.as_uuid()))
            .flat_map(|(i, b)| {
                b.updates
                    .iter()
                    .map(move |u| (i, b.meeting.as_uuid(), u.as_ref()))
            })
            .collect();
        let mut last = vec![0; batches.len()];
        let mut record = |chunk: &[(usize, uuid::Uuid, &[u8])], first: Seq| {
            for (k, (i, _, _)) in chunk.iter().enumerate() {
                last[*i] = last[*i].max(first + k as Seq);
            }
        };
        // Every statement is a round trip to sqlx's connection thread, so a
        // group commit that fits one INSERT runs as that one statement
        // (atomic on its own); a larger one wraps its INSERTs in a
        // transaction.
        if rows.is_empty() {
        } else if rows.len() <= ROWS_PER_INSERT {
            let first = insert_updates(&mut *conn, &rows).await?;
            record(&rows, first);
        } else {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let first = insert_updates(&mut tx, chunk).await?;
                record(chunk, first);
            }
            tx.commit().await?;
        }
        Ok(batches
            .iter()
            .zip(last)
            .map(|(b, seq)| {
                if locked.contains(&b.meeting.as_uuid()) {
                    Appended::Locked
                } else {
                    Appended::Stored(seq)
                }
            })
            .collect())
    }
}

/// How many times an append tries to insert: the first try assumes every
/// meeting is a draft; after a refusal by the lock trigger the meetings'
/// states are read and the locked ones left out.
const LOCK_RACE_ATTEMPTS: usize = 4;

/// The meetings among the batches' whose protocol is not a draft.
async fn locked_among(
    conn: &mut sqlx::SqliteConnection,
    batches: &[AppendBatch],
) -> Result<HashSet<uuid::Uuid>, StoreError> {
    let meetings: HashSet<uuid::Uuid> = batches.iter().map(|b| b.meeting.as_uuid()).collect();
    let mut query = QueryBuilder::new("SELECT id FROM meetings WHERE state <> 'draft' AND id IN (");
    let mut ids = query.separated(", ");
    for id in &meetings {
        ids.push_bind(*id);
    }
    ids.push_unseparated(")");
    let locked: Vec<uuid::Uuid> = query.build_query_scalar().fetch_all(&mut *conn).await?;
    Ok(locked.into_iter().collect())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    #[instrument(skip(self), fields(meeting_id = %id))]
    async fn load_document(&self, id: MeetingId) -> Result<StoredDocument, StoreError> {
        // One read transaction, so the snapshot and the log tail agree.
        let mut tx = self.pool.begin().await?;
        let stored = read_document!(tx, id, after: None, seq: "seq");
        tx.commit().await?;
        Ok(stored)
    }

    #[instrument(skip_all, fields(batches = batches.len()))]
    async fn append_to_drafts(&self, batches: &[AppendBatch]) -> Result<Vec<Appended>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        // Nearly every commit is to drafts only, so the insert goes first:
        // the trigger refuses the whole statement if any of its meetings is
        // locked, and then the meetings that are not drafts are read and
        // left out (a lock committed in between makes the next round leave
        // that meeting out too). One round trip to sqlx's connection thread
        // per commit instead of two.
        let mut locked = HashSet::new();
        for _ in 0..LOCK_RACE_ATTEMPTS {
            match self.insert_batches(&mut conn, batches, &locked).await {
                Ok(result) => return Ok(result),
                Err(StoreError::Database(e)) if super::is_locked_refusal(&e) => {
                    locked = locked_among(&mut conn, batches).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Locked)
    }

    #[instrument(skip(self, state), fields(meeting_id = %id, bytes = state.len()))]
    async fn write_snapshot(
        &self,
        id: MeetingId,
        state: &[u8],
        upto: Seq,
    ) -> Result<(), StoreError> {
        // A snapshot holds only what the log holds (see the trait): the
        // head is the meeting's last logged row, or what the stored
        // snapshot covers once compaction has removed the rows. One
        // writer at a time: nothing appends between this read and the
        // write but this node's own commit writer, whose positions are
        // past `upto` anyway.
        let head: Seq = sqlx::query_scalar(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM doc_updates WHERE meeting_id = ?1), 0),
                        COALESCE((SELECT upto FROM doc_snapshots WHERE meeting_id = ?1), 0))",
        )
        .bind(id.as_uuid())
        .fetch_one(&self.pool)
        .await?;
        if upto > head {
            return Err(StoreError::SnapshotPastLog { upto, head });
        }
        sqlx::query(
            "INSERT INTO doc_snapshots (meeting_id, state, upto, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (meeting_id) DO UPDATE
             SET state = excluded.state, upto = excluded.upto, created_at = excluded.created_at
             WHERE excluded.upto >= doc_snapshots.upto",
        )
        .bind(id.as_uuid())
        .bind(state)
        .bind(upto)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn compact_log(&self, id: MeetingId, upto: Seq) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM doc_updates WHERE meeting_id = ? AND seq <= ?")
            .bind(id.as_uuid())
            .bind(upto)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn log_len(&self, id: MeetingId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM doc_updates WHERE meeting_id = ?")
            .bind(id.as_uuid())
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn document_bytes(&self, id: MeetingId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT length(state) FROM doc_snapshots WHERE meeting_id = ?1), 0)
                  + COALESCE((SELECT SUM(length(data)) FROM doc_updates
                              WHERE meeting_id = ?1 AND seq > COALESCE(
                                  (SELECT upto FROM doc_snapshots WHERE meeting_id = ?1), 0)), 0)",
        )
        .bind(id.as_uuid())
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Moves committed WAL frames into the database file every
/// `CHECKPOINT_EVERY`, on a connection of its own. PASSIVE never waits for
/// the writer, and the writer never waits for it. Ends when the pool closes.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}

const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Inserts rows with one multi-row INSERT and returns the first row's seq.
/// One statement takes consecutive rowids (AUTOINCREMENT, and SQLite lets
/// no other writer interleave), so the last rowid gives every row's seq.
/// Reading them back with RETURNING instead streams one row at a time from
/// sqlx's connection thread: a thread handoff per update.
async fn insert_updates(
    conn: &mut sqlx::SqliteConnection,
    rows: &[(usize, uuid::Uuid, &[u8])],
) -> Result<Seq, StoreError> {
    let mut insert = QueryBuilder::new("INSERT INTO doc_updates (meeting_id, data) ");
    insert.push_values(rows, |mut b, (_, meeting, data)| {
        b.push_bind(*meeting).push_bind(*data);
    });
    let done = insert.build().execute(&mut *conn).await?;
    if done.rows_affected() != rows.len() as u64 {
        return Err(StoreError::Corrupt(format!(
            "a {}-row insert inserted {} rows",
            rows.len(),
            done.rows_affected()
        )));
    }
    Ok(done.last_insert_rowid() - rows.len() as Seq + 1)
}
