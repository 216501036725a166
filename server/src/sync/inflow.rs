//! Flood control for one connection's inbound frames, free of sockets so
//! that it can be tested with a fake clock: document messages, presence
//! messages and bytes go through token buckets, and a client that outruns
//! them is not read from until they have refilled; presence is coalesced
//! (the mechanisms are [`super::limits`]'s). The socket loop (`http::ws`)
//! asks it what to hand to the room and how long to stop reading.

use std::time::{Duration, Instant};

use super::{
    limits::{Limits, PresenceGate, TokenBucket, count_trip, limit},
    protocol::{Inbound, IncomingAwareness},
};
use crate::telemetry::metric;

/// One connection's buckets and presence gate.
#[derive(Debug)]
pub struct Inflow {
    messages: TokenBucket,
    bytes: TokenBucket,
    presence_messages: TokenBucket,
    presence: PresenceGate,
    /// Whether this connection was slowed down before (only the first
    /// slowdown is logged).
    slowed_before: bool,
}

/// What a frame's messages cost, once sorted: charged by [`Inflow::charge`]
/// after they have been handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    document_messages: usize,
    presence_messages: usize,
}

/// A client that sends faster than allowed: not read from for `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slowdown {
    pub wait: Duration,
    /// The limit that asked for the longest wait (a name in
    /// [`limit`]).
    pub limit: &'static str,
    /// Whether this is the connection's first slowdown.
    pub first: bool,
}

impl Inflow {
    pub fn new(limits: &Limits, now: Instant) -> Self {
        Self {
            messages: TokenBucket::new(limits.update_rate, limits.update_burst, now),
            bytes: TokenBucket::new(limits.update_bytes_rate, limits.update_bytes_burst, now),
            presence_messages: TokenBucket::new(limits.presence_rate, limits.presence_burst, now),
            presence: PresenceGate::new(limits.presence_interval),
            slowed_before: false,
        }
    }

    /// When presence held back must go out, if any is held.
    pub fn presence_deadline(&self) -> Option<Instant> {
        self.presence.deadline()
    }

    /// The presence held back, as a message for the room, once its time
    /// has come.
    pub fn presence_due(&mut self, now: Instant) -> Option<Inbound> {
        let batch = self.presence.due(now)?;
        Some(Inbound::Awareness(IncomingAwareness { update: batch }))
    }

    /// Sorts a frame's messages: document messages pass in their order;
    /// presence is offered to the gate, which passes a batch or holds it
    /// (counted in `metric::PRESENCE_COALESCED`). Returns what to hand to
    /// the room now and what the frame costs.
    pub fn sort(&mut self, messages: Vec<Inbound>, now: Instant) -> (Vec<Inbound>, Cost) {
        let mut cost = Cost {
            document_messages: 0,
            presence_messages: 0,
        };
        let mut held = 0u64;
        let mut passed = Vec::with_capacity(messages.len());
        for message in messages {
            match message {
                Inbound::Awareness(incoming) => {
                    cost.presence_messages += 1;
                    match self.presence.offer(incoming.update, now) {
                        Some(batch) => {
                            passed.push(Inbound::Awareness(IncomingAwareness { update: batch }))
                        }
                        None => held += 1,
                    }
                }
                other => {
                    cost.document_messages += 1;
                    passed.push(other);
                }
            }
        }
        if held > 0 {
            metrics::counter!(metric::PRESENCE_COALESCED).increment(held);
        }
        (passed, cost)
    }

    /// Charges a frame (its sorted messages and its `frame_bytes`) to the
    /// buckets. A client that outran one is slowed down for the longest
    /// wait they ask (the limit's trip is counted); nothing it sent is
    /// dropped.
    pub fn charge(&mut self, cost: Cost, frame_bytes: usize, now: Instant) -> Option<Slowdown> {
        let waits = [
            (
                self.messages.take(cost.document_messages as f64, now),
                limit::UPDATE_RATE,
            ),
            (
                self.presence_messages
                    .take(cost.presence_messages as f64, now),
                limit::PRESENCE_RATE,
            ),
            (
                self.bytes.take(frame_bytes as f64, now),
                limit::UPDATE_BYTES,
            ),
        ];
        let (wait, which) = waits
            .into_iter()
            .max_by_key(|(wait, _)| *wait)
            .expect("three buckets");
        if wait.is_zero() {
            return None;
        }
        count_trip(which);
        let first = !self.slowed_before;
        self.slowed_before = true;
        Some(Slowdown {
            wait,
            limit: which,
            first,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use yrs::{
        ClientID,
        sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry},
    };

    use super::*;

    fn limits() -> Limits {
        Limits {
            update_rate: 10.0,
            update_burst: 5.0,
            update_bytes_rate: 1_000.0,
            update_bytes_burst: 100.0,
            presence_interval: Duration::from_millis(100),
            ..Limits::default()
        }
    }

    fn queries(n: usize) -> Vec<Inbound> {
        (0..n).map(|_| Inbound::QueryAwareness).collect()
    }

    fn presence(clock: u32) -> Inbound {
        let entry = AwarenessUpdateEntry {
            clock,
            json: "{}".into(),
        };
        let clients = HashMap::from([(ClientID::new(7), entry)]);
        Inbound::Awareness(IncomingAwareness {
            update: AwarenessUpdate { clients },
        })
    }

    #[test]
    fn a_burst_passes_and_then_the_client_waits() {
        let t0 = Instant::now();
        let mut inflow = Inflow::new(&limits(), t0);
        let (passed, cost) = inflow.sort(queries(5), t0);
        assert_eq!(passed.len(), 5);
        assert_eq!(inflow.charge(cost, 10, t0), None);
        // The sixth document message goes into debt: a tenth of a second.
        let (passed, cost) = inflow.sort(queries(1), t0);
        assert_eq!(passed.len(), 1, "nothing is dropped");
        let slow = inflow.charge(cost, 10, t0).expect("slowed down");
        assert_eq!(slow.limit, limit::UPDATE_RATE);
        assert!((slow.wait.as_secs_f64() - 0.1).abs() < 1e-9, "{slow:?}");
        assert!(slow.first);
        // Later slowdowns are not the first.
        let (_, cost) = inflow.sort(queries(1), t0);
        assert!(!inflow.charge(cost, 10, t0).expect("slowed down").first);
    }

    #[test]
    fn the_longest_wait_wins() {
        let t0 = Instant::now();
        let mut inflow = Inflow::new(&limits(), t0);
        // One message, but 600 bytes over a burst of 100 at 1000 bytes/s.
        let (_, cost) = inflow.sort(queries(1), t0);
        let slow = inflow.charge(cost, 700, t0).expect("slowed down");
        assert_eq!(slow.limit, limit::UPDATE_BYTES);
        assert!((slow.wait.as_secs_f64() - 0.6).abs() < 1e-9, "{slow:?}");
    }

    #[test]
    fn presence_is_coalesced_and_goes_out_when_due() {
        let t0 = Instant::now();
        let mut inflow = Inflow::new(&limits(), t0);
        let (passed, _) = inflow.sort(vec![presence(1)], t0);
        assert_eq!(passed.len(), 1, "the first state passes at once");
        let (passed, cost) = inflow.sort(vec![presence(2), Inbound::QueryAwareness], t0);
        assert!(matches!(passed[..], [Inbound::QueryAwareness]));
        assert_eq!(cost.presence_messages, 1);
        let due = inflow.presence_deadline().expect("a state is held");
        assert!(inflow.presence_due(t0).is_none());
        let Some(Inbound::Awareness(batch)) = inflow.presence_due(due) else {
            panic!("the held state goes out when due");
        };
        assert_eq!(batch.update.clients[&ClientID::new(7)].clock, 2);
    }
}
