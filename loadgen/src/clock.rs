//! The writers' send schedule, kept by one thread with a precise clock.
//!
//! tokio's timer wheel has a 1 ms resolution: a tick fires up to 1 ms after
//! its deadline, and since latency is measured from the scheduled instant
//! (open loop), that rounding would add 0.5 ms on average to every sample,
//! whatever the server does. This thread sleeps with `nanosleep` instead
//! (tens of microseconds late) and hands each writer its scheduled instants
//! over a channel. A writer that falls behind finds its missed ticks queued
//! and sends them at once (the schedule never waits for the writer), so
//! there is still no coordinated omission.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{Mutex, OnceLock, mpsc},
    time::{Duration, Instant},
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

struct Schedule {
    period: Duration,
    ticks: UnboundedSender<Instant>,
}

struct Register {
    first: Instant,
    schedule: Schedule,
}

/// Ticks every `period`, the first at `first`, until the receiver is
/// dropped.
pub fn every(period: Duration, first: Instant) -> UnboundedReceiver<Instant> {
    static CLOCK: OnceLock<Mutex<mpsc::Sender<Register>>> = OnceLock::new();
    let (ticks, rx) = unbounded_channel();
    let clock = CLOCK.get_or_init(|| {
        let (tx, registrations) = mpsc::channel();
        std::thread::Builder::new()
            .name("loadgen-clock".into())
            .spawn(move || run(registrations))
            .expect("spawning the clock thread");
        Mutex::new(tx)
    });
    let registration = Register {
        first,
        schedule: Schedule {
            period: period.max(Duration::from_micros(1)),
            ticks,
        },
    };
    // The clock thread lives as long as the process.
    let _ = clock
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(registration);
    rx
}

/// How long the thread sleeps at most, so new registrations start on time.
const MAX_SLEEP: Duration = Duration::from_millis(1);

fn run(registrations: mpsc::Receiver<Register>) {
    // One slot per registration (one per writer and rate change: few), not
    // reused; a slot empties when its receiver is gone.
    let mut schedules: Vec<Option<Schedule>> = Vec::new();
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    loop {
        if due.is_empty() {
            match registrations.recv() {
                Ok(r) => add(r, &mut schedules, &mut due),
                Err(_) => return,
            }
        }
        while let Ok(r) = registrations.try_recv() {
            add(r, &mut schedules, &mut due);
        }
        let now = Instant::now();
        while let Some(&Reverse((at, slot))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            let Some(s) = &schedules[slot] else { continue };
            if s.ticks.send(at).is_ok() {
                due.push(Reverse((at + s.period, slot)));
            } else {
                schedules[slot] = None;
            }
        }
        if let Some(&Reverse((at, _))) = due.peek() {
            let wait = at.saturating_duration_since(Instant::now()).min(MAX_SLEEP);
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }
}

fn add(
    r: Register,
    schedules: &mut Vec<Option<Schedule>>,
    due: &mut BinaryHeap<Reverse<(Instant, usize)>>,
) {
    schedules.push(Some(r.schedule));
    due.push(Reverse((r.first, schedules.len() - 1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks_on_schedule_and_queues_missed_ticks() {
        let start = Instant::now() + Duration::from_millis(5);
        let period = Duration::from_millis(3);
        let mut ticks = every(period, start);
        // Do not read for a while: the ticks queue up (the schedule does
        // not wait for the writer).
        let first = ticks.recv().await.unwrap();
        assert_eq!(first, start);
        std::thread::sleep(Duration::from_millis(20));
        let mut got = vec![first];
        while got.len() < 6 {
            got.push(ticks.recv().await.unwrap());
        }
        for (k, t) in got.iter().enumerate() {
            assert_eq!(*t, start + period * k as u32);
        }
        // Every tick arrived after its scheduled instant, never before.
        assert!(Instant::now() >= *got.last().unwrap());
    }
}
