//! Account events on this node: the connections an event names close at
//! once when this node made the event, and are checked against the
//! database when another node announced it (the closure the cluster is
//! given for that).

use std::sync::Arc;

use tracing::{debug, warn};

use super::{LiveConnections, recheck};
use crate::{cluster::AccountEvent, store::Directory, sync::CloseReason, telemetry::metric};

impl LiveConnections {
    /// Closes the connections of this node that `event` names; returns
    /// how many. Only for events this node made: another node's event is
    /// checked against the database instead ([`remote`]).
    pub fn apply(&self, event: &AccountEvent) -> usize {
        let reason = CloseReason::new(event.code, event.reason.clone());
        match event.whom() {
            Some(whom) => self.close(whom.into(), reason),
            None => 0,
        }
    }
}

/// What a node does with another node's account event: the connections it
/// names are checked against the database, which decides whether they
/// close, so that even a genuine event replayed closes nothing that is
/// still valid. Never waits: the check runs on a task of its own.
pub fn remote(
    dir: Directory,
    live: Arc<LiveConnections>,
) -> impl Fn(AccountEvent) + Send + Sync + 'static {
    move |event| {
        let Some(whom) = event.whom() else {
            return;
        };
        let (dir, live) = (dir.clone(), live.clone());
        tokio::spawn(async move {
            let hint = Some((event.code, event.reason.as_str()));
            match recheck::check(&dir, &live, whom.into(), hint).await {
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
