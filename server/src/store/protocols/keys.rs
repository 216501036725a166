//! The server's signing keys: listed, claimed as the one in use (one
//! process wins a race), and retired.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::Protocols;
use crate::store::{
    StoreError,
    pool::{begin_write, execute, fetch_all},
};

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

impl Protocols {
    /// Every key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        Ok(fetch_all!(self, "SELECT key_id, public_key, secret_key, created_at, in_use IS NOT NULL AS in_use, retired_at
                 FROM signing_keys ORDER BY created_at, key_id", [], |r| StoredKey {
                    key_id: r.try_get("key_id")?,
                    public_key: r.try_get("public_key")?,
                    secret_key: r.try_get("secret_key")?,
                    created_at: r.try_get("created_at")?,
                    in_use: r.try_get("in_use")?,
                    retired_at: r.try_get("retired_at")?,
                }))
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
        Ok(execute!(
            self,
            "UPDATE signing_keys SET retired_at = $1, in_use = NULL, secret_key = NULL
             WHERE key_id = $2 AND retired_at IS NULL",
            Utc::now(),
            key_id
        ) == 1)
    }
}
