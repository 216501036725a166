//! Reading protocols back: a meeting's current one, one by its hash or by
//! an export's SHA-256, each with its sign-offs and signature; and a
//! meeting's audit log.

use sqlx::Row;
use uuid::Uuid;

use super::{AuditEntry, PROTOCOL_COLUMNS, ProtocolRecord, Protocols, StoredProtocol};
use crate::{
    meeting::MeetingId,
    people::UserId,
    store::{
        StoreError,
        pool::{fetch_all, fetch_optional, with_pool},
    },
};

impl Protocols {
    /// The meeting's latest protocol, if it was ever locked.
    pub async fn current(&self, meeting: MeetingId) -> Result<Option<ProtocolRecord>, StoreError> {
        let protocol = with_pool!(self, p => latest_protocol!(p, meeting));
        self.record_of(protocol).await
    }

    /// A protocol by its hash.
    pub async fn by_hash(&self, hash: &str) -> Result<Option<ProtocolRecord>, StoreError> {
        let sql = format!("SELECT {PROTOCOL_COLUMNS} FROM protocols WHERE hash = $1");
        let protocol = fetch_optional!(self, &sql, [hash], protocol_from_row);
        self.record_of(protocol).await
    }

    /// The record of `protocol`, if there is one.
    async fn record_of(
        &self,
        protocol: Option<StoredProtocol>,
    ) -> Result<Option<ProtocolRecord>, StoreError> {
        match protocol {
            Some(protocol) => Ok(Some(self.record(protocol).await?)),
            None => Ok(None),
        }
    }

    /// A protocol by its id.
    async fn by_id(&self, id: Uuid) -> Result<Option<StoredProtocol>, StoreError> {
        let sql = format!("SELECT {PROTOCOL_COLUMNS} FROM protocols WHERE id = $1");
        Ok(fetch_optional!(self, &sql, [id], protocol_from_row))
    }

    async fn record(&self, protocol: StoredProtocol) -> Result<ProtocolRecord, StoreError> {
        with_pool!(self, p => {
            let meeting_state: String = sqlx::query_scalar("SELECT state FROM meetings WHERE id = $1")
                .bind(protocol.meeting.as_uuid())
                .fetch_one(p)
                .await?;
            let signoffs = signoffs_of!(p, protocol.id);
            let signature = match sqlx::query(
                "SELECT key_id, record, signature, verified_at FROM protocol_signatures WHERE protocol_id = $1")
                .bind(protocol.id)
                .fetch_optional(p)
                .await?
            {
                Some(row) => Some(signature_from_row!(&row)),
                None => None,
            };
            Ok(ProtocolRecord { protocol, meeting_state, signoffs, signature })
        })
    }

    /// The protocol an export file with this SHA-256 belongs to, with the
    /// file's stage and format.
    pub async fn export(
        &self,
        sha256: &str,
    ) -> Result<Option<(ProtocolRecord, String, String)>, StoreError> {
        let found: Option<(Uuid, String, String)> = with_pool!(self, p => {
            match sqlx::query("SELECT protocol_id, stage, format FROM protocol_exports WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(p)
                .await?
            {
                Some(row) => Some((row.try_get("protocol_id")?, row.try_get("stage")?, row.try_get("format")?)),
                None => None,
            }
        });
        let Some((id, stage, format)) = found else {
            return Ok(None);
        };
        let protocol = self
            .by_id(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("export of unknown protocol {id}")))?;
        Ok(Some((self.record(protocol).await?, stage, format)))
    }

    pub async fn audit(&self, meeting: MeetingId) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(fetch_all!(
            self,
            "SELECT id, at, actor_id, actor_name, action, reason, hash, via FROM audit
                 WHERE meeting_id = $1 ORDER BY id",
            [meeting.as_uuid()],
            |r| {
                let actor: Option<Uuid> = r.try_get("actor_id")?;
                AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor_id: actor.map(UserId),
                    actor_name: r.try_get("actor_name")?,
                    action: r.try_get("action")?,
                    reason: r.try_get("reason")?,
                    hash: r.try_get("hash")?,
                    via: r.try_get("via")?,
                }
            }
        ))
    }
}
