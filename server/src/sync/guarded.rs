//! A meeting's document together with the section guard's index of it:
//! the one place where updates are checked and integrated. A client's
//! update is decided on by the guard before anything is applied; what the
//! document then integrated is encoded by yrs and returned, and that, not
//! the client's bytes, is what gets stored and broadcast, so every reader
//! (yrs on reload, Yjs in the browsers) decodes exactly what the server
//! applied.
//!
//! No sockets and no store here: the room drives it, and the guard's
//! differential fuzzer drives it directly.

use std::panic::AssertUnwindSafe;

use yrs::{Doc, ReadTxn, StateVector, Transact, Update, WriteTxn, updates::decoder::Decode};

use crate::{
    access::Principal,
    guard::{self, Decoded, Ownership, Refusal, SectionIndex},
    people::UserId,
    telemetry::metric,
};

/// The empty Yjs v1 update: no blocks, no deletions.
const EMPTY_UPDATE: [u8; 2] = [0, 0];

pub struct GuardedDoc {
    doc: Doc,
    index: SectionIndex,
    /// The guard's time per update (a handle, so recording it is not a
    /// registry lookup per update), taken for one update in
    /// `GUARD_TIMING_EVERY`.
    guard_seconds: metrics::Histogram,
    checked: u32,
}

/// Reading the clock twice costs about 120 ns on the development machine,
/// half of what the guard itself costs for a keystroke (about 220 ns): the
/// check is timed for one update in this many.
const GUARD_TIMING_EVERY: u32 = 16;

impl std::fmt::Debug for GuardedDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedDoc")
            .field("doc", &self.doc)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Default for GuardedDoc {
    /// Text is measured in UTF-16 units, as Yjs measures it. With yrs'
    /// default (UTF-8 bytes) a character split in the middle of a surrogate
    /// pair (both halves become U+FFFD, as in Yjs) changes the byte length,
    /// and the type's length bookkeeping underflows when the text is later
    /// deleted.
    fn default() -> Self {
        Self {
            doc: Doc::with_options(yrs::Options {
                offset_kind: yrs::OffsetKind::Utf16,
                ..yrs::Options::default()
            }),
            index: SectionIndex::default(),
            guard_seconds: metrics::histogram!(metric::GUARD_SECONDS),
            checked: 0,
        }
    }
}

/// A client's update that was applied.
#[derive(Debug)]
pub struct Applied {
    /// What the document integrated (Yjs v1), or `None` if nothing was new.
    pub canonical: Option<Vec<u8>>,
    /// Client ids the update wrote under that nobody held before.
    pub new_clients: Vec<u64>,
    /// Deletions of formatting marks in sections the sender may not write,
    /// and nothing else: not applied (see `guard::Accepted::ignore`).
    pub ignored: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The guard refused the update; nothing was applied.
    #[error(transparent)]
    Refused(Refusal),
    /// Part of the update was integrated before yrs found it could not
    /// integrate the rest (it was left pending, which the guard should have
    /// foreseen): the document must be rebuilt from the store.
    #[error("{0} (the document must be rebuilt)")]
    RefusedAfterApplying(Refusal),
    /// yrs failed or panicked half-way: the document must be rebuilt.
    #[error("the update could not be applied: {0}")]
    Invalid(String),
}

impl Rejected {
    /// Whether the in-memory document may now hold part of the update.
    pub fn must_rebuild(&self) -> bool {
        !matches!(self, Rejected::Refused(_))
    }
}

impl GuardedDoc {
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// Adds a trusted update (stored history, the server's own edits):
    /// applied and indexed without a permission check. Returns false if yrs
    /// could not decode or apply it.
    pub fn apply_trusted(&mut self, update: &[u8]) -> bool {
        let Ok(decoded) = Update::decode_v1(update) else {
            return false;
        };
        let applied = self.doc.transact_mut().apply_update(decoded).is_ok();
        if let Ok(structure) = guard::decode(update) {
            self.index.learn(&structure);
        }
        applied
    }

    /// Applies a server edit made inside a transaction and returns its
    /// update.
    pub fn edit(&mut self, edit: impl FnOnce(&mut yrs::TransactionMut)) -> Vec<u8> {
        let update = {
            let mut txn = self.doc.transact_mut();
            edit(&mut txn);
            txn.encode_update_v1()
        };
        if let Ok(structure) = guard::decode(&update) {
            self.index.learn(&structure);
        }
        update
    }

    /// Drops blocks that stored history left pending (only history stored
    /// before the guard refused clock gaps can); returns whether any were.
    pub fn drop_pending(&mut self) -> bool {
        self.doc.transact_mut().prune_pending().is_some()
    }

    /// What a refused update builds on that the document lacks (see
    /// `SectionIndex::missing`): an update refused as a gap or as referring
    /// to unknown items may wait for it (`super::waiting`).
    pub fn missing(&self, structure: &Decoded) -> Option<guard::Missing> {
        self.index.missing(structure)
    }

    /// Whether the document holds what `missing` named.
    pub fn holds(&self, missing: &guard::Missing) -> bool {
        self.index.holds(missing)
    }

    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    /// Everything the client with state `sv` lacks.
    pub fn diff(&self, sv: &StateVector) -> Vec<u8> {
        self.doc.transact().encode_state_as_update_v1(sv)
    }

    /// Checks a client's update (when `guard` is on) and applies it.
    /// `owner_of` says which person holds each client id.
    pub fn apply_client(
        &mut self,
        who: &Principal,
        ownership: &Ownership,
        owner_of: impl Fn(u64) -> Option<UserId>,
        update: Update,
        structure: &Decoded,
        guard: bool,
    ) -> Result<Applied, Rejected> {
        let accepted = if guard {
            self.checked = self.checked.wrapping_add(1);
            let started = (self.checked % GUARD_TIMING_EVERY == 0).then(std::time::Instant::now);
            let verdict = self
                .index
                .check(who, ownership, structure, owner_of)
                .and_then(
                    |accepted| match self.index.misordered(&self.doc, structure) {
                        Some(refusal) => Err(refusal),
                        None => Ok(accepted),
                    },
                );
            if let Some(started) = started {
                self.guard_seconds.record(started.elapsed().as_secs_f64());
            }
            let accepted = verdict.map_err(Rejected::Refused)?;
            if accepted.ignore {
                return Ok(Applied {
                    canonical: None,
                    new_clients: Vec::new(),
                    ignored: true,
                });
            }
            Some(accepted)
        } else {
            None
        };
        // yrs may fail (or, on hostile input, panic) half-way through
        // integrating an update; the document can then no longer be trusted.
        let applied = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.doc.transact_mut();
            txn.apply_update(update)?;
            // Anything left pending must not wait in the document for a
            // later update to complete it unchecked.
            if txn.prune_pending().is_some() {
                return Ok(None);
            }
            let canonical = txn.encode_update_v1();
            let deleted: Vec<(u64, u32, u32)> = txn
                .delete_set()
                .iter()
                .flat_map(|(client, ranges)| {
                    let client = client.get();
                    ranges
                        .iter()
                        .map(move |r| (client, r.start, r.end - r.start))
                })
                .collect();
            Ok::<_, yrs::error::UpdateError>(Some((canonical, deleted)))
        }));
        match applied {
            Ok(Ok(Some((canonical, deleted)))) => {
                let new_clients = match accepted {
                    Some(accepted) => {
                        self.index.record(&accepted);
                        accepted.new_clients
                    }
                    None => Vec::new(),
                };
                if guard {
                    // What the document deleted, cascades into deleted
                    // types included, rather than what the client listed.
                    self.index.record_deletes(deleted);
                }
                Ok(Applied {
                    canonical: (canonical != EMPTY_UPDATE).then_some(canonical),
                    new_clients,
                    ignored: false,
                })
            }
            Ok(Ok(None)) => Err(Rejected::RefusedAfterApplying(Refusal::UnknownItems)),
            Ok(Err(e)) => Err(Rejected::Invalid(e.to_string())),
            Err(_) => Err(Rejected::Invalid("panic while integrating".into())),
        }
    }
}
