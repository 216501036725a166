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
//!
//! This file holds the room's state, the messages it takes and its batch
//! loop; each concern of a batch has a file of its own: opening and
//! rebuilding the document (`load`), a client's update on its way in
//! (`update`), the commit and what goes out after it (`commit`), the
//! protocol's state (`state`), presence (`presence`), the connections
//! (`peers`), snapshots (`snapshot`), and the part of several nodes
//! (`node`).

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
use tracing::debug;
use yrs::{ClientID, StateVector};

use super::{
    Rooms,
    awareness::AwarenessState,
    guarded::GuardedDoc,
    peer::{PeerId, PeerLink, QueueLimits, SERVER_PEER},
    protocol::{self, Inbound},
    waiting::Waiting,
};
use crate::{
    cluster::{self, Cluster, Remote, RemoteUpdates},
    guard::Ownership,
    meeting::MeetingId,
    people::UserId,
    store::{CommitWriter, CommitWriterError, DynStore, Seq},
    telemetry::metric,
};
use commit::Staged;
use load::Warming;
use peers::ClientOwners;

mod commit;
mod load;
mod node;
mod peers;
mod presence;
mod snapshot;
mod state;
mod update;

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

impl Room {
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
                    self.commit_staged(&mut staged, &mut outgoing, &mut server_edits, &mut rebuild)
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
                    self.commit_staged(&mut staged, &mut outgoing, &mut server_edits, &mut rebuild)
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
        self.commit_staged(&mut staged, &mut outgoing, &mut server_edits, &mut rebuild)
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
}
