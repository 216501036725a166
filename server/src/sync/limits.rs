//! Quotas and flood control: how much one meeting may hold and how fast one
//! connection may talk. The guard decides *where* someone may write; this
//! decides *how much* and *how fast*.
//!
//! Two mechanisms live here, both free of sockets so they can be tested
//! with a fake clock:
//!
//! - `TokenBucket`: a connection's document messages, presence messages
//!   and bytes. A client
//!   that sends faster than its bucket refills is never refused and nothing
//!   it sent is dropped (a dropped update would leave the client's document
//!   diverged from the server's): the connection simply stops reading its
//!   socket until the bucket has refilled, so TCP slows the client down.
//! - `PresenceGate`: a connection's awareness (presence) messages. Only the
//!   latest state per client id counts, so excess messages are coalesced:
//!   the gate lets a batch through at most once per interval, and whatever
//!   is pending at the end of an interval always goes out then (a user's
//!   final caret position is never lost).
//!
//! What this must never do: drop or reorder document updates.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use yrs::{
    ClientID,
    sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry},
};

/// Names of the limits, as the `limit` label of
/// `protokoll_limit_trips_total` and in logs.
pub mod limit {
    /// An update would take the meeting's document past its size cap (4413).
    pub const DOCUMENT_SIZE: &str = "document_size";
    /// A connection sent document messages faster than its message bucket
    /// refills (slowed, nothing refused).
    pub const UPDATE_RATE: &str = "update_rate";
    /// The same for bytes.
    pub const UPDATE_BYTES: &str = "update_bytes";
    /// The same for presence messages.
    pub const PRESENCE_RATE: &str = "presence_rate";
    /// An awareness state larger than allowed (4413).
    pub const PRESENCE_SIZE: &str = "presence_size";
    /// A connection spoke for more presence client ids than allowed (4429).
    pub const PRESENCE_CLIENTS: &str = "presence_clients";
    /// A meeting already had as many connections as allowed (4429).
    pub const MEETING_CONNECTIONS: &str = "meeting_connections";
}

/// Counts a limit's trip in `protokoll_limit_trips_total{limit=...}`.
pub fn count_trip(name: &'static str) {
    metrics::counter!(crate::telemetry::metric::LIMIT_TRIPS, "limit" => name).increment(1);
}

/// The per-connection and per-meeting limits, from the configuration
/// (where their defaults are written).
pub use crate::config::Limits;

/// A token bucket that may go into debt: a message costing more than the
/// tokens left is still taken (it has been read already), and the caller
/// waits until the debt is paid back before reading the next one. So a
/// single message larger than the burst never blocks forever.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A rate of zero or less (or not a number) means no
    /// limit.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn unlimited(&self) -> bool {
        self.rate.is_nan() || self.rate <= 0.0
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// Takes `cost` tokens; returns how long to wait before the next
    /// message may be read (zero if the bucket has not gone into debt).
    pub fn take(&mut self, cost: f64, now: Instant) -> Duration {
        if self.unlimited() || cost <= 0.0 {
            return Duration::ZERO;
        }
        self.refill(now);
        self.tokens -= cost;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// Most presence client ids kept pending for one connection. y-websocket
/// clients echo every presence change they receive, so a client in a large
/// meeting legitimately sends states for everyone in it; beyond this many
/// the batch goes to the room at once (where ids of other people are
/// ignored and new ones count against `max_presence_clients`).
const MAX_PENDING_CLIENTS: usize = 4_096;

/// Coalesces one connection's presence messages: at most one batch per
/// interval reaches the room, carrying the latest state of every client id
/// that changed since the last one.
#[derive(Debug)]
pub struct PresenceGate {
    interval: Duration,
    /// When the last batch went to the room.
    last_sent: Option<Instant>,
    pending: HashMap<ClientID, AwarenessUpdateEntry>,
}

impl PresenceGate {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: None,
            pending: HashMap::new(),
        }
    }

    /// Takes an awareness update from the client. Returns the batch to pass
    /// on now, if the interval since the last one has passed; otherwise the
    /// states wait for `deadline()`.
    pub fn offer(&mut self, update: AwarenessUpdate, now: Instant) -> Option<AwarenessUpdate> {
        for (client, entry) in update.clients {
            match self.pending.get(&client) {
                // y-protocols' rule: a higher clock wins; an equal clock
                // wins only to remove. What the room would ignore anyway is
                // not kept.
                Some(current)
                    if !(current.clock < entry.clock
                        || (current.clock == entry.clock
                            && &*entry.json == "null"
                            && &*current.json != "null")) => {}
                _ => {
                    self.pending.insert(client, entry);
                }
            }
        }
        let due = self
            .last_sent
            .is_none_or(|at| now.saturating_duration_since(at) >= self.interval);
        if due || self.pending.len() > MAX_PENDING_CLIENTS {
            self.take(now)
        } else {
            None
        }
    }

    /// When the pending states must go out, if any are pending.
    pub fn deadline(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        Some(
            self.last_sent
                .map_or_else(Instant::now, |at| at + self.interval),
        )
    }

    /// The pending batch, if its time has come.
    pub fn due(&mut self, now: Instant) -> Option<AwarenessUpdate> {
        match self.deadline() {
            Some(at) if at <= now => self.take(now),
            _ => None,
        }
    }

    fn take(&mut self, now: Instant) -> Option<AwarenessUpdate> {
        if self.pending.is_empty() {
            return None;
        }
        self.last_sent = Some(now);
        Some(AwarenessUpdate {
            clients: std::mem::take(&mut self.pending),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::awareness::one_client;

    #[test]
    fn bucket_lets_a_burst_through_and_then_paces() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5.0, t0);
        for _ in 0..5 {
            assert_eq!(bucket.take(1.0, t0), Duration::ZERO);
        }
        // The sixth message goes into debt: wait a tenth of a second.
        let wait = bucket.take(1.0, t0);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // Once that time has passed the debt is paid.
        assert_eq!(bucket.take(0.0, t0 + wait), Duration::ZERO);
        assert_eq!(
            bucket.take(1.0, t0 + wait + Duration::from_millis(100)),
            Duration::ZERO
        );
    }

    #[test]
    fn bucket_never_refuses_a_message_larger_than_its_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1_000.0, 100.0, t0);
        let wait = bucket.take(2_100.0, t0);
        assert!((wait.as_secs_f64() - 2.0).abs() < 1e-9, "{wait:?}");
    }

    #[test]
    fn bucket_refills_only_up_to_its_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5.0, t0);
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..5 {
            assert_eq!(bucket.take(1.0, later), Duration::ZERO);
        }
        assert!(bucket.take(1.0, later) > Duration::ZERO);
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0.0, 1.0, t0);
        assert_eq!(bucket.take(1e12, t0), Duration::ZERO);
    }

    #[test]
    fn gate_passes_the_first_state_at_once_and_coalesces_the_rest() {
        let t0 = Instant::now();
        let mut gate = PresenceGate::new(Duration::from_millis(100));
        assert!(gate.offer(one_client(7, 1, "{\"a\":1}"), t0).is_some());
        assert!(gate.deadline().is_none());
        for clock in 2..=1_000 {
            let at = t0 + Duration::from_micros(clock as u64);
            assert!(gate.offer(one_client(7, clock, "{}"), at).is_none());
        }
        assert_eq!(gate.deadline(), Some(t0 + Duration::from_millis(100)));
        assert!(gate.due(t0 + Duration::from_millis(99)).is_none());
        // The latest state, and only it, goes out at the interval's end.
        let batch = gate.due(t0 + Duration::from_millis(100)).unwrap();
        assert_eq!(batch.clients.len(), 1);
        assert_eq!(batch.clients[&ClientID::new(7)].clock, 1_000);
        assert!(gate.deadline().is_none());
    }

    #[test]
    fn gate_keeps_the_newest_clock_and_a_removal() {
        let t0 = Instant::now();
        let mut gate = PresenceGate::new(Duration::from_millis(100));
        gate.offer(one_client(1, 1, "{}"), t0);
        gate.offer(one_client(1, 5, "{\"x\":5}"), t0);
        gate.offer(one_client(1, 4, "{\"x\":4}"), t0);
        gate.offer(one_client(1, 5, "null"), t0);
        let batch = gate.due(t0 + Duration::from_millis(100)).unwrap();
        let entry = &batch.clients[&ClientID::new(1)];
        assert_eq!((entry.clock, &*entry.json), (5, "null"));
    }

    #[test]
    fn gate_passes_again_once_an_interval_has_passed() {
        let t0 = Instant::now();
        let mut gate = PresenceGate::new(Duration::from_millis(100));
        assert!(gate.offer(one_client(1, 1, "{}"), t0).is_some());
        assert!(
            gate.offer(one_client(1, 2, "{}"), t0 + Duration::from_millis(150))
                .is_some()
        );
    }
}
