//! Sign-in sessions and API tokens: created, looked up by their secret's
//! hash, checked in batches for the live connections, ended or revoked.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{AGENCY_JOIN, BATCH_PARAMETERS, Directory, USER_COLUMNS, conflict, placeholders};
use crate::{
    people::{ApiToken, TokenId, User, UserId},
    secret::SecretHash,
    store::{
        StoreError,
        pool::{execute, fetch_all, fetch_optional},
    },
};

impl Directory {
    // ---- sessions -----------------------------------------------------------

    pub async fn create_session(
        &self,
        hash: &[u8],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        execute!(
            self,
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            hash,
            user.0,
            Utc::now(),
            expires_at
        );
        Ok(())
    }

    /// The session's user and expiry, if the session exists.
    pub async fn session(&self, hash: &[u8]) -> Result<Option<(User, DateTime<Utc>)>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id {AGENCY_JOIN}
             WHERE s.token_hash = $1"
        );
        Ok(fetch_optional!(self, &sql, [hash], |row| {
            let expires: DateTime<Utc> = row.try_get("expires_at")?;
            (user_from_row!(&row), expires)
        }))
    }

    /// Which of the sessions `hashes` still exist (of users that exist),
    /// whatever their expiry: the caller compares times.
    pub async fn live_sessions(
        &self,
        hashes: &[SecretHash],
    ) -> Result<HashSet<SecretHash>, StoreError> {
        let mut live = HashSet::with_capacity(hashes.len());
        in_batches!(
            self,
            hashes,
            1,
            "SELECT s.token_hash FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash IN ({})",
            |query, hash| query.bind(hash.as_slice()),
            |row| {
                let hash: Vec<u8> = row.try_get("token_hash")?;
                let hash = SecretHash::try_from(hash.as_slice())
                    .map_err(|_| StoreError::Corrupt("a session hash".into()))?;
                live.insert(hash);
            }
        );
        Ok(live)
    }

    pub async fn delete_session(&self, hash: &[u8]) -> Result<(), StoreError> {
        execute!(self, "DELETE FROM sessions WHERE token_hash = $1", hash);
        Ok(())
    }

    /// Ends every session of a user; returns how many there were.
    pub async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError> {
        Ok(execute!(
            self,
            "DELETE FROM sessions WHERE user_id = $1",
            user.0
        ))
    }

    // ---- API tokens -----------------------------------------------------------

    pub async fn create_token(
        &self,
        user: UserId,
        name: &str,
        hash: &[u8],
    ) -> Result<ApiToken, StoreError> {
        let token = ApiToken {
            id: TokenId::new(),
            name: name.to_owned(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        execute!(
            self,
            map_err(conflict),
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            token.id.0,
            user.0,
            name,
            hash,
            token.created_at
        );
        Ok(token)
    }

    /// The token's user, if the token exists and is not revoked.
    pub async fn token(&self, hash: &[u8]) -> Result<Option<(User, TokenId)>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, t.id AS token_id FROM api_tokens t JOIN users u ON u.id = t.user_id {AGENCY_JOIN}
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
        );
        Ok(fetch_optional!(self, &sql, [hash], |row| {
            let id: Uuid = row.try_get("token_id")?;
            (user_from_row!(&row), TokenId(id))
        }))
    }

    /// Which of `ids` are still live (exist and are not revoked).
    pub async fn live_tokens(&self, ids: &[TokenId]) -> Result<HashSet<TokenId>, StoreError> {
        let mut live = HashSet::with_capacity(ids.len());
        in_batches!(
            self,
            ids,
            1,
            "SELECT id FROM api_tokens WHERE revoked_at IS NULL AND id IN ({})",
            |query, id| query.bind(id.0),
            |row| {
                live.insert(TokenId(row.try_get("id")?));
            }
        );
        Ok(live)
    }

    pub async fn list_tokens(&self, user: UserId) -> Result<Vec<ApiToken>, StoreError> {
        Ok(fetch_all!(
            self,
            "SELECT id, name, created_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY created_at",
            [user.0],
            |r| ApiToken {
                id: TokenId(r.try_get("id")?),
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            }
        ))
    }

    /// Revokes every live token of a user; returns their ids.
    pub async fn revoke_tokens_of(&self, user: UserId) -> Result<Vec<TokenId>, StoreError> {
        Ok(fetch_all!(
            self,
            "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id",
            [Utc::now(), user.0],
            |r| TokenId(r.try_get("id")?)
        ))
    }

    /// Revokes a token; with `owner`, only if it belongs to that user.
    pub async fn revoke_token(
        &self,
        id: TokenId,
        owner: Option<UserId>,
    ) -> Result<bool, StoreError> {
        Ok(execute!(
            self,
            "UPDATE api_tokens SET revoked_at = $1
             WHERE id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR user_id = $3)",
            Utc::now(),
            id.0,
            owner.map(|u| u.0)
        ) == 1)
    }
}
