//! The room's end of one client connection: a bounded queue of outgoing
//! frames and a way to close the connection with a reason.
//!
//! Nothing here blocks. A queue that is full means the client is not
//! reading; the room then closes it (1013) instead of waiting for it or
//! silently dropping frames, and the client reconnects and resyncs.

use std::{
    borrow::Cow,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::access::Principal;

/// WebSocket close codes used by the server (RFC 6455 section 7.4.1).
pub mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
    pub const SERVICE_RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Application codes (4000-4999): y-websocket clients do not reconnect
    /// after these, which is right for a credential that no longer works.
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    /// Over a size limit: the meeting's document or a presence state.
    pub const TOO_LARGE: u16 = 4413;
    /// Too many: connections (per user, client address or meeting) or
    /// presence client ids on one connection.
    pub const TOO_MANY: u16 = 4429;
    /// The protocol is locked: the update was not accepted.
    pub const PROTOCOL_LOCKED: u16 = 4423;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: Cow<'static, str>,
    /// A frame to deliver just before the close frame (the auth message of a
    /// refused client, say).
    pub last_frame: Option<Bytes>,
}

impl CloseReason {
    pub fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
            last_frame: None,
        }
    }

    pub fn with_last_frame(mut self, frame: Bytes) -> Self {
        self.last_frame = Some(frame);
        self
    }
}

/// Asks a connection to close. The first reason given wins.
#[derive(Debug, Default)]
pub struct Closer {
    reason: OnceLock<CloseReason>,
    token: CancellationToken,
}

impl Closer {
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<&CloseReason> {
        self.reason.get()
    }

    pub async fn closed(&self) {
        self.token.cancelled().await
    }

    pub fn is_closed(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// Identifies a connection within the process.
pub type PeerId = u64;

/// The sender of updates the server makes itself (agenda changes).
pub const SERVER_PEER: PeerId = 0;

pub fn next_peer_id() -> PeerId {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Limits on what may wait for one connection.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub frames: usize,
    pub bytes: usize,
}

/// What the room holds for each connection.
#[derive(Debug)]
pub struct PeerLink {
    pub id: PeerId,
    pub principal: Arc<Principal>,
    outbox: mpsc::Sender<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    pub closer: Arc<Closer>,
}

pub enum Queued {
    Yes,
    /// The client is too far behind: its queue is full.
    Full,
    /// The connection has ended already.
    Gone,
}

impl PeerLink {
    /// Queues a frame without waiting. A frame larger than the byte limit
    /// is still accepted into an empty queue, so that one large update does
    /// not get a reading client disconnected.
    pub fn try_queue(&self, frame: &Bytes) -> Queued {
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if queued > 0 && queued + frame.len() > self.max_bytes {
            return Queued::Full;
        }
        match self.outbox.try_send(frame.clone()) {
            Ok(()) => {
                self.queued_bytes.fetch_add(frame.len(), Ordering::AcqRel);
                Queued::Yes
            }
            Err(mpsc::error::TrySendError::Full(_)) => Queued::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::Gone,
        }
    }
}

/// The connection's end: frames to write, and the close request.
#[derive(Debug)]
pub struct PeerSocket {
    outbox: mpsc::Receiver<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    pub closer: Arc<Closer>,
}

impl PeerSocket {
    /// The next frame to write; `None` once the room has let go.
    pub async fn next_frame(&mut self) -> Option<Bytes> {
        let frame = self.outbox.recv().await?;
        self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }

    /// The next frame if one is queued already, without waiting.
    pub fn try_next_frame(&mut self) -> Option<Bytes> {
        let frame = self.outbox.try_recv().ok()?;
        self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }
}

pub fn peer(principal: Arc<Principal>, limits: QueueLimits) -> (PeerLink, PeerSocket) {
    let (tx, rx) = mpsc::channel(limits.frames.max(1));
    let closer = Arc::new(Closer::default());
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (
        PeerLink {
            id: next_peer_id(),
            principal,
            outbox: tx,
            queued_bytes: queued_bytes.clone(),
            max_bytes: limits.bytes,
            closer: closer.clone(),
        },
        PeerSocket {
            outbox: rx,
            queued_bytes,
            closer,
        },
    )
}
