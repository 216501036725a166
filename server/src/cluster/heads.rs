//! Finding what Redis lost: the log heads of held meetings read every
//! `HEADS_EVERY` (every `POLL_EVERY` while Redis is away), the hole wait
//! that follows how late Redis recently delivered, the turns for reading
//! the log, and the periodic checks that ride on the same tick (Postgres
//! back after failing appends, the cluster keys read again).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{Cluster, Remote, keys::KEYS_EVERY};
use crate::{meeting::MeetingId, telemetry::metric};

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
pub(super) const CATCH_UPS_AT_ONCE: usize = 6;

/// How often, while Redis is away, the log heads of held meetings are read,
/// and how often a node checks whether Postgres is back after a failure.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// How often, with Redis up, the log heads of held meetings are read (one
/// query per node) to find what a lost message carried: a room behind a
/// head waits a hole wait for Redis, then reads the log. With `HOLE_WAIT`
/// this bounds how late a lost message arrives (2.25 s with Redis on time,
/// at most 7 s under lag).
pub const HEADS_EVERY: Duration = Duration::from_secs(2);

/// The longest recent delivery lag, forgotten with `LAG_HALF_LIFE`.
#[derive(Debug)]
pub(super) struct Lag {
    seconds: f64,
    at: Instant,
}

/// The hole wait for a delivery lag of `lag` seconds.
fn wait_for(lag: f64) -> Duration {
    Duration::from_secs_f64((2.0 * lag).min(MAX_HOLE_WAIT.as_secs_f64())).max(HOLE_WAIT)
}

impl Lag {
    /// No lag yet.
    pub(super) fn none() -> Self {
        Self {
            seconds: 0.0,
            at: Instant::now(),
        }
    }

    fn now(&self, now: Instant) -> f64 {
        let age = now.saturating_duration_since(self.at).as_secs_f64();
        self.seconds * 0.5f64.powf(age / LAG_HALF_LIFE.as_secs_f64())
    }
}

impl Cluster {
    /// How long a hole may stay open before the room reads the log: twice
    /// the longest recent delivery lag, within `HOLE_WAIT..=MAX_HOLE_WAIT`.
    pub fn hole_wait(&self) -> Duration {
        let lag = self.lag.lock().expect("cluster lock").now(Instant::now());
        wait_for(lag)
    }

    /// A position a room waited for since `opened` arrived over Redis now
    /// (in time, or after the room had read it from the log). Holes that
    /// opened before the subscription last came up say nothing of the lag.
    pub fn note_delivery_lag(&self, opened: Instant) {
        if opened < *self.subscribed_at.lock().expect("cluster lock") {
            return;
        }
        let now = Instant::now();
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

    /// Asks the rooms of `meetings` to read the log after what they have
    /// (a fresh subscription, Redis or Postgres back).
    pub(super) fn catch_up(&self, meetings: impl IntoIterator<Item = MeetingId>) {
        if let Some(deliver) = self.deliver() {
            for meeting in meetings {
                (deliver.remote)(meeting, Remote::CatchUp { head: None });
            }
        }
    }
}

/// Reads the log heads of held meetings and tells the rooms: every
/// `POLL_EVERY` while Redis is away (rooms behind catch up at once), every
/// `HEADS_EVERY` while it is up (rooms behind wait a hole wait for Redis
/// first: see `Remote::Head`). While appends fail: checks whether Postgres
/// is back. Every `KEYS_EVERY`: reads the cluster keys again.
pub(super) async fn poll_loop(cluster: Arc<Cluster>, shutdown: CancellationToken) {
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
            cluster.catch_up(cluster.held_meetings());
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
                if let Some(deliver) = cluster.deliver() {
                    for (meeting, head) in heads {
                        let remote = if connected {
                            Remote::Head(head)
                        } else {
                            Remote::CatchUp { head: Some(head) }
                        };
                        (deliver.remote)(meeting, remote);
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
        let at = Instant::now();
        let lag = Lag { seconds: 1.5, at };
        assert_eq!(lag.now(at), 1.5);
        assert!((lag.now(at + LAG_HALF_LIFE) - 0.75).abs() < 1e-9);
        assert!((lag.now(at + 4 * LAG_HALF_LIFE) - 0.09375).abs() < 1e-9);
        assert_eq!(wait_for(0.0), HOLE_WAIT, "Redis on time: the shortest wait");
        assert_eq!(wait_for(0.1), HOLE_WAIT);
        assert_eq!(wait_for(1.5), Duration::from_secs(3), "twice the lag");
        assert_eq!(wait_for(60.0), MAX_HOLE_WAIT, "never longer than this");
    }
}
