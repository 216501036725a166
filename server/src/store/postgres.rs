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

use super::{AppendBatch, Appended, Seq, Snapshot, Store, StoreError, StoredDocument};
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
    /// statement.
    async fn insert_batches(
        &self,
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
            // One statement for the whole group commit; WITH ORDINALITY
            // keeps the array order so seq follows arrival order within the
            // commit.
            let rows = sqlx::query(
                "WITH input AS (
                     SELECT * FROM UNNEST($1::uuid[], $2::bytea[])
                         WITH ORDINALITY AS t(meeting_id, data, ord)
                 ), inserted AS (
                     INSERT INTO doc_updates (meeting_id, data)
                     SELECT meeting_id, data FROM input ORDER BY ord
                     RETURNING seq, meeting_id
                 )
                 SELECT meeting_id, MAX(seq) AS last FROM inserted GROUP BY meeting_id",
            )
            .bind(&meetings)
            .bind(&data)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                last.insert(row.try_get("meeting_id")?, row.try_get("last")?);
            }
        }
        Ok(batches
            .iter()
            .map(|b| {
                let id = b.meeting.as_uuid();
                if locked.contains(&id) {
                    Appended::Locked
                } else {
                    Appended::Stored(last.get(&id).copied().unwrap_or(0))
                }
            })
            .collect())
    }
}

/// How often an append retries after a lock slipped in between reading the
/// meetings' states and inserting.
const LOCK_RACE_ATTEMPTS: usize = 4;

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
        // REPEATABLE READ so the snapshot and the log tail come from one view.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let snapshot = sqlx::query("SELECT state, upto FROM doc_snapshots WHERE meeting_id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
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
            "SELECT seq, data FROM doc_updates WHERE meeting_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(id.as_uuid())
        .bind(after)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get("seq")?, row.try_get("data")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        tx.commit().await?;
        Ok(StoredDocument { snapshot, updates })
    }

    #[instrument(skip_all, fields(batches = batches.len()))]
    async fn append_to_drafts(&self, batches: &[AppendBatch]) -> Result<Vec<Appended>, StoreError> {
        // The meetings that are not drafts are left out. A lock committed
        // between this read and the insert makes the trigger refuse the
        // whole statement, and the next round leaves that meeting out too.
        for _ in 0..LOCK_RACE_ATTEMPTS {
            let ids: Vec<Uuid> = batches.iter().map(|b| b.meeting.as_uuid()).collect();
            let locked: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(
                "SELECT id FROM meetings WHERE state <> 'draft' AND id = ANY($1)",
            )
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
            match self.insert_batches(batches, &locked).await {
                Ok(result) => return Ok(result),
                Err(StoreError::Database(e)) if super::is_locked_refusal(&e) => continue,
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
        sqlx::query(
            "INSERT INTO doc_snapshots (meeting_id, state, upto, created_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (meeting_id) DO UPDATE
             SET state = excluded.state, upto = excluded.upto, created_at = excluded.created_at
             WHERE excluded.upto >= doc_snapshots.upto",
        )
        .bind(id.as_uuid())
        .bind(state)
        .bind(upto)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn compact_log(&self, id: MeetingId, upto: Seq) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM doc_updates WHERE meeting_id = $1 AND seq <= $2")
            .bind(id.as_uuid())
            .bind(upto)
            .execute(&self.pool)
            .await?;
        Ok(())
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
