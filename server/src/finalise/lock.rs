//! Lock, reopen and reject: the changes between draft and locked, each
//! run through the meeting's room, and the checks that decide whether a
//! protocol may be locked (a draft, someone to verify it, archivable) and
//! whether a verifier acts on the version they were shown.

use protokoll_render::{Protocol, limits, to_canonical_json};
use yrs::Transact;

use super::{
    Actor, FinaliseError, Lifecycle, ProtocolView, canonical, exports::typeset, rfc3339, sha256_hex,
};
use crate::{
    document::{write_draft, write_locked},
    meeting::MeetingId,
    people::parse_reason,
    store::{
        Committed, LockPlan, LockSnapshot, StoreError, StoredDocument, StoredProtocol,
        StoredSignoff, now_seconds,
    },
    sync::Transition,
};

impl Lifecycle<'_> {
    /// Locks a draft. Everything the room accepted before is in the text;
    /// nothing is accepted after.
    pub async fn lock(
        &self,
        meeting: MeetingId,
        actor: &Actor,
    ) -> Result<ProtocolView, FinaliseError> {
        actor.may_lock("only the meeting's secretary may lock the protocol")?;
        let db = self.db.clone();
        let audit = actor.audit();
        let job = Box::pin(async move {
            let at = now_seconds();
            let at_text = rfc3339(at);
            let id = meeting.to_string();
            // Typeset first, outside the transaction: on SQLite it holds the
            // database's write lock, and Typst may take seconds. The room
            // holds this meeting's updates back meanwhile, so the locked
            // text is normally what was typeset; should another node's
            // update have slipped in, the transaction typesets again.
            let prepared = match db.protocols.lock_snapshot(meeting).await {
                Ok(Some(snapshot)) => match prepare(&id, snapshot, &at_text, &audit.name) {
                    Ok(lock) => {
                        let renditions = match typeset(&lock.protocol, &lock.hash).await {
                            Ok(r) => r,
                            Err(e) => return (Err(e), None),
                        };
                        Some((lock.hash, renditions))
                    }
                    Err(e) => return (Err(e), None),
                },
                Ok(None) => return (Err(FinaliseError::NotFound), None),
                Err(e) => return (Err(e.into()), None),
            };
            let locked_by = audit.name.clone();
            let locked = db
                .protocols
                .lock(meeting, &audit, at, |snapshot| async move {
                    let lock = prepare(&id, snapshot, &at_text, &locked_by)?;
                    let renditions = match prepared {
                        Some((hash, renditions)) if hash == lock.hash => renditions,
                        _ => typeset(&lock.protocol, &lock.hash).await?,
                    };
                    let doc_update = {
                        let mut txn = lock.doc.transact_mut();
                        write_locked(&mut txn, &lock.hash, &at_text);
                        txn.encode_update_v1()
                    };
                    Ok(LockPlan {
                        canonical: lock.canonical,
                        hash: lock.hash,
                        doc_update,
                        renditions,
                    })
                })
                .await;
            transition(locked.map_err(Into::into), true)
        });
        self.through_room(meeting, job).await
    }

    /// The secretary takes a locked protocol back to draft, while nobody
    /// has signed it off.
    pub async fn reopen(
        &self,
        meeting: MeetingId,
        actor: &Actor,
    ) -> Result<ProtocolView, FinaliseError> {
        actor.may_lock("only the meeting's secretary may reopen the protocol")?;
        self.unlock(meeting, actor, "reopen", None, |state, _, signoffs| {
            if state != "locked" {
                return Err(FinaliseError::Conflict(
                    "only a locked protocol that nobody has signed off can be reopened",
                ));
            }
            if !signoffs.is_empty() {
                return Err(FinaliseError::Conflict(
                    "someone has signed off already: only a rejection by the chair \
                     or a justerare can send it back now",
                ));
            }
            Ok(())
        })
        .await
    }

    /// The chair or a justerare sends a locked protocol back to draft.
    pub async fn reject(
        &self,
        meeting: MeetingId,
        actor: &Actor,
        hash: &str,
        reason: &str,
    ) -> Result<ProtocolView, FinaliseError> {
        actor.verifier("only the chair and the justerare may reject the protocol")?;
        let reason = parse_reason(reason).map_err(|e| FinaliseError::Invalid(e.0))?;
        let user = actor.user.id.to_string();
        let hash = hash.to_owned();
        self.unlock(
            meeting,
            actor,
            "reject",
            Some(reason),
            move |state, protocol, _| {
                let protocol = locked_version(state, protocol, &hash)?;
                is_verifier(&protocol.canonical, &user)
            },
        )
        .await
    }

    /// Takes a locked protocol back to draft through the meeting's room (a
    /// reopening or a rejection, the audit's `action`), if `check` lets it
    /// seeing the state, the current protocol and its sign-offs.
    async fn unlock(
        &self,
        meeting: MeetingId,
        actor: &Actor,
        action: &'static str,
        reason: Option<String>,
        check: impl FnOnce(&str, Option<&StoredProtocol>, &[StoredSignoff]) -> Result<(), FinaliseError>
        + Send
        + 'static,
    ) -> Result<ProtocolView, FinaliseError> {
        let db = self.db.clone();
        let audit = actor.audit();
        let job = Box::pin(async move {
            let result = db
                .protocols
                .unlock(
                    meeting,
                    &audit,
                    action,
                    reason.as_deref(),
                    check,
                    draft_update,
                )
                .await;
            transition(result.map_err(Into::into), false)
        });
        self.through_room(meeting, job).await
    }
}

/// A protocol about to be locked: built from what the lock reads.
struct Prepared {
    protocol: Protocol,
    canonical: String,
    hash: String,
    doc: yrs::Doc,
}

/// Builds the canonical protocol from what a lock reads, and checks that
/// it may be locked: a draft, someone to verify it, within the bounds of
/// what can be archived.
fn prepare(
    meeting: &str,
    mut snapshot: LockSnapshot,
    at: &str,
    locked_by: &str,
) -> Result<Prepared, FinaliseError> {
    if snapshot.state != "draft" {
        return Err(FinaliseError::Conflict("the protocol is already locked"));
    }
    let doc = canonical::build_document(std::mem::take(&mut snapshot.document));
    let protocol = canonical::protocol(meeting, &snapshot, &doc, at, locked_by)
        .map_err(FinaliseError::Unarchivable)?;
    if protocol.verifiers.is_empty() {
        return Err(FinaliseError::Conflict(
            "nobody could verify this protocol: add the chair or a justerare \
             to the meeting before locking",
        ));
    }
    limits::check(&protocol).map_err(FinaliseError::Unarchivable)?;
    let canonical =
        to_canonical_json(&protocol).map_err(|e| FinaliseError::Render(e.to_string()))?;
    let hash = sha256_hex(canonical.as_bytes());
    Ok(Prepared {
        protocol,
        canonical,
        hash,
        doc,
    })
}

const STALE: &str = "the protocol has changed since you saw it: reload and check the new hash";

/// The locked protocol a verifier acts on, if it is still the version they
/// were shown (`hash`): a verified, unlocked or since relocked protocol is a
/// conflict.
pub(super) fn locked_version<'a>(
    state: &str,
    protocol: Option<&'a StoredProtocol>,
    hash: &str,
) -> Result<&'a StoredProtocol, FinaliseError> {
    let protocol = match (state, protocol) {
        ("locked", Some(p)) => p,
        ("verified", _) => {
            return Err(FinaliseError::Conflict("the protocol is verified already"));
        }
        _ => return Err(FinaliseError::Conflict("the protocol is not locked")),
    };
    if protocol.hash != hash {
        return Err(FinaliseError::Conflict(STALE));
    }
    Ok(protocol)
}

pub(super) fn is_verifier(canonical: &str, user: &str) -> Result<(), FinaliseError> {
    let protocol: Protocol = serde_json::from_str(canonical)
        .map_err(|e| StoreError::Corrupt(format!("canonical protocol: {e}")))?;
    if protocol.verifiers.iter().any(|v| v.id == user) {
        Ok(())
    } else {
        Err(FinaliseError::Forbidden(
            "you are not among those who verify this protocol",
        ))
    }
}

/// The document update that announces "draft" again.
fn draft_update(stored: StoredDocument) -> Vec<u8> {
    let doc = canonical::build_document(stored);
    let mut txn = doc.transact_mut();
    write_draft(&mut txn);
    txn.encode_update_v1()
}

/// What the room does after a committed change.
fn transition(
    result: Result<Committed, FinaliseError>,
    locked: bool,
) -> (Result<(), FinaliseError>, Option<Transition>) {
    match result {
        Ok(committed) => (
            Ok(()),
            Some(Transition {
                locked,
                update: committed.doc_update,
            }),
        ),
        Err(e) => (Err(e), None),
    }
}
