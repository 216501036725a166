//! Live sync: the y-websocket protocol, and one room per open meeting.
//!
//! This module knows nothing about sockets. A connection joins a room and
//! then talks to it in decoded messages in and encoded frames out; the HTTP
//! layer only pumps frames between the WebSocket and these channels.

mod awareness;
pub mod guarded;
pub mod inflow;
pub mod limits;
pub mod peer;
pub mod protocol;
mod room;
pub mod state_check;
pub mod waiting;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{mpsc, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, error, info_span};

use crate::{access::Principal, guard::Ownership, meeting::MeetingId, telemetry::metric};
pub use guarded::{Applied, GuardedDoc, Rejected};
pub use limits::Limits;
pub use peer::{CloseReason, Closer, PeerId, PeerSocket};
pub use room::{
    LOCKED_REASON, LockedFlag, RoomConfig, RoomContext, RoomMsg, ServerEdit, Transition,
    TransitionJob,
};

/// Capacity of a room's inbound queue. Full means the room is busy (the
/// store is slow); readers then wait, which slows the sending clients down.
const ROOM_QUEUE: usize = 8_192;

/// A room may vanish between looking it up and joining it (it unloads after
/// its grace period); the join then simply retries with a fresh room.
const JOIN_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<RoomMsg>,
    generation: u64,
    /// Whether the room holds its protocol locked.
    locked: LockedFlag,
}

impl RoomHandle {
    /// Hands decoded messages to the room. Fails if the room has stopped.
    pub async fn send(&self, msg: RoomMsg) -> Result<(), RoomGone> {
        self.tx.send(msg).await.map_err(|_| RoomGone)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the meeting's room has stopped")]
pub struct RoomGone;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the meeting's document could not be loaded")]
    Unavailable,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// The registry of open rooms.
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Inner>,
}

struct Inner {
    // std Mutex: held only for map lookups, never across an await.
    map: Mutex<HashMap<MeetingId, RoomHandle>>,
    next_generation: std::sync::atomic::AtomicU64,
    ctx: Arc<RoomContext>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Rooms {
    pub fn new(ctx: RoomContext, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                map: Mutex::new(HashMap::new()),
                next_generation: Default::default(),
                ctx: Arc::new(ctx),
                tracker,
                shutdown,
            }),
        }
    }

    pub fn open_rooms(&self) -> usize {
        self.inner.map.lock().expect("rooms lock").len()
    }

    /// Every open room's meeting and whether the room holds it locked.
    pub fn held_states(&self) -> Vec<(MeetingId, bool)> {
        let map = self.inner.map.lock().expect("rooms lock");
        map.iter().map(|(id, h)| (*id, h.locked.get())).collect()
    }

    /// Tells `meeting`'s room, if open, that the database holds its
    /// protocol in another state (`RoomMsg::StateElsewhere`); never waits.
    /// A room too busy to take it is told again at the next check.
    pub fn state_elsewhere(&self, meeting: MeetingId) {
        if let Some(handle) = self.room_if_open(meeting) {
            let _ = handle.tx.try_send(RoomMsg::StateElsewhere);
        }
    }

    /// Joins `meeting`'s room, loading its document if needed. Returns the
    /// room and this connection's queue of outgoing frames; the first frames
    /// in it are the room's sync step 1 and the current presence.
    pub async fn join(
        &self,
        meeting: MeetingId,
        principal: Arc<Principal>,
    ) -> Result<(RoomHandle, PeerId, PeerSocket), JoinError> {
        for _ in 0..JOIN_ATTEMPTS {
            if self.inner.shutdown.is_cancelled() {
                return Err(JoinError::ShuttingDown);
            }
            let handle = self.get_or_open(meeting);
            let (link, socket) =
                peer::peer(principal.clone(), self.inner.ctx.config.outbound_queue);
            let id = link.id;
            let (joined, wait) = oneshot::channel();
            if handle.send(RoomMsg::Join { link, joined }).await.is_err() {
                continue;
            }
            if wait.await.is_ok() {
                return Ok((handle, id, socket));
            }
        }
        Err(JoinError::Unavailable)
    }

    /// Applies a change the server makes itself (the agenda mirrored into the
    /// document), stored and broadcast like any client's update, with the
    /// section ownership that holds from then on. Returns once it is durable.
    pub async fn server_edit(
        &self,
        meeting: MeetingId,
        ownership: Ownership,
        mut edit: ServerEdit,
    ) -> Result<(), JoinError> {
        for _ in 0..JOIN_ATTEMPTS {
            if self.inner.shutdown.is_cancelled() {
                return Err(JoinError::ShuttingDown);
            }
            let handle = self.get_or_open(meeting);
            let (done, wait) = oneshot::channel();
            let msg = RoomMsg::ServerEdit {
                edit,
                ownership: Some(ownership.clone()),
                done,
            };
            match handle.tx.send(msg).await {
                Ok(()) => {}
                Err(mpsc::error::SendError(RoomMsg::ServerEdit { edit: back, .. })) => {
                    edit = back;
                    continue;
                }
                Err(_) => unreachable!("the message sent is a server edit"),
            }
            return match wait.await {
                Ok(Ok(())) => Ok(()),
                _ => Err(JoinError::Unavailable),
            };
        }
        Err(JoinError::Unavailable)
    }

    /// Runs a change of the protocol's state through the meeting's room
    /// (opening it if needed), so that it is ordered with the updates the
    /// room receives: everything accepted before is committed first, and
    /// the room refuses or accepts what comes after according to the
    /// transition `job` returns along with its own result.
    pub async fn transition<T: Send + 'static>(
        &self,
        meeting: MeetingId,
        job: futures::future::BoxFuture<'static, (T, Option<Transition>)>,
    ) -> Result<T, JoinError> {
        let (result, wait) = oneshot::channel();
        let mut job: TransitionJob = Box::pin(async move {
            let (value, transition) = job.await;
            let _ = result.send(value);
            transition
        });
        for _ in 0..JOIN_ATTEMPTS {
            if self.inner.shutdown.is_cancelled() {
                return Err(JoinError::ShuttingDown);
            }
            let handle = self.get_or_open(meeting);
            match handle.tx.send(RoomMsg::Transition { job }).await {
                Ok(()) => return wait.await.map_err(|_| JoinError::Unavailable),
                Err(mpsc::error::SendError(RoomMsg::Transition { job: back })) => job = back,
                Err(_) => unreachable!("the message sent is a transition"),
            }
        }
        Err(JoinError::Unavailable)
    }

    /// Hands a message from the other nodes to `meeting`'s room, if this
    /// node holds it; never waits. A room too busy to take it reads the
    /// log instead once it gets to it.
    pub fn notify(&self, meeting: MeetingId, remote: crate::cluster::Remote) {
        let Some(handle) = self.room_if_open(meeting) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = handle.tx.try_send(RoomMsg::Remote(remote))
        {
            metrics::counter!(metric::CLUSTER_DROPPED, "why" => "room_busy").increment(1);
            tokio::spawn(async move {
                let catch_up = crate::cluster::Remote::CatchUp { head: None };
                let _ = handle.tx.send(RoomMsg::Remote(catch_up)).await;
            });
        }
    }

    /// `meeting`'s room, if it is open; never opens one.
    fn room_if_open(&self, meeting: MeetingId) -> Option<RoomHandle> {
        let map = self.inner.map.lock().expect("rooms lock");
        map.get(&meeting).cloned()
    }

    fn get_or_open(&self, meeting: MeetingId) -> RoomHandle {
        let mut map = self.inner.map.lock().expect("rooms lock");
        if let Some(handle) = map.get(&meeting) {
            return handle.clone();
        }
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let generation = self
            .inner
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let locked = LockedFlag::default();
        let handle = RoomHandle {
            tx,
            generation,
            locked: locked.clone(),
        };
        map.insert(meeting, handle.clone());
        metrics::gauge!(metric::ROOMS_OPEN).set(map.len() as f64);
        let rooms = self.clone();
        let ctx = self.inner.ctx.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tracker.spawn(
            async move {
                match room::Room::open(meeting, ctx, locked).await {
                    Ok(room) => room.run(rooms, generation, rx, shutdown).await,
                    Err(e) => {
                        error!(error = %e, "could not load the meeting's document");
                        rooms.remove(meeting, generation);
                        // Dropping rx fails the queued joins.
                    }
                }
            }
            .instrument(info_span!("room", meeting_id = %meeting)),
        );
        handle
    }

    /// Removes the room from the registry if it is still this generation and
    /// nothing is waiting in its queue. Returns whether it was removed.
    fn remove_if_idle(
        &self,
        meeting: MeetingId,
        generation: u64,
        rx: &mpsc::Receiver<RoomMsg>,
    ) -> bool {
        let mut map = self.inner.map.lock().expect("rooms lock");
        if !rx.is_empty() && !self.inner.shutdown.is_cancelled() {
            return false;
        }
        Self::remove_locked(&mut map, meeting, generation);
        true
    }

    fn remove(&self, meeting: MeetingId, generation: u64) {
        let mut map = self.inner.map.lock().expect("rooms lock");
        Self::remove_locked(&mut map, meeting, generation);
    }

    fn remove_locked(
        map: &mut HashMap<MeetingId, RoomHandle>,
        meeting: MeetingId,
        generation: u64,
    ) {
        if map
            .get(&meeting)
            .is_some_and(|h| h.generation == generation)
        {
            map.remove(&meeting);
        }
        metrics::gauge!(metric::ROOMS_OPEN).set(map.len() as f64);
    }
}
