//! The production backend: Postgres. Commits are durable with the server's
//! default `synchronous_commit = on`.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use async_trait::async_trait;
use sqlx::{PgPool, Row, postgres::PgPoolOptions};
use tracing::instrument;
use uuid::Uuid;

use super::{AppendBatch, Appended, Seq, Store, StoreError, StoredDocument, pool::read_document};
use crate::meeting::MeetingId;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// Inserts the batches of the meetings not in `locked`, in one
    /// statement on `tx`, numbering each meeting's rows from its log head.
    async fn insert_batches(
        tx: &mut sqlx::PgConnection,
        batches: &[AppendBatch],
        locked: &HashSet<Uuid>,
    ) -> Result<Vec<Appended>, StoreError> {
        let mut meetings = Vec::new();
        let mut data: Vec<&[u8]> = Vec::new();
        for batch in batches {
            if locked.contains(&batch.meeting.as_uuid()) {
                continue;
            }
            for update in &batch.updates {
                meetings.push(batch.meeting.as_uuid());
                data.push(update.as_ref());
            }
        }
        let mut last: HashMap<Uuid, Seq> = HashMap::new();
        if !meetings.is_empty() {
            // One statement for the whole group commit. Each meeting's head
            // moves by its number of rows under the head's row lock, taken
            // in meeting order (as every appender takes them, so two nodes'
            // commits cannot deadlock); its rows are numbered below the new
            // head in arrival order (WITH ORDINALITY keeps the array order).
            let rows = sqlx::query(
                "WITH input AS (
                     SELECT * FROM UNNEST($1::uuid[], $2::bytea[])
                         WITH ORDINALITY AS t(meeting_id, data, ord)
                 ), counts AS (
                     SELECT meeting_id, COUNT(*) AS n FROM input GROUP BY meeting_id
                 ), heads AS (
                     INSERT INTO meeting_log_heads AS h (meeting_id, head)
                     SELECT meeting_id, n FROM counts ORDER BY meeting_id
                     ON CONFLICT (meeting_id) DO UPDATE SET head = h.head + excluded.head
                     RETURNING meeting_id, head
                 ), numbered AS (
                     SELECT i.meeting_id, i.data, i.ord,
                            hd.head - c.n
                                + ROW_NUMBER() OVER (PARTITION BY i.meeting_id ORDER BY i.ord)
                                AS mseq
                     FROM input i
                     JOIN counts c USING (meeting_id)
                     JOIN heads hd USING (meeting_id)
                 ), inserted AS (
                     INSERT INTO doc_updates (meeting_id, data, mseq)
                     SELECT meeting_id, data, mseq FROM numbered ORDER BY ord
                     RETURNING mseq, meeting_id
                 )
                 SELECT meeting_id, MAX(mseq) AS last FROM inserted GROUP BY meeting_id",
            )
            .bind(&meetings)
            .bind(&data)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                last.insert(row.try_get("meeting_id")?, row.try_get("last")?);
            }
        }
        // Several batches of one meeting in one commit: the later ones hold
        // the higher numbers.
        let mut outcomes = vec![Appended::Locked; batches.len()];
        for (i, b) in batches.iter().enumerate().rev() {
            let id = b.meeting.as_uuid();
            if locked.contains(&id) {
                continue;
            }
            let head = last.entry(id).or_insert(0);
            outcomes[i] = Appended::Stored(*head);
            *head -= b.updates.len() as Seq;
        }
        Ok(outcomes)
    }

    /// The log heads of `meetings`: the position of each one's last
    /// committed update (meetings that never had one are left out).
    async fn heads_of(&self, meetings: &[MeetingId]) -> Result<Vec<(MeetingId, Seq)>, StoreError> {
        let ids: Vec<Uuid> = meetings.iter().map(|m| m.as_uuid()).collect();
        let rows = sqlx::query(
            "SELECT meeting_id, head FROM meeting_log_heads WHERE meeting_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok((
                    MeetingId::from(row.try_get::<Uuid, _>("meeting_id")?),
                    row.try_get("head")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}

/// The advisory lock key of a meeting's snapshots and compaction: one node
/// at a time writes them.
fn snapshot_lock_key(id: MeetingId) -> i64 {
    let bytes = id.as_uuid().into_bytes();
    i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// Takes the advisory lock of a meeting's snapshots and compaction for the
/// rest of `tx`, unless another node holds it (false).
async fn snapshot_lock(tx: &mut sqlx::PgConnection, id: MeetingId) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(snapshot_lock_key(id))
        .fetch_one(&mut *tx)
        .await?)
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    #[instrument(skip(self), fields(meeting_id = %id))]
    async fn load_document(&self, id: MeetingId) -> Result<StoredDocument, StoreError> {
        self.load_after(id, 0).await
    }

    #[instrument(skip(self), fields(meeting_id = %id))]
    async fn load_after(&self, id: MeetingId, after: Seq) -> Result<StoredDocument, StoreError> {
        // REPEATABLE READ so the snapshot and the log tail come from one view.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        // The snapshot is needed only if it covers more than the reader
        // has: the rows it covers may be gone.
        let stored = read_document!(tx, id, after: Some(after), seq: "mseq");
        tx.commit().await?;
        Ok(stored)
    }

    async fn log_after(
        &self,
        id: MeetingId,
        after: Seq,
    ) -> Result<Option<Vec<(Seq, Vec<u8>)>>, StoreError> {
        // One statement, so one view: the log rows and whether a snapshot
        // covers more than the reader has (a row with `upto` set).
        let rows = sqlx::query(
            "SELECT u.mseq, u.data, s.upto
             FROM (SELECT 1) AS one
             LEFT JOIN doc_snapshots s ON s.meeting_id = $1 AND s.upto > $2
             LEFT JOIN doc_updates u ON u.meeting_id = $1 AND u.mseq > $2
             ORDER BY u.mseq",
        )
        .bind(id.as_uuid())
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        let mut updates = Vec::with_capacity(rows.len());
        for row in rows {
            if row.try_get::<Option<Seq>, _>("upto")?.is_some() {
                return Ok(None);
            }
            if let Some(seq) = row.try_get::<Option<Seq>, _>("mseq")? {
                updates.push((seq, row.try_get("data")?));
            }
        }
        Ok(Some(updates))
    }

    #[instrument(skip_all, fields(batches = batches.len()))]
    async fn append_to_drafts(&self, batches: &[AppendBatch]) -> Result<Vec<Appended>, StoreError> {
        // The meetings are read FOR SHARE, in id order, as the lock trigger
        // of migration 0004 takes them: a lock (FOR UPDATE) either commits
        // before this reads their states or waits for this commit. Meetings
        // that are not drafts are left out; the others are appended.
        let mut tx = self.pool.begin().await?;
        let mut ids: Vec<Uuid> = batches.iter().map(|b| b.meeting.as_uuid()).collect();
        ids.sort_unstable();
        ids.dedup();
        let locked: HashSet<Uuid> = sqlx::query_as::<_, (Uuid, String)>(
            "SELECT id, state FROM meetings WHERE id = ANY($1) ORDER BY id FOR SHARE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .filter(|(_, state)| state != "draft")
        .map(|(id, _)| id)
        .collect();
        let outcome = match Self::insert_batches(&mut tx, batches, &locked).await {
            Err(StoreError::Database(e)) if super::is_locked_refusal(&e) => {
                return Err(StoreError::Locked);
            }
            other => other?,
        };
        tx.commit().await?;
        Ok(outcome)
    }

    #[instrument(skip(self, state), fields(meeting_id = %id, bytes = state.len()))]
    async fn write_snapshot(
        &self,
        id: MeetingId,
        state: &[u8],
        upto: Seq,
    ) -> Result<(), StoreError> {
        // One node at a time snapshots a meeting; one that finds another
        // at it leaves it the work (the log keeps every row meanwhile).
        let mut tx = self.pool.begin().await?;
        if !snapshot_lock(&mut tx, id).await? {
            return Ok(());
        }
        // A snapshot holds only what the log holds: positions past the
        // head would count as covered, and the real updates numbered
        // there later would be skipped by every load. The head only grows,
        // so reading it here (committed) bounds every honest `upto`.
        let head: Seq = sqlx::query_scalar(
            "SELECT COALESCE((SELECT head FROM meeting_log_heads WHERE meeting_id = $1), 0)",
        )
        .bind(id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        if upto > head {
            return Err(StoreError::SnapshotPastLog { upto, head });
        }
        sqlx::query(
            "INSERT INTO doc_snapshots (meeting_id, state, upto, created_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (meeting_id) DO UPDATE
             SET state = excluded.state, upto = excluded.upto, created_at = excluded.created_at
             WHERE excluded.upto >= doc_snapshots.upto",
        )
        .bind(id.as_uuid())
        .bind(state)
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn compact_log(&self, id: MeetingId, upto: Seq) -> Result<(), StoreError> {
        // Only rows the stored snapshot covers go, whatever the caller
        // believes: the snapshot may be another node's, covering less.
        let mut tx = self.pool.begin().await?;
        if !snapshot_lock(&mut tx, id).await? {
            return Ok(());
        }
        sqlx::query(
            "DELETE FROM doc_updates WHERE meeting_id = $1 AND mseq <= LEAST($2,
                 COALESCE((SELECT upto FROM doc_snapshots WHERE meeting_id = $1), 0))",
        )
        .bind(id.as_uuid())
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn log_heads(&self, meetings: &[MeetingId]) -> Result<Vec<(MeetingId, Seq)>, StoreError> {
        self.heads_of(meetings).await
    }

    async fn log_len(&self, id: MeetingId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM doc_updates WHERE meeting_id = $1")
            .bind(id.as_uuid())
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn document_bytes(&self, id: MeetingId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (COALESCE((SELECT octet_length(state) FROM doc_snapshots WHERE meeting_id = $1), 0)
                  + COALESCE((SELECT SUM(octet_length(data)) FROM doc_updates
                              WHERE meeting_id = $1 AND seq > COALESCE(
                                  (SELECT upto FROM doc_snapshots WHERE meeting_id = $1), 0)), 0))::BIGINT",
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
