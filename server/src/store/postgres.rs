//! The production backend: Postgres. Commits are durable with the server's
//! default `synchronous_commit = on`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgPool, Row, postgres::PgPoolOptions};
use tracing::instrument;
use uuid::Uuid;

use super::{AppendBatch, Seq, Snapshot, Store, StoreError, StoredDocument};
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
    async fn append_updates(&self, batches: &[AppendBatch]) -> Result<Vec<Seq>, StoreError> {
        let mut meetings = Vec::new();
        let mut data: Vec<&[u8]> = Vec::new();
        for batch in batches {
            for update in &batch.updates {
                meetings.push(batch.meeting.as_uuid());
                data.push(update.as_ref());
            }
        }
        // One statement for the whole group commit; WITH ORDINALITY keeps the
        // array order so seq follows arrival order within the commit.
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
        let mut last = vec![0; batches.len()];
        for row in rows {
            let meeting: Uuid = row.try_get("meeting_id")?;
            let seq: Seq = row.try_get("last")?;
            for (i, batch) in batches.iter().enumerate() {
                if batch.meeting.as_uuid() == meeting {
                    last[i] = seq;
                }
            }
        }
        Ok(last)
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

    async fn close(&self) {
        self.pool.close().await;
    }
}
