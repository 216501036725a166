//! Revocations this node cannot hear: the command line changes the database
//! directly, and while Redis is away nodes hear nothing of each other's
//! sign-outs and removals. One task per node checks every open connection's
//! credential and participation in a few batched queries, every ping
//! interval while no Redis subscription is up, and once each time it comes
//! back (what was announced meanwhile is lost). Revocations made on this
//! node, or announced over Redis, close their sockets at once elsewhere
//! (`LiveConnections`); this only bounds how long the others take.
//!
//! It must never query per connection, and a failing database must close
//! nothing: it is logged once per round and the round is skipped.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{CloseReason, LiveConnections, peer::close_code};
use crate::{auth, cluster::Cluster, store::Directory, store::StoreError};

/// Runs until `shutdown`; `every` is the ping interval.
pub async fn run(
    dir: Directory,
    live: Arc<LiveConnections>,
    cluster: Option<Arc<Cluster>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reconnections = cluster.as_ref().map(|c| c.reconnections());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if cluster.as_ref().is_some_and(|c| c.connected()) {
                    continue;
                }
            }
            Some(()) = async {
                match reconnections.as_mut() {
                    Some(rx) => rx.changed().await.ok(),
                    None => std::future::pending().await,
                }
            } => {}
        }
        match round(&dir, &live).await {
            Ok(Closed {
                credentials,
                participations,
            }) => {
                if credentials + participations > 0 {
                    info!(
                        credentials,
                        participations, "closed connections revoked elsewhere"
                    );
                }
            }
            Err(e) => warn!(error = %e, "could not recheck the open connections"),
        }
    }
}

/// How many connections a round closed, by cause.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Closed {
    pub credentials: usize,
    pub participations: usize,
}

/// Checks every open connection once; closes those whose credential no
/// longer holds (4401), then those of people no longer in their meeting
/// (4403). Closes nothing unless every query answered.
pub async fn round(dir: &Directory, live: &LiveConnections) -> Result<Closed, StoreError> {
    let held = live.held();
    if held.credentials.is_empty() {
        return Ok(Closed::default());
    }
    let invalid = auth::no_longer_valid(dir, &held.credentials, Utc::now()).await?;
    let pairs: Vec<_> = held.participations.iter().copied().collect();
    let remaining = dir.participations(&pairs).await?;
    let removed: HashSet<_> = held
        .participations
        .into_iter()
        .filter(|pair| !remaining.contains(pair))
        .collect();
    Ok(Closed {
        credentials: live.close_credentials(
            &invalid,
            CloseReason::new(close_code::UNAUTHORIZED, "sign-in no longer valid"),
        ),
        participations: live.close_participations(
            &removed,
            CloseReason::new(close_code::FORBIDDEN, "removed from the meeting"),
        ),
    })
}
