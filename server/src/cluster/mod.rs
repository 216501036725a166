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
//! Pub/sub loses messages (disconnects, restarts, slow subscribers), so it
//! is only a fast path. A room applies remote updates in log order; a hole
//! that is not filled within `HOLE_WAIT`, a fresh subscription and every
//! reconnection make it read the log after what it has from Postgres,
//! where positions commit in order (migration 0006), so the read misses
//! nothing. While Redis is away, each node polls the log heads of the
//! meetings it holds every `POLL_EVERY` and catches up the rooms that are
//! behind: clients on different nodes still converge, only slower.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
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
    store::{DynStore, Seq},
    sync::{CloseReason, LiveConnections, Rooms},
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

/// Messages waiting to be published; beyond this they are dropped (the
/// receivers find the hole and read the log).
const OUTBOX: usize = 65_536;

/// Most messages published in one round trip to Redis.
const PUBLISH_BATCH: usize = 256;

/// Longest wait between attempts to reach Redis.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A message waiting to be published: channel and payload.
type Outgoing = (String, Vec<u8>);

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
struct Envelope {
    /// The node that published it: a node ignores its own messages.
    origin: Uuid,
    #[serde(flatten)]
    event: Event,
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

    /// Closes the matching connections of this node; returns how many.
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
}

/// Publishes one account event from outside a server (the command line):
/// every node closes the connections it names.
pub async fn announce(url: &str, event: AccountEvent) -> Result<(), ClusterError> {
    let client = redis::Client::open(url)?;
    let envelope = Envelope {
        origin: Uuid::new_v4(),
        event: Event::Account(event),
    };
    let payload = serde_json::to_vec(&envelope).expect("account events encode");
    let publish = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PUBLISH")
            .arg("protokoll:account")
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
    };
    tokio::time::timeout(Duration::from_secs(5), publish)
        .await
        .map_err(|_| ClusterError::Timeout)??;
    Ok(())
}

impl Cluster {
    /// A node that talks to the others through Redis at `url`. Nothing is
    /// connected until `start`; Redis may well be down now.
    pub fn new(url: &str, store: DynStore) -> Result<Arc<Self>, ClusterError> {
        let client = redis::Client::open(url)?;
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
        }))
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
        let envelope = Envelope {
            origin: self.node,
            event,
        };
        let payload = match serde_json::to_vec(&envelope) {
            Ok(payload) => payload,
            Err(e) => {
                warn!(error = %e, "could not encode a cluster message");
                return;
            }
        };
        if self.outbox.try_send((channel, payload)).is_err() {
            metrics::counter!(metric::CLUSTER_DROPPED, "why" => "outbox_full").increment(1);
        }
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

    /// Hands a message from Redis to where it belongs.
    fn dispatch(&self, payload: &[u8]) {
        let envelope: Envelope = match serde_json::from_slice(payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                warn!(error = %e, "ignoring an unreadable cluster message");
                return;
            }
        };
        if envelope.origin == self.node {
            return;
        }
        metrics::counter!(metric::CLUSTER_RECEIVED).increment(1);
        let Some(rooms) = self.rooms() else {
            return;
        };
        match envelope.event {
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
            Event::Account(event) => {
                if let Some(live) = self.live.get() {
                    let closed = event.apply(live);
                    debug!(closed, "account event from another node");
                }
            }
        }
    }
}

async fn publish_loop(
    cluster: Arc<Cluster>,
    mut outbox: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut retry_at = tokio::time::Instant::now();
    let mut batch: Vec<Outgoing> = Vec::new();
    loop {
        // Whatever queued up while the last batch was on its way goes out
        // in one round trip (a pipeline of PUBLISH commands, in order).
        tokio::select! {
            n = outbox.recv_many(&mut batch, PUBLISH_BATCH) => if n == 0 {
                return;
            },
            _ = shutdown.cancelled() => return,
        };
        if conn.is_none() && tokio::time::Instant::now() >= retry_at {
            match tokio::time::timeout(
                Duration::from_secs(1),
                cluster.client.get_multiplexed_async_connection(),
            )
            .await
            {
                Ok(Ok(c)) => conn = Some(c),
                _ => retry_at = tokio::time::Instant::now() + Duration::from_millis(500),
            }
        }
        let n = batch.len() as u64;
        let Some(c) = conn.as_mut() else {
            // Redis is away: the others poll the log meanwhile.
            batch.clear();
            metrics::counter!(metric::CLUSTER_DROPPED, "why" => "redis_down").increment(n);
            continue;
        };
        let mut pipe = redis::pipe();
        for (channel, payload) in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        match pipe.query_async::<()>(c).await {
            Ok(()) => metrics::counter!(metric::CLUSTER_PUBLISHED).increment(n),
            Err(e) => {
                debug!(error = %e, "publishing to Redis failed");
                metrics::counter!(metric::CLUSTER_DROPPED, "why" => "redis_error").increment(n);
                conn = None;
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
                    Some(message) => cluster.dispatch(message.get_payload_bytes()),
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

/// While Redis is away: read the log heads of held meetings and catch up
/// the rooms that are behind. While appends fail: check whether Postgres
/// is back.
async fn poll_loop(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
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
        if cluster.connected() {
            continue;
        }
        let held = cluster.held_meetings();
        if held.is_empty() {
            continue;
        }
        match tokio::time::timeout(POLL_EVERY, cluster.store.log_heads(&held)).await {
            Ok(Ok(heads)) => {
                if let Some(rooms) = cluster.rooms() {
                    for (meeting, head) in heads {
                        rooms.notify(meeting, Remote::CatchUp { head: Some(head) });
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
    fn update_messages_round_trip() {
        let envelope = Envelope {
            origin: Uuid::new_v4(),
            event: Event::Updates {
                meeting: MeetingId::new(),
                first: 3,
                last: 4,
                updates: vec![B64(vec![1, 2]), B64(vec![])],
                owners: vec![(7, UserId::new())],
                ownership: true,
                locked: None,
            },
        };
        let json = serde_json::to_vec(&envelope).unwrap();
        let back: Envelope = serde_json::from_slice(&json).unwrap();
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
}
