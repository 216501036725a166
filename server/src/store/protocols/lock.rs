//! Locking a draft and taking a locked protocol back to draft (a
//! reopening or a rejection): what a lock reads, in one transaction that
//! holds the meeting, and what it writes.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{
    AuditActor, ChangeRefused, Committed, NewRendition, Protocols, StoredProtocol, StoredSignoff,
    now_seconds,
};
use crate::{
    meeting::MeetingId,
    people::{SectionOwner, UserId},
    store::{
        StoreError, StoredDocument,
        pool::{begin_on_meeting, read_document, with_pool},
    },
};

/// What a lock reads inside its transaction.
#[derive(Debug)]
pub struct LockSnapshot {
    pub state: String,
    pub title: String,
    pub body: String,
    pub date: Option<String>,
    pub time: Option<String>,
    pub place: String,
    /// (user id, name, role, agency name)
    pub participants: Vec<(UserId, String, String, Option<String>)>,
    /// (section id, number, title, owner's name), in agenda order.
    pub sections: Vec<(String, String, String, String)>,
    pub document: StoredDocument,
    /// The version the new protocol gets.
    pub next_version: i32,
}

/// What the caller decided to store for a lock.
pub struct LockPlan {
    pub canonical: String,
    pub hash: String,
    /// A document update (writing the `protocol` map), appended while the
    /// meeting is still a draft, in the same transaction.
    pub doc_update: Vec<u8>,
    /// The exports of the locked protocol, stored with it.
    pub renditions: Vec<NewRendition>,
}

/// Reads everything a lock shows, on a transaction.
macro_rules! read_lock_snapshot {
    ($tx:ident, $meeting:expr, $state:expr) => {{
        let meeting = $meeting;
        let state = $state;
        let row = sqlx::query(
            "SELECT title, body, meeting_date, start_time, place FROM meetings WHERE id = $1",
        )
        .bind(meeting.as_uuid())
        .fetch_one(&mut *$tx)
        .await?;
        let participants = sqlx::query(
            "SELECT u.id, u.display_name, pt.role, a.name AS agency
             FROM participants pt JOIN users u ON u.id = pt.user_id
             LEFT JOIN agencies a ON a.id = u.agency_id
             WHERE pt.meeting_id = $1",
        )
        .bind(meeting.as_uuid())
        .fetch_all(&mut *$tx)
        .await?
        .iter()
        .map(|r| {
            Ok((
                UserId(r.try_get("id")?),
                r.try_get("display_name")?,
                r.try_get("role")?,
                r.try_get("agency")?,
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let sections = sqlx::query(
            "SELECT s.id, s.number, s.title, s.owner_kind, a.name AS agency, u.display_name AS person
             FROM sections s
             LEFT JOIN agencies a ON a.id = s.owner_agency_id
             LEFT JOIN users u ON u.id = s.owner_user_id
             WHERE s.meeting_id = $1 ORDER BY s.position",
        )
        .bind(meeting.as_uuid())
        .fetch_all(&mut *$tx)
        .await?
        .iter()
        .map(|r| {
            let kind: String = r.try_get("owner_kind")?;
            let owner: Option<String> = match kind.as_str() {
                "agency" => r.try_get("agency")?,
                "user" => r.try_get("person")?,
                _ => Some(SectionOwner::SECRETARY_NAME.to_owned()),
            };
            Ok((
                r.try_get("id")?,
                r.try_get("number")?,
                r.try_get("title")?,
                owner.unwrap_or_default(),
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let document = read_document!($tx, meeting, after: None, seq: "mseq");
        let last: Option<i32> =
            sqlx::query_scalar("SELECT MAX(version) FROM protocols WHERE meeting_id = $1")
                .bind(meeting.as_uuid())
                .fetch_one(&mut *$tx)
                .await?;
        let snapshot = LockSnapshot {
            state,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            date: row.try_get("meeting_date")?,
            time: row.try_get("start_time")?,
            place: row.try_get("place")?,
            participants,
            sections,
            document,
            next_version: last.unwrap_or(0) + 1,
        };
        snapshot
    }};
}

impl Protocols {
    /// What a lock would read now, without taking any lock: the finaliser
    /// typesets the protocol from it before the lock's transaction, so that
    /// the transaction (on SQLite, the database's write lock) is not held
    /// while Typst works. None: no such meeting.
    pub async fn lock_snapshot(
        &self,
        meeting: MeetingId,
    ) -> Result<Option<LockSnapshot>, StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM meetings WHERE id = $1")
                .bind(meeting.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(state) = state else {
                return Ok(None);
            };
            let snapshot = read_lock_snapshot!(tx, meeting, state);
            tx.rollback().await?;
            Ok(Some(snapshot))
        })
    }

    /// Locks a draft: reads everything the protocol shows inside the
    /// transaction, lets `plan` build the canonical protocol, its
    /// renditions and the document update, then appends the update, stores
    /// the protocol and its renditions, flips the state and writes the
    /// audit row, all or nothing.
    pub async fn lock<E, F>(
        &self,
        meeting: MeetingId,
        actor: &AuditActor,
        at: DateTime<Utc>,
        plan: impl FnOnce(LockSnapshot) -> F,
    ) -> Result<Committed, ChangeRefused<E>>
    where
        F: std::future::Future<Output = Result<LockPlan, E>>,
    {
        begin_on_meeting!(self, meeting, |tx, state| {
            let Some(state) = state else {
                return Err(ChangeRefused::NoMeeting);
            };
            let snapshot = read_lock_snapshot!(tx, meeting, state);
            let version = snapshot.next_version;
            let planned = plan(snapshot).await.map_err(ChangeRefused::Refused)?;
            // The last append: the meeting is still a draft here.
            let seq = append_update!(tx, meeting, &planned.doc_update);
            sqlx::query("UPDATE meetings SET state = 'locked' WHERE id = $1")
                .bind(meeting.as_uuid())
                .execute(&mut *tx)
                .await?;
            let protocol = StoredProtocol {
                id: Uuid::new_v4(),
                meeting,
                version,
                hash: planned.hash,
                canonical: planned.canonical,
                locked_at: at,
            };
            sqlx::query(
                "INSERT INTO protocols (id, meeting_id, version, hash, canonical, locked_at, locked_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(protocol.id)
            .bind(meeting.as_uuid())
            .bind(version)
            .bind(&protocol.hash)
            .bind(&protocol.canonical)
            .bind(at)
            .bind(actor.id.map(|u| u.0))
            .execute(&mut *tx)
            .await?;
            for r in &planned.renditions {
                insert_rendition!(tx, protocol.id, r, at);
            }
            insert_audit!(
                tx,
                meeting,
                at,
                actor,
                "lock",
                None::<String>,
                Some(&protocol.hash)
            );
            tx.commit().await?;
            Ok(Committed {
                protocol,
                doc_update: Some((planned.doc_update, seq)),
            })
        })
    }

    /// Takes a locked protocol back to draft (a reopening or a rejection):
    /// `check` sees the current protocol and its sign-offs and may refuse;
    /// `update` builds the document update from the stored document, which
    /// is appended after the state is draft again.
    pub async fn unlock<E>(
        &self,
        meeting: MeetingId,
        actor: &AuditActor,
        action: &'static str,
        reason: Option<&str>,
        check: impl FnOnce(&str, Option<&StoredProtocol>, &[StoredSignoff]) -> Result<(), E>,
        update: impl FnOnce(StoredDocument) -> Vec<u8>,
    ) -> Result<Committed, ChangeRefused<E>> {
        let at = now_seconds();
        begin_on_meeting!(self, meeting, |tx, state| {
            let (protocol, _) = checked_protocol!(tx, meeting, state, check);
            sqlx::query("UPDATE meetings SET state = 'draft' WHERE id = $1")
                .bind(meeting.as_uuid())
                .execute(&mut *tx)
                .await?;
            let document = read_document!(tx, meeting, after: None, seq: "mseq");
            let data = update(document);
            let seq = append_update!(tx, meeting, &data);
            insert_audit!(tx, meeting, at, actor, action, reason, Some(&protocol.hash));
            tx.commit().await?;
            Ok(Committed {
                protocol,
                doc_update: Some((data, seq)),
            })
        })
    }
}
