//! A room: one meeting's live document, shared by all its connections.
//!
//! A room is a single task that owns the `yrs::Doc`, so updates are applied
//! one at a time without locks. It works in batches: it takes every message
//! that has queued up, applies the updates, hands them to the group-commit
//! writer in one piece, and only after the commit sends anything that depends
//! on them (broadcasts and sync replies). That is what makes an update durable
//! before any other client can see it.
//!
//! The room must never wait for a client: outgoing frames go into bounded
//! per-connection queues, and a client whose queue is full is disconnected
//! with a reason.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use yrs::{
    ClientID, StateVector,
    sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry},
    updates::encoder::Encode,
};

use super::{
    Rooms,
    awareness::{self, AwarenessState},
    guarded::{GuardedDoc, Rejected},
    limits::{count_trip, limit},
    peer::{CloseReason, PeerId, PeerLink, QueueLimits, Queued, SERVER_PEER, close_code},
    protocol::{self, Inbound, IncomingAwareness, IncomingUpdate},
    waiting::{self, Waiting},
};
use crate::{
    access::Principal,
    cluster::{self, Cluster, Remote, RemoteUpdates},
    guard::{self, Ownership},
    meeting::MeetingId,
    people::UserId,
    store::{CommitWriter, CommitWriterError, DynStore, Seq, StoreError, StoredDocument},
    telemetry::metric,
};

mod node;

/// Most messages a room takes from its queue per batch (and so per commit).
const MAX_BATCH: usize = 512;
/// What a room's message buffer keeps between bursts.
const IDLE_BATCH_CAPACITY: usize = 32;

#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Check every update against section ownership (off only to measure
    /// what the guard costs).
    pub section_guard: bool,
    pub outbound_queue: QueueLimits,
    pub snapshot_every: u64,
    pub grace: Duration,
    pub limits: super::Limits,
}

/// What every room shares.
pub struct RoomContext {
    pub store: DynStore,
    pub writer: CommitWriter,
    pub dir: crate::store::Directory,
    pub config: RoomConfig,
    /// The other nodes, with `--redis-url`.
    pub cluster: Option<Arc<Cluster>>,
}

/// A change the server makes to a document, inside a transaction.
pub type ServerEdit = Box<dyn FnOnce(&mut yrs::TransactionMut) + Send>;

/// A change of the protocol's state (lock, reopening, rejection), already
/// committed to the store by the job that returns it: whether the meeting
/// is locked from now on, and the document update the job appended (with
/// its log position) for the room to apply and broadcast.
#[derive(Debug)]
pub struct Transition {
    pub locked: bool,
    pub update: Option<(Vec<u8>, Seq)>,
}

/// Runs a state change between two of the room's batches; see
/// `RoomMsg::Transition`.
pub type TransitionJob = futures::future::BoxFuture<'static, Option<Transition>>;

/// Close code and reason for an update to a locked protocol.
pub const LOCKED_REASON: &str = "the protocol is locked";

/// Whether a room holds its protocol locked, shared with the room's handle:
/// the node's state check (`state_check`) compares it with the database and
/// wakes only a room that missed a change. Only the room writes it.
#[derive(Clone, Debug, Default)]
pub struct LockedFlag(Arc<AtomicBool>);

impl LockedFlag {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, locked: bool) {
        self.0.store(locked, Ordering::Relaxed);
    }
}

pub enum RoomMsg {
    ServerEdit {
        edit: ServerEdit,
        /// The new section ownership, applied before any later update is
        /// checked.
        ownership: Option<Ownership>,
        done: oneshot::Sender<Result<(), ()>>,
    },
    Join {
        link: PeerLink,
        joined: oneshot::Sender<()>,
    },
    Inbound {
        peer: PeerId,
        messages: Vec<Inbound>,
    },
    Leave {
        peer: PeerId,
    },
    /// A state change of the protocol. Every update the room accepted
    /// before this message is committed first; the job then runs (and
    /// commits) while the room waits, and its transition is applied before
    /// anything that came later.
    Transition {
        job: TransitionJob,
    },
    /// From the other nodes (see `cluster`).
    Remote(Remote),
    /// The database holds the protocol in another state than the room
    /// (locked or reopened from the command line, or by a process this
    /// node does not hear from): the room reads what the log holds past
    /// its position, the change's announcement among it, sends it to its
    /// clients and takes the state and ownership from the database.
    StateElsewhere,
}

struct Peer {
    link: PeerLink,
    /// Awareness client ids this connection speaks for now.
    clients: HashSet<ClientID>,
    /// Every awareness client id this connection has ever spoken for
    /// (bounded by `max_presence_clients`).
    spoken: HashSet<ClientID>,
    /// Sync step 1 messages sent (or queued) to this connection that it has
    /// not answered yet: while there are, its updates may wait for what it
    /// will send in answer (`waiting`).
    asked: u32,
    /// Its updates that wait for the part of their history the document
    /// lacks (`super::waiting`).
    waiting: Waiting,
}

/// An answer the room owes a connection, made only once what the room
/// applied in a batch is committed (and the document rebuilt if a commit
/// failed), so that it shows nothing that was not stored.
enum Reply {
    /// The room's sync step 1 for a connection that joined.
    Step1,
    /// The sync step 2 answering a connection's sync step 1.
    Step2(StateVector),
}

/// Where an outgoing frame goes.
enum Target {
    One(PeerId),
    All,
    AllBut(PeerId),
}

pub(super) struct Room {
    id: MeetingId,
    ctx: Arc<RoomContext>,
    doc: GuardedDoc,
    awareness: AwarenessState,
    /// Which person each client id (of the document and of presence)
    /// belongs to: nobody else may write or speak under it.
    owners: ClientOwners,
    /// Which connection speaks for each presence client id now.
    speakers: HashMap<ClientID, PeerId>,
    peers: HashMap<PeerId, Peer>,
    /// Log position of the last update this room has applied and stored.
    last_seq: Seq,
    /// Log position covered by the latest snapshot known to be written.
    snapshot_upto: Seq,
    /// Updates applied since the latest snapshot was started.
    since_snapshot: u64,
    snapshot_task: Option<JoinHandle<Result<Seq, CommitWriterError>>>,
    /// Who owns which section, as the agenda says now.
    ownership: Ownership,
    /// Set while the document is being rebuilt after the room opened.
    warming: Option<Warming>,
    /// The protocol is locked (or verified): every update that would
    /// change the document is refused with 4423, without touching the
    /// store.
    locked: LockedFlag,
    /// Several nodes: what this room's part in them is.
    /// The document's encoded size as stored: the latest snapshot's length
    /// plus the length of every update applied since (what a rebuild reads
    /// from the store). An upper bound of what a joining client downloads,
    /// kept without re-encoding anything; exact again at every snapshot.
    doc_bytes: u64,
    /// Updates applied since the latest snapshot deleted something, so the
    /// document may be smaller than `doc_bytes` says.
    deleted_since_snapshot: bool,
    /// A refusal at the size cap asked for the size to be measured again
    /// (by a snapshot) once this batch is committed.
    remeasure: bool,
    last_remeasure: Option<Instant>,
    node: Option<Node>,
    /// Connections with updates that wait (`Peer::waiting`).
    waiting: HashSet<PeerId>,
    /// Answers owed, in the order they were asked for (see `Reply`).
    replies: Vec<(PeerId, Reply)>,
    /// The document could not be rebuilt from the store: the room must
    /// not serve it any longer, and leaves the registry so that the next
    /// connection loads the meeting afresh.
    broken: bool,
}

/// A room's state as one of several nodes serving its meeting. `last_seq`
/// is then the end of the log prefix the document holds without a hole.
struct Node {
    cluster: Arc<Cluster>,
    _held: cluster::Held,
    /// Ranges past `last_seq` the document holds already (this node's own
    /// commits: `None`) or that arrived early and wait for the hole before
    /// them to fill (`Some`), by first position.
    ahead: BTreeMap<Seq, (Seq, Option<RemoteUpdates>)>,
    /// Since when a hole has been open; it is read from the log after
    /// `Cluster::hole_wait`.
    hole_since: Option<Instant>,
    /// A read of the log that failed or found no free turn is tried again
    /// then (hole or not).
    read_at: Option<Instant>,
    /// The last read of the log: when the hole it filled had opened, and
    /// the positions it read. What Redis delivers of them afterwards says
    /// how late Redis is (`Cluster::note_delivery_lag`).
    read_past: Option<(Instant, Seq, Seq)>,
    /// When a catch-up last read the protocol's state and ownership.
    state_read: Option<Instant>,
    /// A catch-up applied log entries without reading the state (Redis
    /// away): one of them may have changed it, so it is read soon.
    state_due: bool,
    /// The log head last read from Postgres (`Remote::Head`): positions
    /// up to it exist, and a hole is open until the room has them.
    known_head: Seq,
    /// Client ids bound to people in this batch, for the other nodes.
    bindings: Vec<(u64, UserId)>,
    /// The document holds updates an append failed to store: it is
    /// rebuilt from the store once the database answers again.
    tainted: bool,
    /// Connections told that their updates were not stored; asked for
    /// them again (sync step 1) once the database is back.
    refused: HashSet<PeerId>,
}

/// Least time between two snapshots started only to measure the document
/// again after a refusal at the size cap: each re-encodes the document.
const REMEASURE_EVERY: Duration = Duration::from_secs(5);

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
struct Warming {
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
struct Loaded {
    doc: GuardedDoc,
    last_seq: Seq,
    snapshot_upto: Seq,
    log_len: u64,
    /// The stored snapshot's length plus the logged updates' lengths.
    bytes: u64,
}

async fn load(store: &DynStore, id: MeetingId) -> Result<Loaded, StoreError> {
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

async fn load_ownership(ctx: &RoomContext, id: MeetingId) -> Result<Ownership, StoreError> {
    Ok(Ownership::from_sections(ctx.dir.sections(id).await?))
}

impl Room {
    pub(super) async fn open(
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
    async fn warm_up(&mut self, warming: Warming, rx: &mut mpsc::Receiver<RoomMsg>) -> bool {
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

    /// The room's life: process batches until the last client has been gone
    /// for the grace period, or the server shuts down; then write a final
    /// snapshot and leave the registry.
    pub(super) async fn run(
        mut self,
        rooms: Rooms,
        generation: u64,
        mut rx: mpsc::Receiver<RoomMsg>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        if let Some(warming) = self.warming.take()
            && !self.warm_up(warming, &mut rx).await
        {
            rooms.remove(self.id, generation);
            rx.close();
            while rx.try_recv().is_ok() {}
            return;
        }
        // Grown on demand and shrunk back once the burst is over:
        // preallocating MAX_BATCH messages cost ~48 KiB per open meeting
        // (massif: the largest item of an idle server's heap).
        let mut batch = Vec::new();
        // One wait for the shutdown for the room's life, not a waiter
        // registered and removed per batch.
        let stopping = shutdown.cancelled();
        tokio::pin!(stopping);
        // Since when the room has had no connection: it unloads a grace
        // period later, whatever the other nodes send it meanwhile (a
        // head check reaches every held room every few seconds).
        let mut idle_since: Option<tokio::time::Instant> = None;
        loop {
            if self.broken {
                rooms.remove(self.id, generation);
                break;
            }
            let idle = self.peers.is_empty();
            if !idle {
                idle_since = None;
            } else if idle_since.is_none() {
                idle_since = Some(tokio::time::Instant::now());
            }
            let unload_at = idle_since.map(|at| at + self.ctx.config.grace);
            let wake = self.wake();
            tokio::select! {
                _ = tokio::time::sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)),
                    if wake.is_some() =>
                {
                    if self
                        .node_wake()
                        .is_some_and(|at| at <= tokio::time::Instant::now())
                    {
                        let mut outgoing = Vec::new();
                        self.node_timer(&mut outgoing).await;
                        self.count_step_1s(&outgoing);
                        self.deliver(outgoing);
                    }
                    // Lets through what a catch-up filled in, refuses what
                    // waited too long, answers what a rebuild held back.
                    self.process(std::iter::empty()).await;
                }
                n = rx.recv_many(&mut batch, MAX_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.process(batch.drain(..)).await;
                    if n <= IDLE_BATCH_CAPACITY {
                        batch.shrink_to(IDLE_BATCH_CAPACITY);
                    }
                }
                _ = tokio::time::sleep_until(unload_at.unwrap_or_else(tokio::time::Instant::now)),
                    if idle =>
                {
                    self.compact_now().await;
                    if rooms.remove_if_idle(self.id, generation, &rx) {
                        break;
                    }
                    // A message came meanwhile: another grace period.
                    idle_since = None;
                }
                _ = &mut stopping => {
                    // Stop taking new work, but finish what clients already sent.
                    rx.close();
                    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                        self.process(batch.drain(..)).await;
                    }
                    self.compact_now().await;
                    rooms.remove_if_idle(self.id, generation, &rx);
                    break;
                }
            }
        }
        rx.close();
        // Joins that raced with the unload are dropped here; their
        // connections see the room gone and join its successor. A state
        // change still runs: its caller waits for it, and the store is
        // what decides it.
        while let Ok(msg) = rx.try_recv() {
            if let RoomMsg::Transition { job } = msg {
                let _ = job.await;
            }
        }
        debug!(meeting_id = %self.id, "room closed");
    }

    async fn process(&mut self, batch: impl Iterator<Item = RoomMsg>) {
        let mut staged: Vec<Staged> = Vec::new();
        let mut outgoing: Vec<(Target, Bytes)> = Vec::new();
        let mut rebuild = false;
        let mut server_edits = Vec::new();

        for msg in batch {
            match msg {
                RoomMsg::ServerEdit {
                    edit,
                    ownership,
                    done,
                } => {
                    if let Some(ownership) = ownership {
                        self.ownership = ownership;
                    }
                    // Never refused at the size cap: the agenda in the
                    // document must follow the one in the database, and a
                    // full meeting must still be lockable. They are small.
                    let payload = Bytes::from(self.doc.edit(edit));
                    self.doc_bytes += payload.len() as u64;
                    // Agenda changes may remove sections' text.
                    self.deleted_since_snapshot = true;
                    staged.push(Staged {
                        peer: SERVER_PEER,
                        broadcast: protocol::encode_update(&payload),
                        payload,
                    });
                    server_edits.push(done);
                }
                RoomMsg::Join { link, joined } => {
                    let Some(peer) = self.admit(link) else {
                        let _ = joined.send(());
                        continue;
                    };
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.asked += 1;
                    }
                    self.replies.push((peer, Reply::Step1));
                    if let Some(states) = self.awareness.live() {
                        outgoing.push((Target::One(peer), protocol::encode_awareness(&states)));
                    }
                    let _ = joined.send(());
                }
                RoomMsg::Leave { peer } => self.remove_peer(peer),
                RoomMsg::Transition { job } => {
                    // What was accepted before the change is committed (and
                    // announced) before it.
                    self.commit_staged(
                        std::mem::take(&mut staged),
                        &mut outgoing,
                        std::mem::take(&mut server_edits),
                        &mut rebuild,
                    )
                    .await;
                    self.deliver(std::mem::take(&mut outgoing));
                    if let Some(transition) = job.await {
                        self.apply_transition(transition);
                    }
                }
                RoomMsg::Remote(remote) => {
                    let from = outgoing.len();
                    self.on_remote(remote, &mut outgoing).await;
                    self.count_step_1s(&outgoing[from..]);
                }
                RoomMsg::StateElsewhere => {
                    // Ordered like a transition made here: what the room
                    // accepted before is committed (or refused) first.
                    self.commit_staged(
                        std::mem::take(&mut staged),
                        &mut outgoing,
                        std::mem::take(&mut server_edits),
                        &mut rebuild,
                    )
                    .await;
                    let from = outgoing.len();
                    self.follow_state_elsewhere(&mut outgoing).await;
                    self.count_step_1s(&outgoing[from..]);
                }
                RoomMsg::Inbound { peer, messages } => {
                    for message in messages {
                        if !self.peers.contains_key(&peer) {
                            // Closed earlier in this batch; ignore the rest.
                            break;
                        }
                        match message {
                            Inbound::SyncStep1(sv) => self.ask_for_step_2(peer, sv),
                            Inbound::Update(update) => {
                                metrics::counter!(metric::UPDATES_RECEIVED).increment(1);
                                if update.sync_step_2
                                    && let Some(p) = self.peers.get_mut(&peer)
                                {
                                    p.asked = p.asked.saturating_sub(1);
                                }
                                self.receive(peer, update, None, &mut staged, &mut rebuild);
                            }
                            Inbound::Awareness(update) => self.on_awareness(peer, update),
                            Inbound::QueryAwareness => {
                                if let Some(states) = self.awareness.live() {
                                    self.send(peer, protocol::encode_awareness(&states));
                                }
                            }
                            Inbound::Auth => {}
                        }
                    }
                }
            }
        }

        self.release_waiting(&mut staged, &mut rebuild);
        self.commit_staged(staged, &mut outgoing, server_edits, &mut rebuild)
            .await;
        self.expire_waiting();

        self.deliver(outgoing);
        if rebuild {
            let before = self.doc.state_vector();
            self.reload().await;
            // What the store holds and the room did not goes to the
            // connections that stay: after an append refused because the
            // protocol was locked elsewhere, that is the lock's
            // announcement (`protocol` map). Only what the store holds.
            if self.doc.state_vector() != before {
                let diff = self.doc.diff(&before);
                self.deliver(vec![(Target::All, protocol::encode_update(&diff))]);
            }
        }
        self.send_replies();
        self.maybe_snapshot();
    }

    /// When the room must look at something without a message: a hole in
    /// the log or a rebuild (`node_wake`), or an update that has waited
    /// long enough.
    fn wake(&self) -> Option<tokio::time::Instant> {
        let waited = self
            .waiting
            .iter()
            .filter_map(|peer| self.peers.get(peer)?.waiting.deadline())
            .min()
            .map(tokio::time::Instant::from_std);
        match (self.node_wake(), waited) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Counts the sync step 1 messages among frames the room's cluster
    /// part queued (asking connections for what the store lacks).
    fn count_step_1s(&mut self, frames: &[(Target, Bytes)]) {
        for (target, frame) in frames {
            if let Target::One(peer) = target
                && protocol::is_sync_step_1(frame)
                && let Some(p) = self.peers.get_mut(peer)
            {
                p.asked += 1;
            }
        }
    }

    /// Owes `peer` the sync step 2 answering its sync step 1. While the
    /// answers wait for a rebuild (`send_replies`), a connection is owed
    /// one at most: the first state vector it sent is the smallest, so its
    /// answer covers the later ones, and a client asking over and over
    /// while the database is away cannot grow the list.
    fn ask_for_step_2(&mut self, peer: PeerId, sv: StateVector) {
        if self.node.as_ref().is_some_and(|n| n.tainted)
            && self
                .replies
                .iter()
                .any(|(p, r)| *p == peer && matches!(r, Reply::Step2(_)))
        {
            return;
        }
        self.replies.push((peer, Reply::Step2(sv)));
    }

    /// Sends the answers owed (see `Reply`), computed from the document as
    /// it stands now that the batch is committed. While the document holds
    /// updates an append failed to store they wait: the rebuild that
    /// follows the database's return sends them.
    fn send_replies(&mut self) {
        if self.replies.is_empty() || self.node.as_ref().is_some_and(|n| n.tainted) {
            return;
        }
        let mut frames = Vec::with_capacity(self.replies.len());
        let mut step_1 = None;
        for (peer, reply) in std::mem::take(&mut self.replies) {
            if !self.peers.contains_key(&peer) {
                continue;
            }
            let frame = match reply {
                Reply::Step1 => step_1
                    .get_or_insert_with(|| protocol::encode_sync_step_1(&self.doc.state_vector()))
                    .clone(),
                Reply::Step2(sv) => protocol::encode_sync_step_2(&self.doc.diff(&sv)),
            };
            frames.push((Target::One(peer), frame));
        }
        self.deliver(frames);
    }

    /// A client's update: refused at once when the protocol is locked or
    /// the store is away, held back while it waits for the part it builds
    /// on, else checked and applied (and staged for the commit).
    fn receive(
        &mut self,
        peer: PeerId,
        update: IncomingUpdate,
        since: Option<Instant>,
        staged: &mut Vec<Staged>,
        rebuild: &mut bool,
    ) {
        if self.locked.get() {
            self.refuse_if_changing(peer, &update);
        } else if self
            .node
            .as_ref()
            .is_some_and(|n| n.tainted || n.cluster.storage_down())
            && !update.update.is_empty()
        {
            self.refuse_storage_down(peer);
        } else if let Some((payload, broadcast)) = self.apply(peer, update, since, rebuild) {
            staged.push(Staged {
                peer,
                payload,
                broadcast,
            });
        }
    }

    /// Lets through every waiting update whose missing part the document
    /// now holds, in each connection's arrival order, until none is left:
    /// one let through may be what another waits for.
    fn release_waiting(&mut self, staged: &mut Vec<Staged>, rebuild: &mut bool) {
        if self.waiting.is_empty() {
            return;
        }
        // Each round lets at least one through, so this ends; a waiting
        // update let through and held again is not let through again in
        // the same round (its missing part is not there).
        loop {
            let mut released = false;
            let peers: Vec<PeerId> = self.waiting.iter().copied().collect();
            for peer in peers {
                while let Some(held) = self
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.waiting.take_ready(&self.doc))
                {
                    released = true;
                    match IncomingUpdate::decode(held.payload, held.sync_step_2) {
                        Ok(update) => self.receive(peer, update, Some(held.since), staged, rebuild),
                        // It decoded when it arrived.
                        Err(e) => {
                            error!(meeting_id = %self.id, peer, error = %e, "a waiting update no longer decodes")
                        }
                    }
                }
                if self.peers.get(&peer).is_none_or(|p| p.waiting.is_empty()) {
                    self.waiting.remove(&peer);
                }
            }
            if !released || self.waiting.is_empty() {
                break;
            }
        }
    }

    /// Refuses the connections whose updates waited `waiting::MAX_WAIT`
    /// for a part that never came.
    fn expire_waiting(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .waiting
            .iter()
            .copied()
            .filter(|peer| self.peers.get(peer).is_some_and(|p| p.waiting.expired(now)))
            .collect();
        for peer in expired {
            let Some(principal) = self.peers.get(&peer).map(|p| p.link.principal.clone()) else {
                continue;
            };
            let reason = guard::Refusal::Unfilled(waiting::EXPIRED);
            self.refuse(peer, &principal, &reason);
        }
    }

    /// Commits the updates applied so far in this batch and queues their
    /// broadcasts; answers the server edits among them.
    async fn commit_staged(
        &mut self,
        staged: Vec<Staged>,
        outgoing: &mut Vec<(Target, Bytes)>,
        server_edits: Vec<oneshot::Sender<Result<(), ()>>>,
        rebuild: &mut bool,
    ) {
        let mut server_edits = server_edits;
        if !staged.is_empty() {
            let count = staged.len() as u64;
            let payloads = staged.iter().map(|s| s.payload.clone()).collect();
            match self.ctx.writer.append(self.id, payloads).await {
                Ok(seq) => {
                    match &mut self.node {
                        Some(node) => {
                            let first = seq - count as Seq + 1;
                            let updates = staged.iter().map(|s| s.payload.to_vec()).collect();
                            let ownership = staged.iter().any(|s| s.peer == SERVER_PEER);
                            node.cluster.set_storage_down(false);
                            node.cluster.publish_updates(
                                self.id,
                                first,
                                seq,
                                updates,
                                std::mem::take(&mut node.bindings),
                                ownership,
                                None,
                            );
                            self.record_own(first, seq);
                        }
                        None => self.last_seq = seq,
                    }
                    self.since_snapshot += count;
                    metrics::counter!(metric::UPDATES_APPLIED).increment(count);
                    outgoing.extend(broadcast_frames(staged));
                    for done in server_edits.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                }
                Err(CommitWriterError::Locked) => {
                    // Locked elsewhere (the CLI, another node): the database
                    // refused this batch. Its senders are told so; everyone
                    // else stays, and the document is rebuilt from the
                    // store, which never held these updates.
                    info!(meeting_id = %self.id, "protocol locked elsewhere; refusing the batch");
                    let senders: HashSet<PeerId> = staged
                        .iter()
                        .map(|s| s.peer)
                        .filter(|p| *p != SERVER_PEER)
                        .collect();
                    for peer in senders {
                        self.refuse_locked(peer);
                    }
                    self.locked.set(true);
                    *rebuild = true;
                }
                Err(e) if self.node.is_some() => {
                    // Several nodes: the sockets stay. Nothing of this batch
                    // is announced; its senders are told it was not stored
                    // (their clients keep it), further updates are refused
                    // until the database answers, and then the document is
                    // rebuilt from the store and everyone is asked for what
                    // it lacks (sync step 1), which brings these back.
                    error!(meeting_id = %self.id, error = %e, "updates could not be stored; refusing updates until the database is back");
                    outgoing.clear();
                    let senders: HashSet<PeerId> = staged
                        .iter()
                        .map(|s| s.peer)
                        .filter(|p| *p != SERVER_PEER)
                        .collect();
                    if let Some(node) = &mut self.node {
                        node.cluster.set_storage_down(true);
                        node.tainted = true;
                        node.bindings.clear();
                    }
                    for peer in senders {
                        self.refuse_storage_down(peer);
                    }
                }
                Err(e) => {
                    // Nothing of this batch may be announced, and the document
                    // in memory now holds updates that were never accepted:
                    // everyone resyncs against the stored state.
                    error!(meeting_id = %self.id, error = %e, "updates could not be stored; resetting room");
                    outgoing.clear();
                    self.close_all("storage unavailable, reconnect");
                    *rebuild = true;
                }
            }
        }
        for done in server_edits {
            let _ = done.send(Err(()));
        }
    }

    /// Applies a committed state change: the update the change appended is
    /// applied here and broadcast to everyone, so clients learn of it live.
    fn apply_transition(&mut self, transition: Transition) {
        self.locked.set(transition.locked);
        let Some((update, seq)) = transition.update else {
            if let Some(node) = &self.node {
                node.cluster.publish_locked(self.id, transition.locked);
            }
            return;
        };
        if !self.doc.apply_trusted(&update) {
            error!(meeting_id = %self.id, "the state change does not decode or apply");
        }
        self.doc_bytes += update.len() as u64;
        match &self.node {
            Some(node) => {
                node.cluster.publish_updates(
                    self.id,
                    seq,
                    seq,
                    vec![update.clone()],
                    Vec::new(),
                    false,
                    Some(transition.locked),
                );
                self.record_own(seq, seq);
            }
            None => self.last_seq = self.last_seq.max(seq),
        }
        self.since_snapshot += 1;
        self.deliver(vec![(Target::All, protocol::encode_update(&update))]);
    }

    /// The database says the protocol is in another state than this room
    /// holds (see `RoomMsg::StateElsewhere`). Whoever changed it appended
    /// the announcement (`protocol` map) to the log in the same
    /// transaction, so reading the log past `last_seq` brings it; clients
    /// get it as one update, as they would a change made through the room.
    async fn follow_state_elsewhere(&mut self, outgoing: &mut Vec<(Target, Bytes)>) {
        if self.node.is_some() {
            // Several nodes: their catch-up reads the log in turns.
            self.catch_up(outgoing).await;
            self.reload_state().await;
            return;
        }
        let (id, after) = (self.id, self.last_seq);
        let store = &self.ctx.store;
        let read = tokio::time::timeout(node::READ_TIMEOUT, async {
            match store.log_after(id, after).await? {
                Some(updates) => Ok(StoredDocument {
                    snapshot: None,
                    updates,
                }),
                None => store.load_after(id, after).await,
            }
        });
        let stored = match read.await {
            Ok(Ok(stored)) => stored,
            Ok(Err(e)) => {
                // The next check asks again: the states still differ.
                warn!(meeting_id = %id, error = %e, "reading a change made elsewhere failed");
                return;
            }
            Err(_) => {
                warn!(meeting_id = %id, "reading a change made elsewhere timed out");
                return;
            }
        };
        let before = self.doc.state_vector();
        let mut top = after;
        let snapshot = stored.snapshot.map(|s| (s.upto, s.state));
        for (seq, update) in snapshot.into_iter().chain(stored.updates) {
            if !self.doc.apply_trusted(&update) {
                error!(meeting_id = %id, seq, "an update stored elsewhere does not apply");
            }
            self.doc_bytes += update.len() as u64;
            self.since_snapshot += 1;
            top = top.max(seq);
        }
        if top > after {
            info!(meeting_id = %id, after, upto = top, "read a change of the protocol's state made elsewhere");
            self.last_seq = top;
            outgoing.push((
                Target::All,
                protocol::encode_update(&self.doc.diff(&before)),
            ));
        }
        self.reload_state().await;
    }

    /// An update to a locked protocol: refused (4423) if it would change
    /// anything. Clients that reconnect send their whole delete set in sync
    /// step 2, which changes nothing and is let through.
    fn refuse_if_changing(&mut self, peer: PeerId, update: &IncomingUpdate) {
        let snapshot = yrs::ReadTxn::snapshot(&yrs::Transact::transact(self.doc.doc()));
        let new_blocks = update.structure.blocks.iter().any(|b| {
            b.clock.saturating_add(b.len) > snapshot.state_map.get(&ClientID::new(b.client))
        });
        let new_deletes = {
            let mut deletes = yrs::IdSet::new();
            for (client, clock, len) in &update.structure.deletes {
                deletes.insert(yrs::ID::new(ClientID::new(*client), *clock), *len);
            }
            !deletes.diff(&snapshot.delete_set).is_empty()
        };
        if new_blocks || new_deletes {
            self.refuse_locked(peer);
        }
    }

    /// Tells a client that the protocol is locked and closes it (4423).
    fn refuse_locked(&mut self, peer: PeerId) {
        metrics::counter!(metric::UPDATES_REJECTED, "reason" => "locked").increment(1);
        let message = format!("permission denied: {LOCKED_REASON}");
        let reason = CloseReason::new(close_code::PROTOCOL_LOCKED, LOCKED_REASON)
            .with_last_frame(protocol::encode_permission_denied(&message));
        self.close_peer(peer, reason);
    }

    /// Checks and applies one update. Returns the log payload and the
    /// broadcast frame if it was applied. One refused as building on what
    /// the document lacks waits for it instead, where it may
    /// (`may_wait`); `since` is when it first arrived, if it waited before.
    fn apply(
        &mut self,
        peer: PeerId,
        incoming: IncomingUpdate,
        since: Option<Instant>,
        rebuild: &mut bool,
    ) -> Option<(Bytes, Bytes)> {
        if incoming.update.is_empty() {
            // An empty sync step 2 ("I have nothing you lack"): nothing to do.
            return None;
        }
        let principal = self.peers[&peer].link.principal.clone();
        // The size cap, before anything is applied: judged on the update as
        // sent. Updates that only delete are let through (their size is
        // bounded by what the document holds, and they are how a full
        // meeting is cleaned up).
        let adds = !incoming.structure.blocks.is_empty();
        let deletes = !incoming.structure.deletes.is_empty();
        if adds && self.over_cap(incoming.payload.len()) {
            self.refuse_too_large(peer, &principal);
            return None;
        }
        let owners = &self.owners;
        let outcome = self.doc.apply_client(
            &principal,
            &self.ownership,
            |client| owners.get(client),
            incoming.update,
            &incoming.structure,
            self.ctx.config.section_guard,
        );
        match outcome {
            Ok(applied) => {
                if applied.ignored {
                    debug!(meeting_id = %self.id, peer, "formatting clean-up outside the sender's sections ignored");
                    metrics::counter!(metric::UPDATES_REJECTED, "reason" => "formatting_cleanup_ignored")
                        .increment(1);
                }
                for client in applied.new_clients {
                    self.owners.bind(client, principal.user_id);
                    if let Some(node) = &mut self.node {
                        node.bindings.push((client, principal.user_id));
                    }
                }
                // `None`: nothing new (a sync step 2 of what the server has).
                let payload = Bytes::from(applied.canonical?);
                if adds && self.over_cap(payload.len()) {
                    // What yrs integrated encodes larger than what was sent
                    // and would pass the cap: it is in the document now,
                    // so refuse it and rebuild from the store.
                    self.refuse_too_large(peer, &principal);
                    *rebuild = true;
                    return None;
                }
                self.doc_bytes += payload.len() as u64;
                self.deleted_since_snapshot |= deletes;
                let broadcast = protocol::encode_update(&payload);
                Some((payload, broadcast))
            }
            Err(Rejected::Refused(guard::Refusal::Gap | guard::Refusal::UnknownItems))
                if let Some(missing) = self.may_wait(peer, &incoming.structure) =>
            {
                let p = self.peers.get_mut(&peer).expect("checked by may_wait");
                let held = p.waiting.hold(
                    incoming.payload,
                    incoming.sync_step_2,
                    missing,
                    since.unwrap_or_else(Instant::now),
                );
                match held {
                    Ok(()) => {
                        self.waiting.insert(peer);
                        metrics::counter!(metric::UPDATES_WAITING).increment(1);
                        debug!(meeting_id = %self.id, peer, "update waits for the part of its history the server lacks");
                    }
                    Err(refusal) => self.refuse(peer, &principal, &refusal),
                }
                None
            }
            Err(rejected) => {
                *rebuild |= rejected.must_rebuild();
                match rejected {
                    Rejected::Refused(refusal) | Rejected::RefusedAfterApplying(refusal) => {
                        self.refuse(peer, &principal, &refusal)
                    }
                    Rejected::Invalid(detail) => {
                        warn!(meeting_id = %self.id, peer, error = %detail, "update does not apply");
                        metrics::counter!(metric::UPDATES_REJECTED, "reason" => "invalid")
                            .increment(1);
                        self.close_peer(
                            peer,
                            CloseReason::new(
                                close_code::INVALID_PAYLOAD,
                                "update could not be applied",
                            ),
                        );
                    }
                }
                None
            }
        }
    }

    /// What a refused update builds on that the document lacks, if it may
    /// wait for it: only on a connection that has been asked for what the
    /// room lacks and has not answered yet, or whose updates the store
    /// could not take and that will be asked once it is back. Anywhere
    /// else the missing part is not coming.
    fn may_wait(&self, peer: PeerId, structure: &guard::Decoded) -> Option<guard::Missing> {
        let asked = self.peers.get(&peer)?.asked > 0
            || self
                .node
                .as_ref()
                .is_some_and(|n| n.refused.contains(&peer));
        if !asked {
            return None;
        }
        self.doc.missing(structure)
    }

    /// Whether `more` bytes would take the document past its size cap.
    fn over_cap(&self, more: usize) -> bool {
        self.doc_bytes.saturating_add(more as u64) > self.ctx.config.limits.max_document_bytes
    }

    /// Refuses an update at the size cap: the auth message with the reason
    /// and close code 4413. If deletions since the last snapshot may have
    /// made the document smaller than counted, it is measured again.
    fn refuse_too_large(&mut self, peer: PeerId, principal: &Principal) {
        let cap = self.ctx.config.limits.max_document_bytes;
        warn!(
            meeting_id = %self.id,
            user_id = %principal.user_id,
            document_bytes = self.doc_bytes,
            limit_bytes = cap,
            "update refused: the document would exceed its size limit"
        );
        count_trip(limit::DOCUMENT_SIZE);
        metrics::counter!(metric::UPDATES_REJECTED, "reason" => "too_large").increment(1);
        let reason = format!(
            "the meeting's document would exceed its size limit ({})",
            human_bytes(cap)
        );
        let message = format!("permission denied: {reason}");
        let close = CloseReason::new(close_code::TOO_LARGE, reason)
            .with_last_frame(protocol::encode_permission_denied(&message));
        self.close_peer(peer, close);
        if self.deleted_since_snapshot {
            self.remeasure = true;
        }
    }

    /// Adds a joining connection unless the meeting already has as many as
    /// allowed; that one is closed with 4429 and a reason.
    fn admit(&mut self, link: PeerLink) -> Option<PeerId> {
        let max = self.ctx.config.limits.max_connections_per_meeting;
        if self.peers.len() >= max {
            count_trip(limit::MEETING_CONNECTIONS);
            warn!(
                meeting_id = %self.id,
                user_id = %link.principal.user_id,
                max,
                "connection refused: the meeting has as many connections as allowed"
            );
            link.closer.close(CloseReason::new(
                close_code::TOO_MANY,
                format!("this meeting already has {max} connections"),
            ));
            return None;
        }
        Some(self.add_peer(link))
    }

    /// Refuses a client's update: the auth message and close code 4403.
    fn refuse(&mut self, peer: PeerId, principal: &Principal, refusal: &guard::Refusal) {
        warn!(
            meeting_id = %self.id,
            user_id = %principal.user_id,
            agency = principal.agency.as_deref().unwrap_or("-"),
            reason = %refusal,
            "update refused by the section guard"
        );
        metrics::counter!(metric::UPDATES_REJECTED, "reason" => "forbidden").increment(1);
        let message = format!("permission denied: {refusal}");
        let reason = CloseReason::new(close_code::FORBIDDEN, message.clone())
            .with_last_frame(protocol::encode_permission_denied(&message));
        self.close_peer(peer, reason);
    }

    /// Presence cannot be forged: a client id belongs to the first
    /// connection that announces it (until that connection ends), and the
    /// `user` in every state is replaced by the connection's authenticated
    /// identity.
    fn on_awareness(&mut self, peer: PeerId, incoming: IncomingAwareness) {
        let Some(principal) = self.peers.get(&peer).map(|p| p.link.principal.clone()) else {
            return;
        };
        let mut accepted = HashMap::new();
        for (client, entry) in incoming.update.clients {
            if self
                .owners
                .get(client.get())
                .is_some_and(|owner| owner != principal.user_id)
            {
                continue;
            }
            let json = if &*entry.json == "null" {
                entry.json
            } else if entry.json.len() > self.ctx.config.limits.max_presence_bytes {
                // Too large already; refused below without parsing it.
                entry.json
            } else {
                awareness::stamp_identity(&entry.json, &principal).into()
            };
            accepted.insert(
                client,
                AwarenessUpdateEntry {
                    clock: entry.clock,
                    json,
                },
            );
        }
        let limits = self.ctx.config.limits;
        if let Some(client) = accepted
            .iter()
            .find(|(_, e)| e.json.len() > limits.max_presence_bytes)
            .map(|(c, _)| *c)
        {
            self.refuse_presence_size(peer, &principal, client.get());
            return;
        }
        let spoken = self.peers.get(&peer).map(|p| &p.spoken);
        let new_ids = accepted
            .iter()
            .filter(|(c, e)| self.awareness.would_change(**c, e))
            .filter(|(c, _)| !spoken.is_some_and(|s| s.contains(*c)))
            .count();
        if spoken.map_or(0, |s| s.len()) + new_ids > limits.max_presence_clients {
            count_trip(limit::PRESENCE_CLIENTS);
            warn!(
                meeting_id = %self.id,
                user_id = %principal.user_id,
                max = limits.max_presence_clients,
                "connection closed: presence for too many client ids"
            );
            self.close_peer(
                peer,
                CloseReason::new(
                    close_code::TOO_MANY,
                    format!(
                        "presence for more than {} client ids on one connection",
                        limits.max_presence_clients
                    ),
                ),
            );
            return;
        }
        let update = AwarenessUpdate { clients: accepted };
        let changed = self.awareness.apply(&update);
        if changed.is_empty() {
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.clients.extend(changed.iter().copied());
            p.spoken.extend(changed.iter().copied());
        }
        for client in &changed {
            self.owners.bind(client.get(), principal.user_id);
            // A reconnecting client speaks for its id on its new connection;
            // the old one, when it finally ends, must not remove it.
            if let Some(previous) = self.speakers.insert(*client, peer)
                && previous != peer
                && let Some(p) = self.peers.get_mut(&previous)
            {
                p.clients.remove(client);
            }
        }
        let clients = update
            .clients
            .into_iter()
            .filter(|(c, _)| changed.contains(c))
            .collect();
        let frame = protocol::encode_awareness(&AwarenessUpdate { clients });
        if let Some(node) = &self.node {
            node.cluster
                .publish_presence(self.id, &frame, Some(principal.user_id));
        }
        self.deliver(vec![(Target::AllBut(peer), frame)]);
    }

    /// Closes a connection whose presence state is too large (4413).
    fn refuse_presence_size(&mut self, peer: PeerId, principal: &Principal, client: u64) {
        let max = self.ctx.config.limits.max_presence_bytes;
        count_trip(limit::PRESENCE_SIZE);
        warn!(
            meeting_id = %self.id,
            user_id = %principal.user_id,
            client,
            max,
            "connection closed: presence state too large"
        );
        let reason = format!("presence state larger than {} bytes", max);
        let message = format!("permission denied: {reason}");
        self.close_peer(
            peer,
            CloseReason::new(close_code::TOO_LARGE, reason)
                .with_last_frame(protocol::encode_permission_denied(&message)),
        );
    }

    /// Queues frames without waiting. Clients whose queue is full are
    /// disconnected (and their presence removed, which may in turn find
    /// more full queues).
    fn deliver(&mut self, outgoing: Vec<(Target, Bytes)>) {
        let mut slow = Vec::new();
        for (target, frame) in outgoing {
            match target {
                Target::One(peer) => {
                    if let Some(p) = self.peers.get(&peer)
                        && !try_queue(p, &frame)
                    {
                        slow.push(peer);
                    }
                }
                Target::All | Target::AllBut(_) => {
                    let skip = match target {
                        Target::AllBut(sender) => Some(sender),
                        _ => None,
                    };
                    for (&id, p) in &self.peers {
                        if Some(id) != skip && !try_queue(p, &frame) {
                            slow.push(id);
                        }
                    }
                }
            }
        }
        for peer in slow {
            if self.peers.contains_key(&peer) {
                metrics::counter!(metric::SLOW_CONSUMERS).increment(1);
                warn!(meeting_id = %self.id, peer, "client is not reading; disconnecting it");
                self.close_peer(
                    peer,
                    CloseReason::new(
                        close_code::TRY_AGAIN_LATER,
                        "too far behind: outgoing queue full, reconnect to resync",
                    ),
                );
            }
        }
    }

    fn add_peer(&mut self, link: PeerLink) -> PeerId {
        let peer = link.id;
        self.owners.person_joined(link.principal.user_id);
        self.peers.insert(
            peer,
            Peer {
                link,
                clients: HashSet::new(),
                spoken: HashSet::new(),
                asked: 0,
                waiting: Waiting::default(),
            },
        );
        peer
    }

    /// Puts a document rebuilt from the store in place.
    fn install(&mut self, loaded: Loaded) {
        self.doc = loaded.doc;
        self.last_seq = loaded.last_seq;
        self.snapshot_upto = loaded.snapshot_upto;
        self.since_snapshot = loaded.log_len;
        self.doc_bytes = loaded.bytes;
        self.deleted_since_snapshot = loaded.log_len > 0;
    }

    /// Closes every connection with an internal error (1011).
    fn close_all(&mut self, reason: &'static str) {
        let peers: Vec<_> = self.peers.keys().copied().collect();
        for peer in peers {
            self.close_peer(peer, CloseReason::new(close_code::INTERNAL_ERROR, reason));
        }
    }

    fn send(&mut self, peer: PeerId, frame: Bytes) {
        self.deliver(vec![(Target::One(peer), frame)]);
    }

    fn close_peer(&mut self, peer: PeerId, reason: CloseReason) {
        if let Some(p) = self.peers.get(&peer) {
            p.link.closer.close(reason);
        }
        self.remove_peer(peer);
    }

    fn remove_peer(&mut self, peer: PeerId) {
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        // What it held back goes with it: it was never applied.
        self.waiting.remove(&peer);
        if let Some(node) = &mut self.node {
            node.refused.remove(&peer);
        }
        for client in &p.clients {
            if self.speakers.get(client) == Some(&peer) {
                self.speakers.remove(client);
            }
        }
        let user = p.link.principal.user_id;
        if !self
            .peers
            .values()
            .any(|q| q.link.principal.user_id == user)
        {
            self.owners.person_left(user);
        }
        if let Some(removal) = self.awareness.remove(p.clients) {
            let frame = protocol::encode_awareness(&removal);
            if let Some(node) = &self.node {
                node.cluster.publish_presence(self.id, &frame, None);
            }
            self.deliver(vec![(Target::AllBut(peer), frame)]);
        }
    }

    /// Replaces the in-memory document with the stored one.
    async fn reload(&mut self) {
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

    /// Starts a snapshot in the background once enough updates have been
    /// logged since the last one.
    fn maybe_snapshot(&mut self) {
        // A document that holds what the store refused is never written.
        if self.broken || self.node.as_ref().is_some_and(|n| n.tainted) {
            return;
        }
        if let Some(task) = &self.snapshot_task
            && !task.is_finished()
        {
            return;
        }
        let remeasure = self.remeasure
            && self.since_snapshot > 0
            && self
                .last_remeasure
                .is_none_or(|at| at.elapsed() >= REMEASURE_EVERY);
        if self.since_snapshot < self.ctx.config.snapshot_every.max(1) && !remeasure {
            return;
        }
        if remeasure {
            self.last_remeasure = Some(Instant::now());
        }
        self.collect_finished_snapshot();
        self.snapshot_task = Some(self.start_snapshot());
    }

    fn start_snapshot(&mut self) -> JoinHandle<Result<Seq, CommitWriterError>> {
        let state = self.doc.diff(&StateVector::default());
        self.doc_bytes = state.len() as u64;
        self.deleted_since_snapshot = false;
        self.remeasure = false;
        metrics::histogram!(metric::DOCUMENT_BYTES).record(state.len() as f64);
        let upto = self.last_seq;
        let writer = self.ctx.writer.clone();
        let id = self.id;
        self.since_snapshot = 0;
        tokio::spawn(async move {
            let bytes = state.len();
            writer.snapshot(id, state, upto).await?;
            metrics::counter!(metric::SNAPSHOTS_WRITTEN).increment(1);
            debug!(meeting_id = %id, upto, bytes, "snapshot written");
            Ok(upto)
        })
    }

    fn collect_finished_snapshot(&mut self) {
        if let Some(task) = self.snapshot_task.take_if(|t| t.is_finished()) {
            // A finished task's result is ready; polling it does not wait.
            let result = futures::FutureExt::now_or_never(task);
            self.record_snapshot(result.unwrap_or_else(|| {
                Ok(Err(CommitWriterError::Failed(
                    "snapshot result lost".into(),
                )))
            }));
        }
    }

    fn record_snapshot(
        &mut self,
        result: Result<Result<Seq, CommitWriterError>, tokio::task::JoinError>,
    ) {
        match result {
            Ok(Ok(upto)) => self.snapshot_upto = self.snapshot_upto.max(upto),
            Ok(Err(e)) => {
                error!(meeting_id = %self.id, error = %e, "snapshot failed; the log keeps every update")
            }
            Err(e) => error!(meeting_id = %self.id, error = %e, "snapshot task failed"),
        }
    }

    async fn await_snapshot(&mut self) {
        if let Some(task) = self.snapshot_task.take() {
            let result = task.await;
            self.record_snapshot(result);
        }
    }

    /// Waits for any snapshot in flight, then folds whatever the log holds
    /// beyond the latest snapshot into a new one.
    async fn compact_now(&mut self) {
        self.await_snapshot().await;
        if self.broken || self.node.as_ref().is_some_and(|n| n.tainted) {
            return;
        }
        if self.last_seq > self.snapshot_upto {
            let task = self.start_snapshot();
            let result = task.await;
            self.record_snapshot(result);
        }
    }
}

/// `8388608` as `8 MiB`, for people.
fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    const KIB: u64 = 1024;
    if n >= MIB && n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n % KIB == 0 {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// How long a person keeps their client ids after their last connection to
/// the room ends: a client that reconnects within it (y-websocket keeps its
/// id across reconnects) continues under its id, and nobody else can take it
/// over meanwhile.
const RELEASE_AFTER: Duration = Duration::from_secs(10 * 60);

/// Which person each client id (document and presence) belongs to. The
/// first person to write or speak under an id holds it.
#[derive(Debug, Default)]
struct ClientOwners {
    by_client: HashMap<u64, (UserId, Option<Instant>)>,
}

impl ClientOwners {
    fn get(&self, client: u64) -> Option<UserId> {
        match self.by_client.get(&client)? {
            (_, Some(since)) if since.elapsed() >= RELEASE_AFTER => None,
            (user, _) => Some(*user),
        }
    }

    fn bind(&mut self, client: u64, user: UserId) {
        self.by_client.insert(client, (user, None));
    }

    fn person_joined(&mut self, user: UserId) {
        for (owner, idle) in self.by_client.values_mut() {
            if *owner == user {
                *idle = None;
            }
        }
    }

    /// The person's last connection to the room has ended: their ids are
    /// released once `RELEASE_AFTER` has passed.
    fn person_left(&mut self, user: UserId) {
        let now = Instant::now();
        self.by_client.retain(|_, (owner, idle)| {
            if *owner == user {
                *idle = Some(now);
            }
            idle.is_none_or(|since| now.duration_since(since) < RELEASE_AFTER)
        });
    }
}

/// An update applied in this batch, waiting for its commit.
struct Staged {
    peer: PeerId,
    payload: Bytes,
    broadcast: Bytes,
}

/// A merged broadcast stays below this size, so that large pastes do not
/// add up to frames that clients refuse (browsers and tungstenite cap
/// message sizes).
const MERGE_LIMIT: usize = 256 * 1024;

/// yrs' `merge_updates_v1` grows quadratically with the number of updates
/// (5,000 typing updates: ~190 ms); in chunks of 64 it stays negligible.
const MERGE_MAX_UPDATES: usize = 64;

/// Broadcast frames for a committed batch. Consecutive small updates are
/// merged into one update, encoded once and shared by every recipient, so a
/// burst costs each client one frame instead of one per update. Senders
/// receive their own updates back inside a merged frame, which Yjs ignores,
/// as it does with the reference server's echoes. An update that travels
/// alone goes out as the very frame its sender sent, to everyone else.
fn broadcast_frames(staged: Vec<Staged>) -> Vec<(Target, Bytes)> {
    let mut frames = Vec::new();
    let mut chunk: Vec<Staged> = Vec::new();
    let mut chunk_bytes = 0;
    for update in staged {
        if !chunk.is_empty()
            && (chunk_bytes + update.payload.len() > MERGE_LIMIT
                || chunk.len() == MERGE_MAX_UPDATES)
        {
            frames.extend(chunk_frames(std::mem::take(&mut chunk)));
            chunk_bytes = 0;
        }
        chunk_bytes += update.payload.len();
        chunk.push(update);
    }
    if !chunk.is_empty() {
        frames.extend(chunk_frames(chunk));
    }
    frames
}

fn chunk_frames(mut chunk: Vec<Staged>) -> Vec<(Target, Bytes)> {
    if chunk.len() == 1 {
        let only = chunk.pop().expect("one staged update");
        return vec![(Target::AllBut(only.peer), only.broadcast)];
    }
    let first = chunk[0].peer;
    let target = if chunk.iter().all(|s| s.peer == first) {
        Target::AllBut(first)
    } else {
        Target::All
    };
    match yrs::merge_updates_v1(chunk.iter().map(|s| s.payload.as_ref())) {
        Ok(merged) => vec![(target, protocol::encode_update(&merged))],
        Err(e) => {
            // Every payload decoded once already, so this should not happen;
            // if it does, the updates still go out one by one.
            error!(error = %e, "merging a batch failed; broadcasting updates singly");
            chunk
                .into_iter()
                .map(|s| (Target::AllBut(s.peer), s.broadcast))
                .collect()
        }
    }
}

fn try_queue(peer: &Peer, frame: &Bytes) -> bool {
    // A connection already gone is not slow; its Leave message is on the way.
    !matches!(peer.link.try_queue(frame), Queued::Full)
}
