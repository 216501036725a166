//! Changes of a protocol's state that this node's rooms did not make: the
//! command line locks and reopens in the database directly, and so may
//! any process this node does not hear from. A lock made through a room
//! reaches its clients in the document (the `protocol` map) at once; this
//! brings the others there too, within `CHECK_EVERY`, instead of leaving
//! open pages to find out from their status poll or a refused keystroke.
//!
//! One task per node reads the states of every meeting it holds open in
//! batched queries (never one per room) and tells only the rooms whose
//! lock differs: a room that agrees is not woken, so an idle room still
//! unloads after its grace period. A failing database changes nothing: it
//! is logged and the next round asks again.

use std::{collections::HashMap, time::Duration};

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Rooms;
use crate::{
    meeting::ProtocolState,
    store::{Directory, StoreError},
};

/// How often the open meetings' states are read: a lock made with the
/// command line reaches open pages within this (they poll the protocol's
/// status every 3 s, which this beats), for one small query per second
/// while any room is open.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Runs until `shutdown`.
pub async fn run(rooms: Rooms, dir: Directory, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match round(&rooms, &dir).await {
            Ok(_) => failing = false,
            Err(e) => {
                // Once per outage, not once a second.
                if !failing {
                    warn!(error = %e, "could not read the open meetings' protocol states");
                }
                failing = true;
            }
        }
    }
}

/// One check; returns how many rooms were told of a change.
pub async fn round(rooms: &Rooms, dir: &Directory) -> Result<usize, StoreError> {
    let held: HashMap<_, _> = rooms.held_states().into_iter().collect();
    if held.is_empty() {
        return Ok(0);
    }
    let ids: Vec<_> = held.keys().copied().collect();
    let mut told = 0;
    for (id, state) in dir.protocol_states(&ids).await? {
        let locked = state != ProtocolState::Draft;
        if held.get(&id).is_some_and(|held| *held != locked) {
            rooms.state_elsewhere(id);
            told += 1;
        }
    }
    Ok(told)
}
