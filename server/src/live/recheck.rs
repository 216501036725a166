//! Revocations this node did not make: the command line changes the
//! database directly, and another node's announcement over Redis may be
//! lost (a Redis outage, a node cut off from it) or may not be what it
//! claims. So the database decides, never a message: one task per node
//! checks every open connection's credential, participation and role in a
//! few batched queries every ping interval, and once each time the Redis
//! subscription comes back; and an account event from another node only
//! makes this node check the connections it names (`named`), so that a
//! replayed or stale event costs a query and closes nothing that is still
//! valid. Revocations made on this node close their sockets at once
//! (`LiveConnections::apply`); this bounds how long the other nodes take.
//!
//! It must never query per connection, and a failing database must close
//! nothing: it is logged once per round and the round is skipped.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{LiveConnections, Named};
use crate::{
    auth,
    cluster::Cluster,
    store::{Directory, StoreError},
    sync::{CloseReason, peer::close_code},
};

/// The reasons a recheck closes with, unless the event that asked for it
/// gave a more precise one for the same code.
const SIGNED_OUT: &str = "sign-in no longer valid";
const REMOVED: &str = "removed from the meeting";
const ROLE_CHANGED: &str = "your role changed; reconnect";

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
        // With Redis up too: an announcement may have been lost on its way
        // (nothing tells the receivers), and this bounds how long a revoked
        // connection stays open then.
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            Some(()) = async {
                match reconnections.as_mut() {
                    Some(rx) => rx.changed().await.ok(),
                    None => std::future::pending().await,
                }
            } => {}
        }
        match check(&dir, &live, Named::All, None).await {
            Ok(closed) => {
                if closed.total() > 0 {
                    info!(
                        credentials = closed.credentials,
                        participations = closed.participations,
                        roles = closed.roles,
                        "closed connections revoked elsewhere"
                    );
                }
            }
            Err(e) => warn!(error = %e, "could not recheck the open connections"),
        }
    }
}

/// How many connections a check closed, by cause.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Closed {
    pub credentials: usize,
    pub participations: usize,
    pub roles: usize,
}

impl Closed {
    pub fn total(&self) -> usize {
        self.credentials + self.participations + self.roles
    }
}

/// Checks every open connection once (see `check`).
pub async fn round(dir: &Directory, live: &LiveConnections) -> Result<Closed, StoreError> {
    check(dir, live, Named::All, None).await
}

/// Checks the open connections `named` against the database: closes those
/// whose credential no longer holds (4401), then those of people no longer
/// in their meeting (4403), then those opened with a role the person no
/// longer has (1012: reconnect with the new one). Closes nothing unless
/// every query answered, and queries nothing when no connection is named.
/// `hint` is the close code and reason an announcement gave: used where
/// the database agrees on the code, for a more precise reason.
pub async fn check(
    dir: &Directory,
    live: &LiveConnections,
    named: Named,
    hint: Option<(u16, &str)>,
) -> Result<Closed, StoreError> {
    let held = live.held(named);
    if held.credentials.is_empty() {
        return Ok(Closed::default());
    }
    let invalid = auth::no_longer_valid(dir, &held.credentials, Utc::now()).await?;
    let pairs: Vec<_> = held.participations.into_iter().collect();
    let roles = dir.roles_in(&pairs).await?;
    let reason = |code: u16, default: &str| match hint {
        Some((hinted, reason)) if hinted == code => CloseReason::new(code, reason.to_owned()),
        _ => CloseReason::new(code, default.to_owned()),
    };
    Ok(Closed {
        credentials: live.close_where(named, reason(close_code::UNAUTHORIZED, SIGNED_OUT), |e| {
            invalid.contains(&e.credential)
        }),
        // Administrators may open every meeting, participants or not.
        participations: live.close_where(named, reason(close_code::FORBIDDEN, REMOVED), |e| {
            !e.is_admin && !roles.contains_key(&(e.meeting, e.user))
        }),
        // An administrator may have no role.
        roles: live.close_where(
            named,
            reason(close_code::SERVICE_RESTART, ROLE_CHANGED),
            |e| roles.get(&(e.meeting, e.user)).copied() != e.role,
        ),
    })
}
