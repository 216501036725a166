//! Opening a room: its document read from the store and rebuilt on a
//! thread of its own, while joining clients are answered from the stored
//! snapshot where it suffices (`Warming`); and reading the store again
//! later (a rebuild, the log past a position).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};
use yrs::updates::encoder::Encode;

use super::{
    ClientOwners, LockedFlag, MAX_BATCH, Node, Room, RoomContext, RoomMsg, node::READ_TIMEOUT,
};
use crate::{
    guard::Ownership,
    meeting::MeetingId,
    store::{DynStore, Seq, StoreError, StoredDocument},
    sync::{
        awareness::AwarenessState,
        guarded::GuardedDoc,
        peer::PeerId,
        protocol::{self, Inbound},
    },
    telemetry::metric,
};

/// A stored document being rebuilt in the background. Until it is ready the
/// room answers what the stored bytes alone can answer, when no logged
/// update follows the stored snapshot (it is then exactly the document's
/// whole state): a client that has nothing (an empty state vector) gets the
/// snapshot as its sync step 2; a client that holds part of the meeting
/// gets what it lacks, computed from the snapshot's bytes on a blocking
/// thread (`yrs::diff_updates_v1`, without integrating anything). Everything
/// else waits for the rebuild and is then processed in arrival order. A
/// meeting with a long history thus opens in the time it takes to read one
/// row, not to rebuild the document.
pub(super) struct Warming {
    build: oneshot::Receiver<Loaded>,
    pristine: Option<Bytes>,
    started: Instant,
}

/// What a room keeps while its document is rebuilt.
#[derive(Default)]
struct Early {
    /// Messages that wait for the rebuild, in arrival order.
    deferred: Vec<RoomMsg>,
    /// Clients that joined before there was a state vector to send them.
    awaiting_step_1: Vec<PeerId>,
    /// Diffs of the stored snapshot being computed, one per client at most.
    diffs: tokio::task::JoinSet<EarlyDiff>,
    diffing: HashSet<PeerId>,
}

/// A client's sync step 1 messages and the answers computed for them.
type EarlyDiff = (PeerId, Vec<Inbound>, Result<Vec<Bytes>, String>);

/// Diffs of the stored snapshot computed at once for clients that hold part
/// of a meeting while it is rebuilt; more wait for the rebuild (each costs
/// about a decoding of the snapshot).
const MAX_EARLY_DIFFS: usize = 4;

/// Nice 10: the thread gets about a tenth of a core another busy thread
/// wants, and all of an idle one. (Only a thread's own priority changes:
/// `setpriority` with a thread id.)
fn lower_this_threads_priority() {
    // SAFETY: plain system calls on the calling thread's own id.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// A document rebuilt from the store.
pub(super) struct Loaded {
    doc: GuardedDoc,
    last_seq: Seq,
    snapshot_upto: Seq,
    log_len: u64,
    /// The stored snapshot's length plus the logged updates' lengths.
    bytes: u64,
}

pub(super) async fn load(store: &DynStore, id: MeetingId) -> Result<Loaded, StoreError> {
    let stored = store.load_document(id).await?;
    // Applying a long log is CPU work; keep it off the async workers.
    tokio::task::spawn_blocking(move || build_doc(id, stored))
        .await
        .map_err(|e| StoreError::Corrupt(format!("document rebuild panicked: {e}")))
}

fn build_doc(id: MeetingId, stored: StoredDocument) -> Loaded {
    let mut doc = GuardedDoc::default();
    let last_seq = stored.last_seq();
    let snapshot_upto = stored.snapshot.as_ref().map_or(0, |s| s.upto);
    let log_len = stored.updates.len() as u64;
    let bytes = stored.snapshot.as_ref().map_or(0, |s| s.state.len() as u64)
        + stored
            .updates
            .iter()
            .map(|(_, u)| u.len() as u64)
            .sum::<u64>();
    // One transaction per stored update: yrs integrates a long run of
    // updates inside a single transaction in quadratic time (100,000 typing
    // updates: ~20 s against ~0.2 s this way).
    let snapshot = stored.snapshot.map(|s| (s.upto, s.state));
    for (seq, data) in snapshot.into_iter().chain(stored.updates) {
        // Stored updates were validated when accepted; a failure here means
        // a damaged row, which must not keep the rest from loading.
        if !doc.apply_trusted(&data) {
            error!(meeting_id = %id, seq, "stored update does not decode or apply");
        }
    }
    // History stored before the guard refused clock gaps may leave blocks
    // pending; they must not wait in the document for a later update to
    // complete them unchecked.
    if doc.drop_pending() {
        warn!(meeting_id = %id, "stored history left blocks pending; dropped them");
    }
    Loaded {
        doc,
        last_seq,
        snapshot_upto,
        log_len,
        bytes,
    }
}

pub(super) async fn load_ownership(
    ctx: &RoomContext,
    id: MeetingId,
) -> Result<Ownership, StoreError> {
    Ok(Ownership::from_sections(ctx.dir.sections(id).await?))
}

/// What the store holds past log position `after`: the logged updates
/// after it, or the snapshot and what follows it if the log no longer
/// holds them all; given up after `READ_TIMEOUT`.
pub(super) async fn read_after(
    store: &DynStore,
    id: MeetingId,
    after: Seq,
) -> Result<Result<StoredDocument, StoreError>, tokio::time::error::Elapsed> {
    tokio::time::timeout(READ_TIMEOUT, async {
        match store.log_after(id, after).await? {
            Some(updates) => Ok(StoredDocument {
                snapshot: None,
                updates,
            }),
            None => store.load_after(id, after).await,
        }
    })
    .await
}

impl Room {
    pub(in crate::sync) async fn open(
        id: MeetingId,
        ctx: Arc<RoomContext>,
        flag: LockedFlag,
    ) -> Result<Room, StoreError> {
        let started = Instant::now();
        // Subscribed before loading: what is published meanwhile arrives
        // or is read from the log after the subscription is up.
        let node = ctx.cluster.as_ref().map(|cluster| Node {
            cluster: cluster.clone(),
            _held: cluster.hold(id),
            ahead: BTreeMap::new(),
            hole_since: None,
            read_at: None,
            read_past: None,
            state_read: None,
            state_due: false,
            known_head: 0,
            bindings: Vec::new(),
            tainted: false,
            refused: HashSet::new(),
        });
        let stored = ctx.store.load_document(id).await?;
        let ownership = load_ownership(&ctx, id).await?;
        let locked = ctx
            .dir
            .get_meeting(id)
            .await?
            .is_some_and(|m| m.state != crate::meeting::ProtocolState::Draft);
        flag.set(locked);
        let pristine = match &stored.snapshot {
            Some(snapshot) if stored.updates.is_empty() => {
                Some(Bytes::copy_from_slice(&snapshot.state))
            }
            _ => None,
        };
        let last_seq = stored.last_seq();
        let snapshot_upto = stored.snapshot.as_ref().map_or(0, |s| s.upto);
        let log_len = stored.updates.len() as u64;
        // Applying a long log is CPU work: keep it off the async workers, on
        // a thread of its own at a lower priority, so that on a busy core
        // it does not slow down answering the clients that wait meanwhile.
        let (built, build) = oneshot::channel();
        std::thread::Builder::new()
            .name("room-rebuild".into())
            .spawn(move || {
                lower_this_threads_priority();
                let _ = built.send(build_doc(id, stored));
            })
            .map_err(|e| StoreError::Corrupt(format!("starting the rebuild: {e}")))?;
        Ok(Room {
            id,
            ctx,
            doc: GuardedDoc::default(),
            awareness: AwarenessState::default(),
            owners: ClientOwners::default(),
            speakers: HashMap::new(),
            peers: HashMap::new(),
            last_seq,
            snapshot_upto,
            since_snapshot: log_len,
            snapshot_task: None,
            ownership,
            warming: Some(Warming {
                build,
                pristine,
                started,
            }),
            locked: flag,
            node,
            doc_bytes: 0,
            deleted_since_snapshot: false,
            remeasure: false,
            last_remeasure: None,
            waiting: HashSet::new(),
            replies: Vec::new(),
            broken: false,
        })
    }

    /// Until the rebuilt document is in place: registers joining clients,
    /// answers empty state vectors from the stored snapshot and keeps every
    /// other message for later. Returns false if the rebuild failed; the
    /// room's clients are then closed and the room must end.
    pub(super) async fn warm_up(
        &mut self,
        warming: Warming,
        rx: &mut mpsc::Receiver<RoomMsg>,
    ) -> bool {
        let Warming {
            mut build,
            pristine,
            started,
        } = warming;
        let mut early = Early::default();
        let mut batch = Vec::new();
        let mut open = true;
        let built = loop {
            tokio::select! {
                built = &mut build => break built,
                Some(answer) = early.diffs.join_next(), if !early.diffs.is_empty() => {
                    self.send_early_diff(answer, &mut early.deferred);
                }
                n = rx.recv_many(&mut batch, MAX_BATCH), if open => {
                    open = n > 0;
                    for msg in batch.drain(..) {
                        self.early(msg, pristine.as_ref(), &mut early);
                    }
                }
            }
        };
        // Answers still being computed go out before anything deferred is
        // processed, in the order the clients asked.
        while let Some(answer) = early.diffs.join_next().await {
            self.send_early_diff(answer, &mut early.deferred);
        }
        let Early {
            deferred,
            awaiting_step_1,
            ..
        } = early;
        let loaded = match built {
            Ok(loaded) => loaded,
            Err(e) => {
                error!(meeting_id = %self.id, error = %e, "rebuilding the document failed");
                self.close_all("the document could not be loaded");
                return false;
            }
        };
        metrics::histogram!(metric::ROOM_LOAD_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(metric::DOCUMENT_BYTES).record(loaded.bytes as f64);
        info!(
            meeting_id = %self.id,
            log_len = loaded.log_len,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "room opened"
        );
        self.install(loaded);
        // The server's own sync step 1, held back from clients that joined
        // while there was no state vector to send.
        let step_1 = protocol::encode_sync_step_1(&self.doc.state_vector());
        for peer in awaiting_step_1 {
            if self.peers.contains_key(&peer) {
                self.send(peer, step_1.clone());
            }
        }
        self.maybe_snapshot();
        if !deferred.is_empty() {
            self.process(deferred.into_iter()).await;
        }
        true
    }

    /// One message while the document is rebuilt (see `Warming`).
    fn early(&mut self, msg: RoomMsg, pristine: Option<&Bytes>, early: &mut Early) {
        match msg {
            RoomMsg::Join { link, joined } => {
                if let Some(peer) = self.admit(link) {
                    // Sent once the document is in place.
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.asked += 1;
                    }
                    early.awaiting_step_1.push(peer);
                }
                let _ = joined.send(());
            }
            RoomMsg::Inbound { peer, messages }
                if self.peers.contains_key(&peer)
                    && !messages.is_empty()
                    && messages.iter().all(|m| matches!(m, Inbound::SyncStep1(_))) =>
            {
                let Some(state) = pristine else {
                    early.deferred.push(RoomMsg::Inbound { peer, messages });
                    return;
                };
                let everything = messages
                    .iter()
                    .all(|m| matches!(m, Inbound::SyncStep1(sv) if sv.is_empty()));
                if everything {
                    let step_2 = protocol::encode_sync_step_2(state);
                    for _ in &messages {
                        self.send(peer, step_2.clone());
                    }
                } else if early.diffs.len() < MAX_EARLY_DIFFS && early.diffing.insert(peer) {
                    // What this client lacks, from the snapshot's bytes.
                    let state = state.clone();
                    early.diffs.spawn_blocking(move || {
                        let answers = messages
                            .iter()
                            .map(|m| match m {
                                Inbound::SyncStep1(sv) => {
                                    yrs::diff_updates_v1(&state, &sv.encode_v1())
                                        .map(|diff| protocol::encode_sync_step_2(&diff))
                                        .map_err(|e| e.to_string())
                                }
                                _ => unreachable!("only sync step 1 is answered early"),
                            })
                            .collect::<Result<Vec<_>, _>>();
                        (peer, messages, answers)
                    });
                } else {
                    early.deferred.push(RoomMsg::Inbound { peer, messages });
                }
            }
            other => early.deferred.push(other),
        }
    }

    /// Sends a diff computed while the document was rebuilt; if it could
    /// not be computed, the client's messages wait for the rebuild.
    fn send_early_diff(
        &mut self,
        answer: Result<EarlyDiff, tokio::task::JoinError>,
        deferred: &mut Vec<RoomMsg>,
    ) {
        match answer {
            Ok((peer, _, Ok(frames))) => {
                for frame in frames {
                    self.send(peer, frame);
                }
            }
            Ok((peer, messages, Err(e))) => {
                warn!(meeting_id = %self.id, error = %e, "diffing the stored snapshot failed");
                deferred.push(RoomMsg::Inbound { peer, messages });
            }
            Err(e) => {
                warn!(meeting_id = %self.id, error = %e, "diffing the stored snapshot failed")
            }
        }
    }

    /// Puts a document rebuilt from the store in place.
    pub(super) fn install(&mut self, loaded: Loaded) {
        self.doc = loaded.doc;
        self.last_seq = loaded.last_seq;
        self.snapshot_upto = loaded.snapshot_upto;
        self.since_snapshot = loaded.log_len;
        self.doc_bytes = loaded.bytes;
        self.deleted_since_snapshot = loaded.log_len > 0;
    }

    /// Replaces the in-memory document with the stored one.
    pub(super) async fn reload(&mut self) {
        self.await_snapshot().await;
        match load(&self.ctx.store, self.id).await {
            Ok(loaded) => {
                info!(meeting_id = %self.id, "document rebuilt from the store");
                self.install(loaded);
            }
            Err(e) => {
                // Keep serving is not an option with a document we cannot
                // vouch for: close everyone; the room unloads when idle and
                // the next join tries loading again.
                error!(meeting_id = %self.id, error = %e, "document could not be rebuilt");
                self.close_all("storage unavailable, reconnect");
                self.broken = true;
            }
        }
    }
}
