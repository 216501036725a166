//! The cluster keys a node signs and verifies with: read from Postgres at
//! start-up (the first node creates one), again every `KEYS_EVERY` and
//! whenever a rotation is announced, and, at most every
//! `KEYS_AT_MOST_EVERY`, for a message signed with a newer key than any
//! held.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{CONNECT_TIMEOUT, Cluster, ClusterError};
use crate::{
    store::{ClusterKey, KeySecret},
    telemetry::metric,
};

/// How often a node reads the cluster keys again (rotations and
/// retirements reach it at once when announced, and within this when not).
pub(super) const KEYS_EVERY: Duration = Duration::from_secs(30);

/// Least time between two reads of the keys for a message signed with an
/// unknown key: anyone who reaches Redis can send such messages.
const KEYS_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// The cluster keys a node holds: newest first, none of them retired.
#[derive(Default)]
pub(super) struct KeyRing {
    keys: Vec<(i64, KeySecret)>,
    /// When they were last read from the database.
    read_at: Option<Instant>,
}

impl KeyRing {
    fn get(&self, id: i64) -> Option<KeySecret> {
        self.keys
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, s)| s.clone())
    }

    fn newest(&self) -> Option<(i64, KeySecret)> {
        self.keys.first().cloned()
    }
}

impl Cluster {
    /// Reads the cluster keys, creating the first one if there is none
    /// (the first node to start with Redis). Before `start`: a node signs
    /// everything it publishes.
    pub async fn prepare_keys(&self) -> Result<(), ClusterError> {
        let keys = self.key_store.ensure().await?;
        self.install_keys(keys);
        Ok(())
    }

    fn install_keys(&self, keys: Vec<ClusterKey>) {
        let mut ring = self.keys.lock().expect("cluster lock");
        ring.keys = keys.into_iter().map(|k| (k.id, k.secret)).collect();
        ring.read_at = Some(Instant::now());
        metrics::gauge!(metric::CLUSTER_KEYS).set(ring.keys.len() as f64);
    }

    /// Reads the keys again; on failure the ones held stay.
    pub(super) async fn reload_keys(&self) {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.key_store.active()).await {
            Ok(Ok(keys)) if !keys.is_empty() => {
                let before: Vec<i64> = self.key_ids();
                self.install_keys(keys);
                let after = self.key_ids();
                if before != after {
                    info!(?after, "cluster keys read again");
                }
            }
            Ok(Ok(_)) => warn!("no cluster key is active; keeping the ones held"),
            Ok(Err(e)) => warn!(error = %e, "could not read the cluster keys"),
            Err(_) => warn!("reading the cluster keys timed out"),
        }
    }

    fn key_ids(&self) -> Vec<i64> {
        let ring = self.keys.lock().expect("cluster lock");
        ring.keys.iter().map(|(id, _)| *id).collect()
    }

    /// The key a message names: one held, or one newer than every key held
    /// (a rotation this node has not heard of), read again from the
    /// database at most once per `KEYS_AT_MOST_EVERY`. Ids only grow: an
    /// older id that is not held is retired, and reads nothing.
    pub(super) async fn key(&self, id: i64) -> Option<KeySecret> {
        let may_read = {
            let ring = self.keys.lock().expect("cluster lock");
            if let Some(secret) = ring.get(id) {
                return Some(secret);
            }
            ring.keys.first().is_none_or(|(newest, _)| id > *newest)
                && ring
                    .read_at
                    .is_none_or(|at| at.elapsed() >= KEYS_AT_MOST_EVERY)
        };
        if !may_read {
            return None;
        }
        self.reload_keys().await;
        self.keys.lock().expect("cluster lock").get(id)
    }

    /// The newest key held: what this node signs with.
    pub(super) fn signing_key(&self) -> Option<(i64, KeySecret)> {
        self.keys.lock().expect("cluster lock").newest()
    }
}
