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
//! connections against the database (`sync::recheck::check`), so even a
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

pub mod envelope;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::{
    auth::CredentialKey,
    meeting::MeetingId,
    people::{TokenId, UserId},
    store::{ClusterKeys, Directory, DynStore, KeySecret, Seq, StoreError},
    sync::{CloseReason, LiveConnections, Rooms, live::Named},
    telemetry::metric,
};

/// How long a room waits at least for a missing log position to arrive
/// over Redis before reading it from Postgres. Two nodes' commits of one
/// meeting may be published in the other order than they committed, and a
/// node's own commit may land before another node's earlier one arrives.
pub const HOLE_WAIT: Duration = Duration::from_millis(250);

/// How long a room waits at most. Under load Redis delivers late, not
/// never: the wait follows how long holes recently took to fill (see
/// `Cluster::hole_wait`), so that a busy node does not add a read of the
/// log per meeting to its load (each read making the next deliveries later
/// still).
pub const MAX_HOLE_WAIT: Duration = Duration::from_secs(5);

/// How fast the recent delivery lag is forgotten: it halves every this.
const LAG_HALF_LIFE: Duration = Duration::from_secs(10);

/// Reads of the log (catch-ups) a node runs at once; a room that finds
/// none free tries again shortly. A reconnection to Redis asks every held
/// meeting to catch up: they take turns, leaving connections of the
/// database pool (8) to the commits, rather than all wait on the pool.
const CATCH_UPS_AT_ONCE: usize = 6;

/// How often, while Redis is away, the log heads of held meetings are read,
/// and how often a node checks whether Postgres is back after a failure.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// How often, with Redis up, the log heads of held meetings are read (one
/// query per node) to find what a lost message carried: a room behind a
/// head waits a hole wait for Redis, then reads the log. With `HOLE_WAIT`
/// this bounds how late a lost message arrives (2.25 s with Redis on time,
/// at most 7 s under lag).
pub const HEADS_EVERY: Duration = Duration::from_secs(2);

/// How often a node reads the cluster keys again (rotations and
/// retirements reach it at once when announced, and within this when not).
const KEYS_EVERY: Duration = Duration::from_secs(30);

/// Least time between two reads of the keys for a message signed with an
/// unknown key: anyone who reaches Redis can send such messages.
const KEYS_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Messages waiting to be published; beyond this they are dropped and
/// counted (the receivers find the hole when the head check reads the log).
const OUTBOX: usize = 65_536;

/// Most messages published in one round trip to Redis.
const PUBLISH_BATCH: usize = 256;

/// Longest wait between attempts to reach Redis.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long Redis may take to accept a connection, and to answer: a batch
/// that gets no answer in time is sent again on a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// At most one log line per this for refused messages and failing
/// publishes (the counters have every one).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A message waiting to be published: its channel and its event as JSON
/// (sealed when it is sent).
struct Outgoing {
    channel: String,
    event: Vec<u8>,
}

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

/// Base64 on the wire: the messages are JSON, readable with `redis-cli`.
#[derive(Debug, Clone)]
struct B64(Vec<u8>);

impl Serialize for B64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map(B64)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Event {
    Updates {
        meeting: MeetingId,
        first: Seq,
        last: Seq,
        updates: Vec<B64>,
        #[serde(default)]
        owners: Vec<(u64, UserId)>,
        #[serde(default)]
        ownership: bool,
        #[serde(default)]
        locked: Option<bool>,
    },
    Locked {
        meeting: MeetingId,
        locked: bool,
    },
    Presence {
        meeting: MeetingId,
        frame: B64,
        user: Option<UserId>,
    },
    Account(AccountEvent),
    /// The cluster keys changed (`protokoll cluster rotate-key`): read
    /// them again.
    Keys,
}

/// Whose connections an account event closes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "who", rename_all = "snake_case")]
pub enum Whose {
    /// A session (by the hex of its secret's hash, as the database keeps it).
    Session {
        hash: String,
    },
    Token {
        id: TokenId,
    },
    User {
        id: UserId,
    },
    Participant {
        meeting: MeetingId,
        user: UserId,
    },
}

/// Connections to close on every node, with the close code and reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountEvent {
    #[serde(flatten)]
    pub whose: Whose,
    pub code: u16,
    pub reason: String,
}

impl AccountEvent {
    pub fn credential(key: CredentialKey, code: u16, reason: &'static str) -> Self {
        let whose = match key {
            CredentialKey::Session(hash) => Whose::Session { hash: hex(&hash) },
            CredentialKey::Token(id) => Whose::Token { id },
        };
        Self {
            whose,
            code,
            reason: reason.into(),
        }
    }

    pub fn user(id: UserId, code: u16, reason: &'static str) -> Self {
        Self {
            whose: Whose::User { id },
            code,
            reason: reason.into(),
        }
    }

    pub fn participant(meeting: MeetingId, user: UserId, code: u16, reason: &'static str) -> Self {
        Self {
            whose: Whose::Participant { meeting, user },
            code,
            reason: reason.into(),
        }
    }

    /// The connections it names (`None`: a session hash that is not one).
    pub fn named(&self) -> Option<Named> {
        Some(match &self.whose {
            Whose::Session { hash } => Named::Credential(CredentialKey::Session(unhex(hash)?)),
            Whose::Token { id } => Named::Credential(CredentialKey::Token(*id)),
            Whose::User { id } => Named::User(*id),
            Whose::Participant { meeting, user } => Named::Participant(*meeting, *user),
        })
    }

    /// Closes the matching connections of this node; returns how many.
    /// Only for events this node made: another node's event is checked
    /// against the database instead (`sync::recheck::check`).
    pub fn apply(&self, live: &LiveConnections) -> usize {
        let reason = CloseReason::new(self.code, self.reason.clone());
        match &self.whose {
            Whose::Session { hash } => match unhex(hash) {
                Some(hash) => live.close_credential(CredentialKey::Session(hash), reason),
                None => 0,
            },
            Whose::Token { id } => live.close_credential(CredentialKey::Token(*id), reason),
            Whose::User { id } => live.close_user(*id, reason),
            Whose::Participant { meeting, user } => live.close_participant(*meeting, *user, reason),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// This node's link to the others.
pub struct Cluster {
    node: Uuid,
    prefix: String,
    client: redis::Client,
    outbox: mpsc::Sender<Outgoing>,
    /// Meetings this node holds a room for, and how many rooms (a room
    /// closing and its successor opening may overlap).
    held: Mutex<HashMap<MeetingId, usize>>,
    commands: mpsc::UnboundedSender<Command>,
    commands_rx: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
    /// Whether the subscription to Redis is up.
    connected: watch::Sender<bool>,
    /// Counts the (re)connections to Redis.
    epoch: watch::Sender<u64>,
    outbox_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    /// Taken away at shutdown: the rooms hold this node's link, and the
    /// link must not keep the rooms (and their commit writer) alive.
    rooms: Mutex<Option<Rooms>>,
    live: OnceLock<Arc<LiveConnections>>,
    store: DynStore,
    /// Set when an append failed, cleared once Postgres answers again.
    storage_down: AtomicBool,
    /// How late Redis recently delivered what a hole waited for.
    lag: Mutex<Lag>,
    /// When the subscription last came (back) up: a hole older than that
    /// waited for an outage, not for a slow delivery.
    subscribed_at: Mutex<std::time::Instant>,
    catch_ups: tokio::sync::Semaphore,
    /// Where the cluster keys are kept, and the ones read from there.
    key_store: ClusterKeys,
    keys: Mutex<KeyRing>,
    /// Account events are checked against the database (`recheck`).
    dir: Directory,
    /// When refused messages and failing publishes were last logged.
    refusals_logged: Mutex<Option<Instant>>,
}

/// The cluster keys a node holds: newest first, none of them retired.
#[derive(Default)]
struct KeyRing {
    keys: Vec<(i64, KeySecret)>,
    /// When they were last read from the database.
    read_at: Option<Instant>,
}

impl KeyRing {
    fn get(&self, id: i64) -> Option<KeySecret> {
        self.keys
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, s)| s.clone())
    }

    fn newest(&self) -> Option<(i64, KeySecret)> {
        self.keys.first().cloned()
    }
}

/// The longest recent delivery lag, forgotten with `LAG_HALF_LIFE`.
#[derive(Debug)]
struct Lag {
    seconds: f64,
    at: std::time::Instant,
}

/// The hole wait for a delivery lag of `lag` seconds.
fn wait_for(lag: f64) -> Duration {
    Duration::from_secs_f64((2.0 * lag).min(MAX_HOLE_WAIT.as_secs_f64())).max(HOLE_WAIT)
}

impl Lag {
    fn now(&self, now: std::time::Instant) -> f64 {
        let age = now.saturating_duration_since(self.at).as_secs_f64();
        self.seconds * 0.5f64.powf(age / LAG_HALF_LIFE.as_secs_f64())
    }
}

enum Command {
    Subscribe(MeetingId),
    Unsubscribe(MeetingId),
}

/// Keeps a meeting subscribed while a room holds it.
pub struct Held {
    cluster: Arc<Cluster>,
    meeting: MeetingId,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.cluster.release(self.meeting);
    }
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

/// Publishes one account event from outside a server (the command line):
/// every node checks the connections it names against the database and
/// closes those that are revoked. Signed with the newest cluster key
/// (created if there is none yet).
pub async fn announce(
    client: &redis::Client,
    keys: &ClusterKeys,
    event: AccountEvent,
) -> Result<(), ClusterError> {
    let key = keys.ensure().await?.into_iter().next();
    let key = key.ok_or(StoreError::Corrupt(
        "no cluster key after creating one".into(),
    ))?;
    publish_once(client, (key.id, key.secret), Event::Account(event)).await
}

/// Tells every node that the cluster keys changed, signed with `key` (one
/// the nodes know already: the key they signed with until now).
pub async fn announce_keys(
    client: &redis::Client,
    key: (i64, KeySecret),
) -> Result<(), ClusterError> {
    publish_once(client, key, Event::Keys).await
}

async fn publish_once(
    client: &redis::Client,
    (key_id, secret): (i64, KeySecret),
    event: Event,
) -> Result<(), ClusterError> {
    let channel = "protokoll:account";
    let event = serde_json::to_vec(&event).expect("account events encode");
    let payload = envelope::seal(
        key_id,
        &secret,
        channel,
        Uuid::new_v4(),
        1,
        now_ms(),
        &event,
    );
    let publish = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
    };
    tokio::time::timeout(Duration::from_secs(5), publish)
        .await
        .map_err(|_| ClusterError::Timeout)??;
    Ok(())
}

/// Milliseconds since the Unix epoch: the publish time inside a sealed
/// message.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Cluster {
    /// A node that talks to the others through Redis (`client`), keeping
    /// its keys in and checking account events against `dir`. Nothing is
    /// connected until `start`; Redis may well be down now.
    pub fn new(
        client: redis::Client,
        store: DynStore,
        dir: Directory,
    ) -> Result<Arc<Self>, ClusterError> {
        let key_store = dir.cluster_keys().ok_or(ClusterError::NoPostgres)?;
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
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
            rooms: Mutex::new(None),
            live: OnceLock::new(),
            store,
            storage_down: AtomicBool::new(false),
            lag: Mutex::new(Lag {
                seconds: 0.0,
                at: std::time::Instant::now(),
            }),
            subscribed_at: Mutex::new(std::time::Instant::now()),
            catch_ups: tokio::sync::Semaphore::new(CATCH_UPS_AT_ONCE),
            key_store,
            keys: Mutex::new(KeyRing::default()),
            dir,
            refusals_logged: Mutex::new(None),
        }))
    }

    /// Reads the cluster keys, creating the first one if there is none
    /// (the first node to start with Redis). Before `start`: a node signs
    /// everything it publishes.
    pub async fn prepare_keys(&self) -> Result<(), ClusterError> {
        let keys = self.key_store.ensure().await?;
        self.install_keys(keys);
        Ok(())
    }

    fn install_keys(&self, keys: Vec<crate::store::ClusterKey>) {
        let mut ring = self.keys.lock().expect("cluster lock");
        ring.keys = keys.into_iter().map(|k| (k.id, k.secret)).collect();
        ring.read_at = Some(Instant::now());
        metrics::gauge!(metric::CLUSTER_KEYS).set(ring.keys.len() as f64);
    }

    /// Reads the keys again; on failure the ones held stay.
    async fn reload_keys(&self) {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.key_store.active()).await {
            Ok(Ok(keys)) if !keys.is_empty() => {
                let before: Vec<i64> = self.key_ids();
                self.install_keys(keys);
                let after = self.key_ids();
                if before != after {
                    info!(?after, "cluster keys read again");
                }
            }
            Ok(Ok(_)) => warn!("no cluster key is active; keeping the ones held"),
            Ok(Err(e)) => warn!(error = %e, "could not read the cluster keys"),
            Err(_) => warn!("reading the cluster keys timed out"),
        }
    }

    fn key_ids(&self) -> Vec<i64> {
        let ring = self.keys.lock().expect("cluster lock");
        ring.keys.iter().map(|(id, _)| *id).collect()
    }

    /// The key a message names: one held, or one newer than every key held
    /// (a rotation this node has not heard of), read again from the
    /// database at most once per `KEYS_AT_MOST_EVERY`. Ids only grow: an
    /// older id that is not held is retired, and reads nothing.
    async fn key(&self, id: i64) -> Option<KeySecret> {
        let may_read = {
            let ring = self.keys.lock().expect("cluster lock");
            if let Some(secret) = ring.get(id) {
                return Some(secret);
            }
            ring.keys.first().is_none_or(|(newest, _)| id > *newest)
                && ring
                    .read_at
                    .is_none_or(|at| at.elapsed() >= KEYS_AT_MOST_EVERY)
        };
        if !may_read {
            return None;
        }
        self.reload_keys().await;
        self.keys.lock().expect("cluster lock").get(id)
    }

    fn signing_key(&self) -> Option<(i64, KeySecret)> {
        self.keys.lock().expect("cluster lock").newest()
    }

    /// Starts publishing, subscribing and polling, delivering to `rooms`
    /// and closing connections in `live`; runs until `shutdown`.
    pub fn start(
        self: &Arc<Self>,
        rooms: Rooms,
        live: Arc<LiveConnections>,
        shutdown: CancellationToken,
    ) {
        *self.rooms.lock().expect("cluster lock") = Some(rooms);
        let _ = self.live.set(live);
        let outbox = self.outbox_rx.lock().expect("cluster lock").take();
        let commands = self.commands_rx.lock().expect("cluster lock").take();
        if let (Some(outbox), Some(commands)) = (outbox, commands) {
            tokio::spawn(publish_loop(self.clone(), outbox, shutdown.clone()));
            tokio::spawn(subscribe_loop(self.clone(), commands, shutdown.clone()));
            tokio::spawn(poll_loop(self.clone(), shutdown));
        }
    }

    /// Lets go of the rooms (at shutdown, once they have stopped).
    pub fn detach(&self) {
        self.rooms.lock().expect("cluster lock").take();
    }

    fn rooms(&self) -> Option<Rooms> {
        self.rooms.lock().expect("cluster lock").clone()
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

    /// How long a hole may stay open before the room reads the log: twice
    /// the longest recent delivery lag, within `HOLE_WAIT..=MAX_HOLE_WAIT`.
    pub fn hole_wait(&self) -> Duration {
        let lag = self
            .lag
            .lock()
            .expect("cluster lock")
            .now(std::time::Instant::now());
        wait_for(lag)
    }

    /// A position a room waited for since `opened` arrived over Redis now
    /// (in time, or after the room had read it from the log). Holes that
    /// opened before the subscription last came up say nothing of the lag.
    pub fn note_delivery_lag(&self, opened: std::time::Instant) {
        if opened < *self.subscribed_at.lock().expect("cluster lock") {
            return;
        }
        let now = std::time::Instant::now();
        let waited = now.saturating_duration_since(opened);
        let mut lag = self.lag.lock().expect("cluster lock");
        let current = lag.now(now);
        *lag = Lag {
            seconds: current.max(waited.as_secs_f64()),
            at: now,
        };
        metrics::gauge!(metric::CLUSTER_HOLE_WAIT_SECONDS).set(wait_for(lag.seconds).as_secs_f64());
    }

    /// A turn to read the log, if one is free now.
    pub fn catch_up_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.catch_ups.try_acquire().ok()
    }

    /// Subscribes to `meeting` for as long as the returned value lives.
    pub fn hold(self: &Arc<Self>, meeting: MeetingId) -> Held {
        let mut held = self.held.lock().expect("cluster lock");
        let count = held.entry(meeting).or_default();
        *count += 1;
        if *count == 1 {
            let _ = self.commands.send(Command::Subscribe(meeting));
        }
        Held {
            cluster: self.clone(),
            meeting,
        }
    }

    fn release(&self, meeting: MeetingId) {
        let mut held = self.held.lock().expect("cluster lock");
        if let Some(count) = held.get_mut(&meeting) {
            *count -= 1;
            if *count == 0 {
                held.remove(&meeting);
                let _ = self.commands.send(Command::Unsubscribe(meeting));
            }
        }
    }

    fn held_meetings(&self) -> Vec<MeetingId> {
        self.held
            .lock()
            .expect("cluster lock")
            .keys()
            .copied()
            .collect()
    }

    fn meeting_channel(&self, meeting: MeetingId) -> String {
        format!("{}:meeting:{meeting}", self.prefix)
    }

    fn account_channel(&self) -> String {
        debug_assert_eq!(self.prefix, "protokoll", "announce() publishes there");
        format!("{}:account", self.prefix)
    }

    fn publish(&self, channel: String, event: Event) {
        let event = match serde_json::to_vec(&event) {
            Ok(event) => event,
            Err(e) => {
                warn!(error = %e, "could not encode a cluster message");
                return;
            }
        };
        if self.outbox.try_send(Outgoing { channel, event }).is_err() {
            metrics::counter!(metric::CLUSTER_DROPPED, "why" => "outbox_full").increment(1);
            if self.log_due() {
                warn!(
                    "the queue of messages to Redis is full: dropping (the other nodes read \
                     the log when they check its heads)"
                );
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

    /// Announces updates this node committed at `first..=last`.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_updates(
        &self,
        meeting: MeetingId,
        first: Seq,
        last: Seq,
        updates: Vec<Vec<u8>>,
        owners: Vec<(u64, UserId)>,
        ownership: bool,
        locked: Option<bool>,
    ) {
        let event = Event::Updates {
            meeting,
            first,
            last,
            updates: updates.into_iter().map(B64).collect(),
            owners,
            ownership,
            locked,
        };
        self.publish(self.meeting_channel(meeting), event);
    }

    pub fn publish_locked(&self, meeting: MeetingId, locked: bool) {
        self.publish(
            self.meeting_channel(meeting),
            Event::Locked { meeting, locked },
        );
    }

    /// Announces presence this node stamped (an encoded awareness message).
    pub fn publish_presence(&self, meeting: MeetingId, frame: &[u8], user: Option<UserId>) {
        let event = Event::Presence {
            meeting,
            frame: B64(frame.to_vec()),
            user,
        };
        self.publish(self.meeting_channel(meeting), event);
    }

    /// Closes matching connections here and on every other node.
    pub fn publish_account(&self, event: AccountEvent) {
        self.publish(self.account_channel(), Event::Account(event));
    }

    /// Verifies a message from Redis and hands it to where it belongs;
    /// refuses (counts, drops, logs at most every `LOG_EVERY`) what does
    /// not verify, is outside the replay window or was seen before.
    async fn receive(&self, channel: &str, payload: &[u8], seen: &mut envelope::Seen) {
        let opened = match self.open(channel, payload, seen).await {
            Ok(Some(opened)) => opened,
            Ok(None) => return,
            Err(why) => {
                metrics::counter!(metric::CLUSTER_REFUSED, "why" => why.label()).increment(1);
                if self.log_due() {
                    // Never the payload: it may be anything.
                    warn!(
                        channel,
                        why = why.label(),
                        "refusing a message from Redis (one line per 10 s at most; \
                         protokoll_cluster_refused_total counts them all)"
                    );
                }
                return;
            }
        };
        metrics::counter!(metric::CLUSTER_RECEIVED).increment(1);
        self.dispatch(opened.event).await;
    }

    /// The event inside a message, if it is authentic, fresh, another
    /// node's and not seen before (`Ok(None)`: this node's own).
    async fn open(
        &self,
        channel: &str,
        payload: &[u8],
        seen: &mut envelope::Seen,
    ) -> Result<Option<envelope::Opened<Event>>, envelope::Refused> {
        let message = envelope::parse(payload).ok_or(envelope::Refused::Unauthenticated)?;
        let secret = self
            .key(message.key_id)
            .await
            .ok_or(envelope::Refused::UnknownKey)?;
        let opened: envelope::Opened<Event> = message.open(&secret, channel)?;
        if opened.origin == self.node {
            return Ok(None);
        }
        if !envelope::fresh(opened.ts, now_ms()) {
            return Err(envelope::Refused::Expired);
        }
        if !seen.first_time(opened.origin, opened.seq, Instant::now()) {
            return Err(envelope::Refused::Replayed);
        }
        Ok(Some(opened))
    }

    /// Hands an authenticated event to where it belongs.
    async fn dispatch(&self, event: Event) {
        let event = match event {
            Event::Account(event) => return self.check_account(event),
            // Read inline: messages signed with a new key may follow at once.
            Event::Keys => return self.reload_keys().await,
            event => event,
        };
        let Some(rooms) = self.rooms() else {
            return;
        };
        match event {
            Event::Updates {
                meeting,
                first,
                last,
                updates,
                owners,
                ownership,
                locked,
            } => {
                if first > last || last - first + 1 != updates.len() as Seq {
                    warn!(%meeting, first, last, "ignoring an inconsistent update message");
                    return;
                }
                rooms.notify(
                    meeting,
                    Remote::Updates(RemoteUpdates {
                        first,
                        last,
                        updates: updates.into_iter().map(|u| u.0).collect(),
                        owners,
                        ownership,
                        locked,
                    }),
                );
            }
            Event::Locked { meeting, locked } => rooms.notify(meeting, Remote::Locked(locked)),
            Event::Presence {
                meeting,
                frame,
                user,
            } => rooms.notify(
                meeting,
                Remote::Presence {
                    frame: Bytes::from(frame.0),
                    user,
                },
            ),
            Event::Account(_) | Event::Keys => unreachable!("handled above"),
        }
    }

    /// Another node's account event: the connections it names are checked
    /// against the database, which decides whether they close.
    fn check_account(&self, event: AccountEvent) {
        let (Some(live), Some(named)) = (self.live.get().cloned(), event.named()) else {
            return;
        };
        let dir = self.dir.clone();
        tokio::spawn(async move {
            let hint = Some((event.code, event.reason.as_str()));
            match crate::sync::recheck::check(&dir, &live, named, hint).await {
                Ok(closed) => {
                    metrics::counter!(metric::CLUSTER_ACCOUNT_CHECKS).increment(1);
                    debug!(closed = closed.total(), "account event checked");
                }
                Err(e) => warn!(
                    error = %e,
                    "could not check an account event; the next recheck will"
                ),
            }
        });
    }
}

/// Sends what the node publishes, in order, sealed with the newest key. A
/// batch that fails is kept and sent again on a new connection (a
/// connection to a Redis that restarted fails on its first use; the
/// receivers drop what they got twice), at once and then backing off up to
/// `MAX_BACKOFF` or until the subscription is back, while later messages
/// wait in the outbox (bounded).
async fn publish_loop(
    cluster: Arc<Cluster>,
    mut outbox: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(ANSWER_TIMEOUT));
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut incoming: Vec<Outgoing> = Vec::new();
    // Waiting to be sent, with the sequence number each was given.
    let mut batch: Vec<(u64, Outgoing)> = Vec::new();
    let mut seq: u64 = 0;
    let mut failures: u32 = 0;
    // The subscription coming back means Redis answers again: a backoff
    // ends then, so that what waited goes out at once.
    let mut reconnected = cluster.reconnections();
    loop {
        if batch.is_empty() {
            // Whatever queued up while the last batch was on its way goes
            // out in one round trip (a pipeline of PUBLISH commands).
            tokio::select! {
                n = outbox.recv_many(&mut incoming, PUBLISH_BATCH) => if n == 0 {
                    return;
                },
                _ = shutdown.cancelled() => return,
            };
            for message in incoming.drain(..) {
                seq += 1;
                batch.push((seq, message));
            }
        }
        if failures > 1 {
            // The first retry goes at once: the usual failure is a
            // connection that died with a Redis restart, and a new one works.
            let backoff =
                (Duration::from_millis(100) * 2u32.pow(failures.min(6) - 2)).min(MAX_BACKOFF);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = reconnected.changed() => {}
                _ = shutdown.cancelled() => {
                    metrics::counter!(metric::CLUSTER_DROPPED, "why" => "redis_down")
                        .increment(batch.len() as u64);
                    return;
                }
            }
        }
        if conn.is_none() {
            match cluster
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    failures += 1;
                    if cluster.log_due() {
                        warn!(error = %e, waiting = batch.len(), "cannot reach Redis to publish; trying again");
                    }
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let Some((key_id, secret)) = cluster.signing_key() else {
            // Read at start-up; only a database that lost every key gets here.
            failures += 1;
            cluster.reload_keys().await;
            continue;
        };
        let sent_at = now_ms();
        let mut pipe = redis::pipe();
        for (seq, message) in &batch {
            let sealed = envelope::seal(
                key_id,
                &secret,
                &message.channel,
                cluster.node,
                *seq,
                sent_at,
                &message.event,
            );
            pipe.cmd("PUBLISH")
                .arg(&message.channel)
                .arg(sealed)
                .ignore();
        }
        match pipe.query_async::<()>(c).await {
            Ok(()) => {
                metrics::counter!(metric::CLUSTER_PUBLISHED).increment(batch.len() as u64);
                batch.clear();
                failures = 0;
            }
            Err(e) => {
                // Kept, and sent again on a new connection.
                conn = None;
                failures += 1;
                metrics::counter!(metric::CLUSTER_PUBLISH_RETRIES).increment(1);
                if failures > 1 && cluster.log_due() {
                    warn!(error = %e, waiting = batch.len(), "publishing to Redis failed; trying again");
                } else {
                    debug!(error = %e, "publishing to Redis failed; sending again on a new connection");
                }
            }
        }
    }
}

async fn subscribe_loop(
    cluster: Arc<Cluster>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    // What was received within the replay window, across reconnections.
    let mut seen = envelope::Seen::default();
    // When the subscription was lost, for the outage's length in the log.
    let mut lost_at: Option<std::time::Instant> = None;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let connected = tokio::select! {
            c = tokio::time::timeout(Duration::from_secs(2), cluster.client.get_async_pubsub()) => c,
            _ = shutdown.cancelled() => return,
        };
        let pubsub = match connected {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                debug!(error = %e, "Redis unreachable");
                wait_draining(&mut commands, backoff, &shutdown).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_) => {
                wait_draining(&mut commands, backoff, &shutdown).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut channels = vec![cluster.account_channel()];
        let held = cluster.held_meetings();
        channels.extend(held.iter().map(|m| cluster.meeting_channel(*m)));
        if let Err(e) = sink.subscribe(&channels).await {
            debug!(error = %e, "subscribing failed");
            wait_draining(&mut commands, backoff, &shutdown).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        match lost_at.take() {
            Some(lost) => {
                let outage = lost.elapsed();
                metrics::gauge!(metric::CLUSTER_LAST_OUTAGE).set(outage.as_secs_f64());
                info!(
                    meetings = held.len(),
                    outage_ms = outage.as_millis() as u64,
                    "subscribed to Redis again; catching up the held meetings from the log"
                );
            }
            None => info!(meetings = held.len(), "subscribed to Redis"),
        }
        *cluster.subscribed_at.lock().expect("cluster lock") = std::time::Instant::now();
        cluster.connected.send_replace(true);
        cluster.epoch.send_modify(|e| *e += 1);
        metrics::gauge!(metric::CLUSTER_CONNECTED).set(1.0);
        // Whatever was published while we were away is read from the log.
        if let Some(rooms) = cluster.rooms() {
            for meeting in held {
                rooms.notify(meeting, Remote::CatchUp { head: None });
            }
        }
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Subscribe(meeting)) => {
                        if sink.subscribe(cluster.meeting_channel(meeting)).await.is_err() {
                            break;
                        }
                        // Published between loading the room and now.
                        if let Some(rooms) = cluster.rooms() {
                            rooms.notify(meeting, Remote::CatchUp { head: None });
                        }
                    }
                    Some(Command::Unsubscribe(meeting)) => {
                        if sink.unsubscribe(cluster.meeting_channel(meeting)).await.is_err() {
                            break;
                        }
                    }
                    None => return,
                },
                message = stream.next() => match message {
                    Some(message) => {
                        cluster
                            .receive(message.get_channel_name(), message.get_payload_bytes(), &mut seen)
                            .await
                    }
                    None => break,
                },
                _ = shutdown.cancelled() => return,
            }
        }
        lost_at = Some(std::time::Instant::now());
        warn!("lost the Redis subscription; polling the log until it is back");
        cluster.connected.send_replace(false);
        metrics::gauge!(metric::CLUSTER_CONNECTED).set(0.0);
    }
}

/// Waits `delay`, taking subscription changes meanwhile (the held set is
/// what a reconnection subscribes to; the commands themselves are moot).
async fn wait_draining(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    delay: Duration,
    shutdown: &CancellationToken,
) {
    let until = tokio::time::sleep(delay);
    tokio::pin!(until);
    loop {
        tokio::select! {
            _ = &mut until => return,
            _ = shutdown.cancelled() => return,
            command = commands.recv() => if command.is_none() { return },
        }
    }
}

/// Reads the log heads of held meetings and tells the rooms: every
/// `POLL_EVERY` while Redis is away (rooms behind catch up at once), every
/// `HEADS_EVERY` while it is up (rooms behind wait a hole wait for Redis
/// first: see `Remote::Head`). While appends fail: checks whether Postgres
/// is back. Every `KEYS_EVERY`: reads the cluster keys again.
async fn poll_loop(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heads_read = Instant::now();
    let mut keys_read = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if keys_read.elapsed() >= KEYS_EVERY {
            keys_read = Instant::now();
            cluster.reload_keys().await;
        }
        if cluster.storage_down() {
            match tokio::time::timeout(POLL_EVERY, cluster.store.ping()).await {
                Ok(Ok(())) => cluster.set_storage_down(false),
                _ => continue,
            }
            if let Some(rooms) = cluster.rooms() {
                for meeting in cluster.held_meetings() {
                    rooms.notify(meeting, Remote::CatchUp { head: None });
                }
            }
        }
        let connected = cluster.connected();
        if connected && heads_read.elapsed() < HEADS_EVERY {
            continue;
        }
        heads_read = Instant::now();
        let held = cluster.held_meetings();
        if held.is_empty() {
            continue;
        }
        match tokio::time::timeout(POLL_EVERY, cluster.store.log_heads(&held)).await {
            Ok(Ok(heads)) => {
                if let Some(rooms) = cluster.rooms() {
                    for (meeting, head) in heads {
                        let remote = if connected {
                            Remote::Head(head)
                        } else {
                            Remote::CatchUp { head: Some(head) }
                        };
                        rooms.notify(meeting, remote);
                    }
                }
            }
            Ok(Err(e)) => debug!(error = %e, "reading log heads failed"),
            Err(_) => debug!("reading log heads timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hole_wait_follows_the_delivery_lag_and_forgets_it() {
        let at = std::time::Instant::now();
        let lag = Lag { seconds: 1.5, at };
        assert_eq!(lag.now(at), 1.5);
        assert!((lag.now(at + LAG_HALF_LIFE) - 0.75).abs() < 1e-9);
        assert!((lag.now(at + 4 * LAG_HALF_LIFE) - 0.09375).abs() < 1e-9);
        assert_eq!(wait_for(0.0), HOLE_WAIT, "Redis on time: the shortest wait");
        assert_eq!(wait_for(0.1), HOLE_WAIT);
        assert_eq!(wait_for(1.5), Duration::from_secs(3), "twice the lag");
        assert_eq!(wait_for(60.0), MAX_HOLE_WAIT, "never longer than this");
    }

    #[test]
    fn session_hashes_survive_the_wire() {
        let hash = [0xab; 32];
        let event = AccountEvent::credential(CredentialKey::Session(hash), 4401, "signed out");
        let json = serde_json::to_string(&event).unwrap();
        let back: AccountEvent = serde_json::from_str(&json).unwrap();
        match back.whose {
            Whose::Session { hash: text } => assert_eq!(unhex(&text), Some(hash)),
            other => panic!("{other:?}"),
        }
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"é".repeat(32)), None);
    }

    #[test]
    fn update_messages_round_trip_sealed() {
        let event = Event::Updates {
            meeting: MeetingId::new(),
            first: 3,
            last: 4,
            updates: vec![B64(vec![1, 2]), B64(vec![])],
            owners: vec![(7, UserId::new())],
            ownership: true,
            locked: None,
        };
        let json = serde_json::to_vec(&event).unwrap();
        let secret = KeySecret::from_bytes([9; 32]);
        let origin = Uuid::new_v4();
        let wire = envelope::seal(1, &secret, "protokoll:meeting:x", origin, 5, 42, &json);
        let message = envelope::parse(&wire).unwrap();
        let back: envelope::Opened<Event> = message.open(&secret, "protokoll:meeting:x").unwrap();
        assert_eq!((back.origin, back.seq, back.ts), (origin, 5, 42));
        match back.event {
            Event::Updates {
                first,
                last,
                updates,
                ..
            } => {
                assert_eq!((first, last), (3, 4));
                assert_eq!(updates[0].0, vec![1, 2]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_change_notices_encode() {
        let json = serde_json::to_string(&Event::Keys).unwrap();
        assert_eq!(json, r#"{"kind":"keys"}"#);
    }
}
