//! The keys that authenticate messages between nodes (migration 0007). They
//! live in Postgres, the one store every node already trusts: whoever can
//! reach Redis but not Postgres cannot sign anything.
//!
//! Nothing here may print a secret: `KeySecret` has no readable `Debug`.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sqlx::{PgPool, Row};

use super::{Pool, StoreError};

/// Advisory lock taken while a key is created or rotated, so that two
/// nodes starting at once create one key between them ("protokol").
const KEYS_LOCK: i64 = 0x7072_6f74_6f6b_6f6c;

/// 256 random bits.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret([u8; 32]);

impl KeySecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }
}

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySecret(..)")
    }
}

/// One key: its id travels with every message it signs.
#[derive(Debug, Clone)]
pub struct ClusterKey {
    pub id: i64,
    pub secret: KeySecret,
    pub created_at: DateTime<Utc>,
}

/// A key as the command line lists it: never its secret.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// The new key, which nodes sign with from now on.
    pub new: i64,
    /// The key nodes signed with until now (still accepted), if any.
    pub previous: Option<i64>,
    /// Keys retired now: their messages are refused from now on.
    pub retired: Vec<i64>,
}

/// The cluster keys table; Postgres only.
#[derive(Clone)]
pub struct ClusterKeys {
    pool: PgPool,
}

impl ClusterKeys {
    /// The keys of `pool`'s database; `None` on SQLite, which serves one
    /// node and has no such table.
    pub fn of(pool: &Pool) -> Option<Self> {
        match pool {
            Pool::Postgres(pool) => Some(Self { pool: pool.clone() }),
            Pool::Sqlite(_) => None,
        }
    }

    /// The keys not retired, newest first.
    pub async fn active(&self) -> Result<Vec<ClusterKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, secret, created_at FROM cluster_keys WHERE retired_at IS NULL
             ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(key_of).collect()
    }

    /// Every key, retired or not, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let rows = sqlx::query("SELECT id, created_at, retired_at FROM cluster_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(KeyInfo {
                    id: row.try_get("id")?,
                    created_at: row.try_get("created_at")?,
                    retired_at: row.try_get("retired_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The keys not retired, newest first; creates one if there is none
    /// (the first node to start with Redis, or the first command line that
    /// announces something). Two callers at once create one key.
    pub async fn ensure(&self) -> Result<Vec<ClusterKey>, StoreError> {
        let keys = self.active().await?;
        if !keys.is_empty() {
            return Ok(keys);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEYS_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO cluster_keys (secret) SELECT $1
             WHERE NOT EXISTS (SELECT 1 FROM cluster_keys WHERE retired_at IS NULL)",
        )
        .bind(KeySecret::generate().0.as_slice())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.active().await
    }

    /// Adds a key and retires every key older than the one nodes signed
    /// with until now, which stays accepted until the next rotation (the
    /// grace period: nodes take the new key within seconds). With
    /// `retire_others`, every other key is retired at once (a key that
    /// leaked).
    pub async fn rotate(&self, retire_others: bool) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEYS_LOCK)
            .execute(&mut *tx)
            .await?;
        let previous: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM cluster_keys WHERE retired_at IS NULL")
                .fetch_one(&mut *tx)
                .await?;
        let new: i64 =
            sqlx::query_scalar("INSERT INTO cluster_keys (secret) VALUES ($1) RETURNING id")
                .bind(KeySecret::generate().0.as_slice())
                .fetch_one(&mut *tx)
                .await?;
        let keep = if retire_others {
            new
        } else {
            previous.unwrap_or(new)
        };
        let retired: Vec<i64> = sqlx::query_scalar(
            "UPDATE cluster_keys SET retired_at = now()
             WHERE retired_at IS NULL AND id < $1 RETURNING id",
        )
        .bind(keep)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Rotation {
            new,
            previous: previous.filter(|_| !retire_others),
            retired,
        })
    }
}

fn key_of(row: sqlx::postgres::PgRow) -> Result<ClusterKey, StoreError> {
    let secret: Vec<u8> = row.try_get("secret")?;
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| StoreError::Corrupt("a cluster key is not 32 bytes".into()))?;
    Ok(ClusterKey {
        id: row.try_get("id")?,
        secret: KeySecret(secret),
        created_at: row.try_get("created_at")?,
    })
}
