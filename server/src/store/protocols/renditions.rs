//! The exports of a protocol: each rendered once per (protocol, stage,
//! format) and kept, and the SHA-256 of every file handed out, remembered
//! so that the file can be verified later.

use chrono::Utc;
use sqlx::Row;
use uuid::Uuid;

use super::Protocols;
use crate::store::{
    StoreError,
    pool::{execute, with_pool},
};

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

impl Protocols {
    /// Remembers the SHA-256 of an export handed out (once per file).
    pub async fn record_export(
        &self,
        sha256: &str,
        protocol: Uuid,
        stage: &str,
        format: &str,
    ) -> Result<(), StoreError> {
        execute!(
            self,
            "INSERT INTO protocol_exports (sha256, protocol_id, stage, format, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
            sha256,
            protocol,
            stage,
            format,
            Utc::now()
        );
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
}
