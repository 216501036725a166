//! Send-time bookkeeping and fan-out latency.
//!
//! Every writer records, for each update it produces, the *scheduled* send
//! time under the update's first (client, clock). Every receiving client
//! decodes every update it gets, enumerates the (client, clock) ranges of the
//! items inside and looks each clock up. That way a broadcast that merges
//! several writers' updates, or several updates of one writer (whose items
//! the merge squashes into one block), still yields one latency sample per
//! (receiving client, sent update).

use std::{
    collections::HashMap,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use dashmap::DashMap;
use hdrhistogram::Histogram;
use yrs::{Update, updates::decoder::Decode};

/// Highest latency the histograms track (longer ones are clamped).
const MAX_LATENCY_US: u64 = 120_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

fn record(hist: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, MAX_LATENCY_US);
    hist.saturating_record(us);
}

#[derive(Debug, Clone, Copy)]
struct SendRecord {
    scheduled: Instant,
    phase: usize,
    /// Receivers that have not seen the update yet.
    remaining: u32,
}

/// What was measured in one phase (the measured window of `fanout`, one
/// step of `ramp`).
pub struct PhaseStats {
    /// Fan-out latency, µs: scheduled send time to arrival, per receiver.
    pub latency: Histogram<u64>,
    /// Hocuspocus only: scheduled send time to the server's sync-status ack.
    pub ack: Histogram<u64>,
    /// Updates sent by writers whose scheduled time fell in this phase.
    pub sent: u64,
    /// Deliveries expected for them: one per other client in the meeting.
    pub expected: u64,
    /// Deliveries seen (= latency samples).
    pub delivered: u64,
}

impl PhaseStats {
    fn new() -> Self {
        PhaseStats {
            latency: new_histogram(),
            ack: new_histogram(),
            sent: 0,
            expected: 0,
            delivered: 0,
        }
    }
}

/// Measured sends bucketed by the second of their scheduled send time,
/// counted from an origin (`Tracker::start_timeline`).
struct Timeline {
    origin: Instant,
    /// The origin as Unix time, seconds.
    origin_unix: f64,
    seconds: Mutex<Vec<PhaseStats>>,
}

impl Timeline {
    /// The bucket of `scheduled`, grown on demand.
    fn with<R>(&self, scheduled: Instant, f: impl FnOnce(&mut PhaseStats) -> R) -> R {
        let second = scheduled.saturating_duration_since(self.origin).as_secs() as usize;
        let mut seconds = self.seconds.lock().unwrap();
        while seconds.len() <= second {
            seconds.push(PhaseStats::new());
        }
        f(&mut seconds[second])
    }
}

/// One second of a timeline, copied out for reporting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimelineSecond {
    /// Seconds since the origin (the bucket's start).
    pub second: usize,
    /// Unix time of the bucket's start.
    pub unix: f64,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub latency_ms: Percentiles,
}

/// Shared by every client of a run.
pub struct Tracker {
    sends: DashMap<(u64, u32), SendRecord>,
    phases: Vec<Mutex<PhaseStats>>,
    timeline: OnceLock<Timeline>,
    /// Every matched delivery, any phase (for rates over wall-clock windows).
    pub delivered_total: AtomicU64,
    /// Update and sync-step-2 messages received, any phase.
    pub update_messages_total: AtomicU64,
    pub sent_total: AtomicU64,
    pub decode_errors: AtomicU64,
}

impl Tracker {
    pub fn new(phases: usize) -> Self {
        Tracker {
            sends: DashMap::new(),
            phases: (0..phases).map(|_| Mutex::new(PhaseStats::new())).collect(),
            timeline: OnceLock::new(),
            delivered_total: AtomicU64::new(0),
            update_messages_total: AtomicU64::new(0),
            sent_total: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
        }
    }

    /// From now on, also count measured sends per second of their
    /// scheduled time, counted from `origin` (only the first call counts).
    pub fn start_timeline(&self, origin: Instant) {
        let now = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let origin_unix = if origin >= now {
            unix + (origin - now).as_secs_f64()
        } else {
            unix - (now - origin).as_secs_f64()
        };
        let _ = self.timeline.set(Timeline {
            origin,
            origin_unix,
            seconds: Mutex::new(Vec::new()),
        });
    }

    /// The timeline so far (empty unless started).
    pub fn timeline(&self) -> Vec<TimelineSecond> {
        let Some(t) = self.timeline.get() else {
            return Vec::new();
        };
        let seconds = t.seconds.lock().unwrap();
        seconds
            .iter()
            .enumerate()
            .map(|(second, p)| TimelineSecond {
                second,
                unix: t.origin_unix + second as f64,
                sent: p.sent,
                expected: p.expected,
                delivered: p.delivered,
                latency_ms: Percentiles::of(&p.latency),
            })
            .collect()
    }

    /// Called by a writer *before* the update is handed to the socket.
    /// `clock` is the first clock the update's items occupy. `phase` is None
    /// for warm-up sends, which are sent but not measured.
    pub fn record_send(
        &self,
        client: u64,
        clock: u32,
        scheduled: Instant,
        phase: Option<usize>,
        receivers: u32,
    ) {
        self.sent_total.fetch_add(1, Ordering::Relaxed);
        let Some(phase) = phase else { return };
        {
            let mut p = self.phases[phase].lock().unwrap();
            p.sent += 1;
            p.expected += receivers as u64;
        }
        if let Some(t) = self.timeline.get() {
            t.with(scheduled, |p| {
                p.sent += 1;
                p.expected += receivers as u64;
            });
        }
        if receivers > 0 {
            self.sends.insert(
                (client, clock),
                SendRecord {
                    scheduled,
                    phase,
                    remaining: receivers,
                },
            );
        }
    }

    /// A writer got the server's ack for an update it sent at `scheduled`.
    pub fn record_ack(&self, phase: usize, scheduled: Instant, now: Instant) {
        record(
            &mut self.phases[phase].lock().unwrap().ack,
            now.saturating_duration_since(scheduled),
        );
    }

    /// A client received `update` (Yjs v1) at `now`. `own` is the
    /// receiver's own client id (its echoes are not fan-out); `seen` is the
    /// receiver's per-writer high-water mark, so an item delivered twice
    /// (echo, resync) is counted once. Returns the number of matched
    /// deliveries.
    pub fn on_update(
        &self,
        own: u64,
        seen: &mut HashMap<u64, u32>,
        update: &[u8],
        now: Instant,
    ) -> usize {
        self.update_messages_total.fetch_add(1, Ordering::Relaxed);
        let update = match Update::decode_v1(update) {
            Ok(u) => u,
            Err(_) => {
                self.decode_errors.fetch_add(1, Ordering::Relaxed);
                return 0;
            }
        };
        let insertions = update.insertions(true);
        let mut matched: Vec<SendRecord> = Vec::new();
        for (client, ranges) in insertions.iter() {
            let client = client.get();
            if client == own {
                continue;
            }
            let high = seen.entry(client).or_insert(0);
            for range in ranges.iter() {
                let start = range.start.max(*high);
                for clock in start..range.end {
                    let key = (client, clock);
                    let hit = match self.sends.get_mut(&key) {
                        Some(mut rec) => {
                            rec.remaining = rec.remaining.saturating_sub(1);
                            Some(*rec)
                        }
                        None => None,
                    };
                    if let Some(rec) = hit {
                        if rec.remaining == 0 {
                            self.sends.remove(&key);
                        }
                        matched.push(rec);
                    }
                }
                *high = (*high).max(range.end);
            }
        }
        if matched.is_empty() {
            return 0;
        }
        self.delivered_total
            .fetch_add(matched.len() as u64, Ordering::Relaxed);
        // Usually all of one phase: take each phase's lock once.
        matched.sort_unstable_by_key(|r| r.phase);
        let mut i = 0;
        while i < matched.len() {
            let phase = matched[i].phase;
            let mut p = self.phases[phase].lock().unwrap();
            while i < matched.len() && matched[i].phase == phase {
                record(
                    &mut p.latency,
                    now.saturating_duration_since(matched[i].scheduled),
                );
                p.delivered += 1;
                i += 1;
            }
        }
        if let Some(t) = self.timeline.get() {
            for rec in &matched {
                t.with(rec.scheduled, |p| {
                    record(&mut p.latency, now.saturating_duration_since(rec.scheduled));
                    p.delivered += 1;
                });
            }
        }
        matched.len()
    }

    /// A copy of one phase's numbers so far.
    pub fn snapshot(&self, phase: usize) -> PhaseSnapshot {
        let p = self.phases[phase].lock().unwrap();
        PhaseSnapshot::from(&*p)
    }

    /// Sends still waiting for at least one receiver.
    pub fn pending(&self) -> usize {
        self.sends.len()
    }
}

/// A phase's numbers, copied out for reporting.
#[derive(Debug, Clone)]
pub struct PhaseSnapshot {
    pub latency: Histogram<u64>,
    pub ack: Histogram<u64>,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
}

impl From<&PhaseStats> for PhaseSnapshot {
    fn from(p: &PhaseStats) -> Self {
        PhaseSnapshot {
            latency: p.latency.clone(),
            ack: p.ack.clone(),
            sent: p.sent,
            expected: p.expected,
            delivered: p.delivered,
        }
    }
}

impl PhaseSnapshot {
    /// Share of expected deliveries that arrived.
    pub fn delivery_ratio(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.delivered as f64 / self.expected as f64
        }
    }
}

/// Percentiles of a µs histogram, in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles {
                count: 0,
                min_ms: 0.0,
                mean_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
            };
        }
        Percentiles {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typist::Typist;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_merged_update_of_two_writers_yields_both_latencies() {
        let tracker = Tracker::new(1);
        let t0 = Instant::now();
        let mut a = Typist::new(101, "section:w0");
        let mut b = Typist::new(202, "section:w1");
        let ua = a.type_char();
        let ub = b.type_char();
        tracker.record_send(101, ua.clock, t0, Some(0), 2);
        tracker.record_send(202, ub.clock, t0 + ms(10), Some(0), 2);
        let merged = yrs::merge_updates_v1([ua.update.as_slice(), ub.update.as_slice()]).unwrap();

        // Receiver 303 gets one frame with both.
        let mut seen = HashMap::new();
        let n = tracker.on_update(303, &mut seen, &merged, t0 + ms(30));
        assert_eq!(n, 2);
        let s = tracker.snapshot(0);
        assert_eq!(s.delivered, 2);
        assert_eq!(s.sent, 2);
        assert_eq!(s.expected, 4);
        // 30 ms for a, 20 ms for b (histogram precision: 3 digits).
        assert_eq!(s.latency.max() / 1000, 30);
        assert_eq!(s.latency.min() / 1000, 20);

        // The same frame again (echo / resync) counts nothing new.
        assert_eq!(tracker.on_update(303, &mut seen, &merged, t0 + ms(40)), 0);

        // Writer a receives the merged frame: its own item is not fan-out,
        // b's is; after that both records have reached every receiver.
        let mut seen_a = HashMap::new();
        assert_eq!(tracker.on_update(101, &mut seen_a, &merged, t0 + ms(50)), 1);
        let mut seen_b = HashMap::new();
        assert_eq!(tracker.on_update(202, &mut seen_b, &merged, t0 + ms(50)), 1);
        assert_eq!(tracker.pending(), 0);
        assert_eq!(tracker.snapshot(0).delivery_ratio(), 1.0);
    }

    #[test]
    fn consecutive_updates_of_one_writer_squashed_into_one_block_count_separately() {
        let tracker = Tracker::new(1);
        let t0 = Instant::now();
        let mut a = Typist::new(5, "section:w0");
        let mut updates = Vec::new();
        for i in 0..5u64 {
            let u = a.type_char();
            tracker.record_send(5, u.clock, t0 + ms(i), Some(0), 1);
            updates.push(u.update);
        }
        let merged = yrs::merge_updates_v1(updates.iter().map(Vec::as_slice)).unwrap();
        let mut seen = HashMap::new();
        assert_eq!(tracker.on_update(9, &mut seen, &merged, t0 + ms(100)), 5);
        assert_eq!(tracker.snapshot(0).latency.len(), 5);
        assert_eq!(tracker.pending(), 0);
    }

    #[test]
    fn warmup_sends_are_not_measured_and_phases_are_separate() {
        let tracker = Tracker::new(2);
        let t0 = Instant::now();
        let mut a = Typist::new(5, "section:w0");
        let u0 = a.type_char();
        tracker.record_send(5, u0.clock, t0, None, 1);
        let u1 = a.type_char();
        tracker.record_send(5, u1.clock, t0, Some(1), 1);
        let mut seen = HashMap::new();
        assert_eq!(tracker.on_update(9, &mut seen, &u0.update, t0), 0);
        assert_eq!(tracker.on_update(9, &mut seen, &u1.update, t0 + ms(7)), 1);
        assert_eq!(tracker.snapshot(0).delivered, 0);
        assert_eq!(tracker.snapshot(1).delivered, 1);
        assert_eq!(tracker.snapshot(1).latency.max() / 1000, 7);
    }

    #[test]
    fn the_timeline_buckets_by_scheduled_second() {
        let tracker = Tracker::new(1);
        let t0 = Instant::now();
        tracker.start_timeline(t0);
        let mut a = Typist::new(5, "section:w0");
        let u0 = a.type_char();
        tracker.record_send(5, u0.clock, t0 + ms(100), Some(0), 1);
        let u1 = a.type_char();
        tracker.record_send(5, u1.clock, t0 + ms(2_100), Some(0), 1);
        let mut seen = HashMap::new();
        // The second one arrives first and late: it still counts in its
        // own send second.
        assert_eq!(
            tracker.on_update(9, &mut seen, &u1.update, t0 + ms(2_900)),
            1
        );
        let line = tracker.timeline();
        assert_eq!(line.len(), 3);
        assert_eq!((line[0].sent, line[0].delivered), (1, 0));
        assert_eq!((line[1].sent, line[1].expected), (0, 0));
        assert_eq!((line[2].sent, line[2].delivered), (1, 1));
        assert_eq!(line[2].latency_ms.max_ms.round(), 800.0);
        assert!((line[2].unix - line[0].unix - 2.0).abs() < 1e-6);
    }

    #[test]
    fn garbage_is_counted_as_a_decode_error() {
        let tracker = Tracker::new(1);
        let mut seen = HashMap::new();
        assert_eq!(
            tracker.on_update(1, &mut seen, &[0xff, 0xff, 0xff], Instant::now()),
            0
        );
        assert_eq!(tracker.decode_errors.load(Ordering::Relaxed), 1);
    }
}
