//! Several nodes serving the same meetings: Postgres holds the truth, Redis
//! carries the fan-out.
//!
//! Every node publishes what it accepted, once it is durable: a meeting's
//! committed updates with their log positions (`mseq`, see migration 0006),
//! presence it stamped, server edits and state changes (as updates with a
//! flag), and account events (sign-out, revocation, password reset,
//! participant removal or role change). Each node subscribes to the
//! channels of the meetings it holds and to the account channel.
//!
//! Redis is not trusted (issue 24): every message is sealed with an
//! HMAC-SHA256 under a cluster key kept in Postgres (`envelope`,
//! `store::ClusterKeys`), and a node refuses, counts and drops whatever it
//! cannot verify, what was published outside the replay window and what it
//! has seen before. An account event only makes a node check the named
//! connections against the database (`live::recheck::check`), so even a
//! genuine one replayed closes nothing that is still valid.
//!
//! Pub/sub loses messages (disconnects, restarts, slow subscribers), so it
//! is only a fast path, and nothing may depend on one message arriving. The
//! publisher keeps a batch that failed and sends it again, in order, on a
//! new connection (a connection to a restarted Redis fails on its first
//! use). A room applies remote updates in log order; a hole that is not
//! filled within `HOLE_WAIT`, a fresh subscription and every reconnection
//! make it read the log after what it has from Postgres, where positions
//! commit in order (migration 0006), so the read misses nothing, and it
//! reads the protocol's state and section ownership with it. Every
//! `HEADS_EVERY` with Redis up (every `POLL_EVERY` while it is away) each
//! node reads the log heads of the meetings it holds in one query: a room
//! behind a head waits a hole wait for Redis and then reads the log, so a
//! message lost with nothing after it (the last keystroke, an agenda
//! change) arrives within seconds all the same.
//!
//! The cluster sits below the rooms and the live connections and names
//! neither: `lib.rs` gives it two closures at `start` ([`Deliver`]), one
//! that hands a message to a meeting's room and one that hands another
//! node's account event to the live connections' check (the way y-sweet's
//! `DocConnection` takes a callback). `detach` drops them at shutdown, so
//! that nothing here keeps the rooms (and their commit writer) alive, and
//! nothing is delivered once they are gone.
//!
//! Here: the node's link and its state; `wire` (the events), `envelope`
//! (sealing them), `keys`, `publish`, `subscribe` (and delivering),
//! `heads` (finding what Redis lost), `account` (account events).

mod account;
pub mod envelope;
mod heads;
mod keys;
mod publish;
mod subscribe;
mod wire;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

pub use account::{AccountEvent, Whom, Whose};
pub use heads::{HEADS_EVERY, HOLE_WAIT, MAX_HOLE_WAIT, POLL_EVERY};
pub use publish::{announce, announce_keys};
pub use subscribe::Held;

use crate::{
    meeting::MeetingId,
    people::UserId,
    store::{ClusterKeys, Directory, DynStore, Seq, StoreError},
};

/// Longest wait between attempts to reach Redis.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long Redis may take to accept a connection, and to answer: a batch
/// that gets no answer in time is sent again on a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// At most one log line per this for refused messages and failing
/// publishes (the counters have every one).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What a room receives from the other nodes (or from the cluster's own
/// bookkeeping).
#[derive(Debug)]
pub enum Remote {
    /// Updates another node committed, positions `first..=last`.
    Updates(RemoteUpdates),
    /// Presence another node stamped (an encoded awareness message), with
    /// the person its client ids belong to.
    Presence { frame: Bytes, user: Option<UserId> },
    /// The protocol was locked or reopened elsewhere without an update.
    Locked(bool),
    /// Read the log after what the room has (a fresh subscription, a
    /// reconnection, or a log head seen ahead of the room while polling).
    CatchUp { head: Option<Seq> },
    /// The log reaches this far (read with Redis up): what the room lacks
    /// of it is read from the log if Redis does not bring it within a
    /// hole wait.
    Head(Seq),
}

#[derive(Debug)]
pub struct RemoteUpdates {
    pub first: Seq,
    pub last: Seq,
    pub updates: Vec<Vec<u8>>,
    /// Client ids the updates wrote under for the first time, and whose
    /// they are.
    pub owners: Vec<(u64, UserId)>,
    /// The section ownership changed with them (an agenda edit).
    pub ownership: bool,
    /// The protocol was locked (`true`) or reopened with them.
    pub locked: Option<bool>,
}

/// Where a node hands what the others send: given by `lib.rs` at `start`,
/// dropped at `detach`. Neither may wait (they are called from the task
/// that reads Redis).
pub struct Deliver {
    /// A message for `meeting`'s room, if this node holds it.
    pub remote: Box<dyn Fn(MeetingId, Remote) + Send + Sync>,
    /// Another node's account event: the connections it names are checked
    /// against the database, which decides whether they close.
    pub account: Box<dyn Fn(AccountEvent) + Send + Sync>,
}

/// This node's link to the others.
pub struct Cluster {
    node: Uuid,
    prefix: String,
    client: redis::Client,
    outbox: mpsc::Sender<publish::Outgoing>,
    /// Meetings this node holds a room for, and how many rooms (a room
    /// closing and its successor opening may overlap).
    held: Mutex<HashMap<MeetingId, usize>>,
    commands: mpsc::UnboundedSender<subscribe::Command>,
    commands_rx: Mutex<Option<mpsc::UnboundedReceiver<subscribe::Command>>>,
    /// Whether the subscription to Redis is up.
    connected: watch::Sender<bool>,
    /// Counts the (re)connections to Redis.
    epoch: watch::Sender<u64>,
    outbox_rx: Mutex<Option<mpsc::Receiver<publish::Outgoing>>>,
    /// Taken away at shutdown: the rooms hold this node's link, and the
    /// link must not keep the rooms (and their commit writer) alive.
    deliver: Mutex<Option<Arc<Deliver>>>,
    store: DynStore,
    /// Set when an append failed, cleared once Postgres answers again.
    storage_down: AtomicBool,
    /// How late Redis recently delivered what a hole waited for.
    lag: Mutex<heads::Lag>,
    /// When the subscription last came (back) up: a hole older than that
    /// waited for an outage, not for a slow delivery.
    subscribed_at: Mutex<Instant>,
    catch_ups: tokio::sync::Semaphore,
    /// Where the cluster keys are kept, and the ones read from there.
    key_store: ClusterKeys,
    keys: Mutex<keys::KeyRing>,
    /// When refused messages and failing publishes were last logged.
    refusals_logged: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer in time")]
    Timeout,
    #[error("the cluster keys: {0}")]
    Store(#[from] StoreError),
    #[error("several nodes need a Postgres database (the cluster keys are kept there)")]
    NoPostgres,
    #[error("reading the Redis CA file {path}: {error}")]
    CaFile {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

/// A Redis client for `url`; `ca_file` names the certificate authority of
/// a `rediss://` server with a private CA (otherwise the system's trust
/// store, or `SSL_CERT_FILE`, is used).
pub fn redis_client(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<redis::Client, ClusterError> {
    match ca_file {
        None => Ok(redis::Client::open(url)?),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|error| ClusterError::CaFile {
                path: path.to_owned(),
                error,
            })?;
            Ok(redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )?)
        }
    }
}

impl Cluster {
    /// A node that talks to the others through Redis (`client`), keeping
    /// its keys in `dir`. Nothing is connected until `start`; Redis may
    /// well be down now.
    pub fn new(
        client: redis::Client,
        store: DynStore,
        dir: Directory,
    ) -> Result<Arc<Self>, ClusterError> {
        let key_store = dir.cluster_keys().ok_or(ClusterError::NoPostgres)?;
        let (outbox, outbox_rx) = mpsc::channel(publish::OUTBOX);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            node: Uuid::new_v4(),
            prefix: "protokoll".into(),
            client,
            outbox,
            held: Mutex::new(HashMap::new()),
            commands,
            commands_rx: Mutex::new(Some(commands_rx)),
            connected: watch::Sender::new(false),
            epoch: watch::Sender::new(0),
            outbox_rx: Mutex::new(Some(outbox_rx)),
            deliver: Mutex::new(None),
            store,
            storage_down: AtomicBool::new(false),
            lag: Mutex::new(heads::Lag::none()),
            subscribed_at: Mutex::new(Instant::now()),
            catch_ups: tokio::sync::Semaphore::new(heads::CATCH_UPS_AT_ONCE),
            key_store,
            keys: Mutex::new(keys::KeyRing::default()),
            refusals_logged: Mutex::new(None),
        }))
    }

    /// Starts publishing, subscribing and polling, handing what arrives to
    /// `deliver`; runs until `shutdown`.
    pub fn start(self: &Arc<Self>, deliver: Deliver, shutdown: CancellationToken) {
        *self.deliver.lock().expect("cluster lock") = Some(Arc::new(deliver));
        let outbox = self.outbox_rx.lock().expect("cluster lock").take();
        let commands = self.commands_rx.lock().expect("cluster lock").take();
        if let (Some(outbox), Some(commands)) = (outbox, commands) {
            tokio::spawn(publish::publish_loop(
                self.clone(),
                outbox,
                shutdown.clone(),
            ));
            tokio::spawn(subscribe::subscribe_loop(
                self.clone(),
                commands,
                shutdown.clone(),
            ));
            tokio::spawn(heads::poll_loop(self.clone(), shutdown));
        }
    }

    /// Lets go of the closures given at `start`, and with them of the
    /// rooms (at shutdown, once they have stopped): nothing is delivered
    /// from then on.
    pub fn detach(&self) {
        self.deliver.lock().expect("cluster lock").take();
    }

    /// Where to hand what arrives, until `detach`.
    fn deliver(&self) -> Option<Arc<Deliver>> {
        self.deliver.lock().expect("cluster lock").clone()
    }

    pub fn node(&self) -> Uuid {
        self.node
    }

    /// Whether the subscription to Redis is up now.
    pub fn connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Changes whenever the subscription to Redis comes (back) up: events
    /// published meanwhile may be lost.
    pub fn reconnections(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// Whether appends are failing (Postgres away): rooms then refuse
    /// updates before applying them.
    pub fn storage_down(&self) -> bool {
        self.storage_down.load(Ordering::Acquire)
    }

    pub fn set_storage_down(&self, down: bool) {
        if self.storage_down.swap(down, Ordering::AcqRel) != down {
            if down {
                warn!("appends are failing: refusing updates until the database is back");
            } else {
                info!("the database answers again");
            }
        }
    }

    /// Whether a line about refused or failing messages may be logged now.
    fn log_due(&self) -> bool {
        let mut last = self.refusals_logged.lock().expect("cluster lock");
        if last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    fn meeting_channel(&self, meeting: MeetingId) -> String {
        format!("{}:meeting:{meeting}", self.prefix)
    }

    fn account_channel(&self) -> String {
        debug_assert_eq!(self.prefix, "protokoll", "announce() publishes there");
        format!("{}:account", self.prefix)
    }
}
