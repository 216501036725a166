//! Publishing: what this node accepted goes into a bounded outbox, and one
//! task sends it to Redis in order, sealed with the newest key, sending a
//! failed batch again on a new connection. Also the one-off announcements
//! of the command line (an account event, a key rotation).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use super::{
    ANSWER_TIMEOUT, AccountEvent, CONNECT_TIMEOUT, Cluster, ClusterError, MAX_BACKOFF, envelope,
    wire::{B64, Event, now_ms},
};
use crate::{
    meeting::MeetingId,
    people::UserId,
    store::{ClusterKeys, KeySecret, Seq, StoreError},
    telemetry::metric,
};

/// Messages waiting to be published; beyond this they are dropped and
/// counted (the receivers find the hole when the head check reads the log).
pub(super) const OUTBOX: usize = 65_536;

/// Most messages published in one round trip to Redis.
const PUBLISH_BATCH: usize = 256;

/// A message waiting to be published: its channel and its event as JSON
/// (sealed when it is sent).
pub(super) struct Outgoing {
    channel: String,
    event: Vec<u8>,
}

impl Cluster {
    fn publish(&self, channel: String, event: Event) {
        let event = match serde_json::to_vec(&event) {
            Ok(event) => event,
            Err(e) => {
                warn!(error = %e, "could not encode a cluster message");
                return;
            }
        };
        if self.outbox.try_send(Outgoing { channel, event }).is_err() {
            metrics::counter!(metric::CLUSTER_DROPPED, "why" => "outbox_full").increment(1);
            if self.log_due() {
                warn!(
                    "the queue of messages to Redis is full: dropping (the other nodes read \
                     the log when they check its heads)"
                );
            }
        }
    }

    /// Announces updates this node committed at `first..=last`.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_updates(
        &self,
        meeting: MeetingId,
        first: Seq,
        last: Seq,
        updates: Vec<Vec<u8>>,
        owners: Vec<(u64, UserId)>,
        ownership: bool,
        locked: Option<bool>,
    ) {
        let event = Event::Updates {
            meeting,
            first,
            last,
            updates: updates.into_iter().map(B64).collect(),
            owners,
            ownership,
            locked,
        };
        self.publish(self.meeting_channel(meeting), event);
    }

    pub fn publish_locked(&self, meeting: MeetingId, locked: bool) {
        self.publish(
            self.meeting_channel(meeting),
            Event::Locked { meeting, locked },
        );
    }

    /// Announces presence this node stamped (an encoded awareness message).
    pub fn publish_presence(&self, meeting: MeetingId, frame: &[u8], user: Option<UserId>) {
        let event = Event::Presence {
            meeting,
            frame: B64(frame.to_vec()),
            user,
        };
        self.publish(self.meeting_channel(meeting), event);
    }

    /// Closes matching connections on every other node (this node's own
    /// are closed by the caller: see `crate::live`).
    pub fn publish_account(&self, event: AccountEvent) {
        self.publish(self.account_channel(), Event::Account(event));
    }
}

/// Sends what the node publishes, in order, sealed with the newest key. A
/// batch that fails is kept and sent again on a new connection (a
/// connection to a Redis that restarted fails on its first use; the
/// receivers drop what they got twice), at once and then backing off up to
/// `MAX_BACKOFF` or until the subscription is back, while later messages
/// wait in the outbox (bounded).
pub(super) async fn publish_loop(
    cluster: std::sync::Arc<Cluster>,
    mut outbox: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(ANSWER_TIMEOUT));
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut incoming: Vec<Outgoing> = Vec::new();
    // Waiting to be sent, with the sequence number each was given.
    let mut batch: Vec<(u64, Outgoing)> = Vec::new();
    let mut seq: u64 = 0;
    let mut failures: u32 = 0;
    // The subscription coming back means Redis answers again: a backoff
    // ends then, so that what waited goes out at once.
    let mut reconnected = cluster.reconnections();
    loop {
        if batch.is_empty() {
            // Whatever queued up while the last batch was on its way goes
            // out in one round trip (a pipeline of PUBLISH commands).
            tokio::select! {
                n = outbox.recv_many(&mut incoming, PUBLISH_BATCH) => if n == 0 {
                    return;
                },
                _ = shutdown.cancelled() => return,
            };
            for message in incoming.drain(..) {
                seq += 1;
                batch.push((seq, message));
            }
        }
        if failures > 1 {
            // The first retry goes at once: the usual failure is a
            // connection that died with a Redis restart, and a new one works.
            let backoff =
                (Duration::from_millis(100) * 2u32.pow(failures.min(6) - 2)).min(MAX_BACKOFF);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = reconnected.changed() => {}
                _ = shutdown.cancelled() => {
                    metrics::counter!(metric::CLUSTER_DROPPED, "why" => "redis_down")
                        .increment(batch.len() as u64);
                    return;
                }
            }
        }
        if conn.is_none() {
            match cluster
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    failures += 1;
                    if cluster.log_due() {
                        warn!(error = %e, waiting = batch.len(), "cannot reach Redis to publish; trying again");
                    }
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let Some((key_id, secret)) = cluster.signing_key() else {
            // Read at start-up; only a database that lost every key gets here.
            failures += 1;
            cluster.reload_keys().await;
            continue;
        };
        let sent_at = now_ms();
        let mut pipe = redis::pipe();
        for (seq, message) in &batch {
            let sealed = envelope::seal(
                key_id,
                &secret,
                &message.channel,
                cluster.node,
                *seq,
                sent_at,
                &message.event,
            );
            pipe.cmd("PUBLISH")
                .arg(&message.channel)
                .arg(sealed)
                .ignore();
        }
        match pipe.query_async::<()>(c).await {
            Ok(()) => {
                metrics::counter!(metric::CLUSTER_PUBLISHED).increment(batch.len() as u64);
                batch.clear();
                failures = 0;
            }
            Err(e) => {
                // Kept, and sent again on a new connection.
                conn = None;
                failures += 1;
                metrics::counter!(metric::CLUSTER_PUBLISH_RETRIES).increment(1);
                if failures > 1 && cluster.log_due() {
                    warn!(error = %e, waiting = batch.len(), "publishing to Redis failed; trying again");
                } else {
                    debug!(error = %e, "publishing to Redis failed; sending again on a new connection");
                }
            }
        }
    }
}

/// Publishes one account event from outside a server (the command line):
/// every node checks the connections it names against the database and
/// closes those that are revoked. Signed with the newest cluster key
/// (created if there is none yet).
pub async fn announce(
    client: &redis::Client,
    keys: &ClusterKeys,
    event: AccountEvent,
) -> Result<(), ClusterError> {
    let key = keys.ensure().await?.into_iter().next();
    let key = key.ok_or(StoreError::Corrupt(
        "no cluster key after creating one".into(),
    ))?;
    publish_once(client, (key.id, key.secret), Event::Account(event)).await
}

/// Tells every node that the cluster keys changed, signed with `key` (one
/// the nodes know already: the key they signed with until now).
pub async fn announce_keys(
    client: &redis::Client,
    key: (i64, KeySecret),
) -> Result<(), ClusterError> {
    publish_once(client, key, Event::Keys).await
}

async fn publish_once(
    client: &redis::Client,
    (key_id, secret): (i64, KeySecret),
    event: Event,
) -> Result<(), ClusterError> {
    let channel = "protokoll:account";
    let event = serde_json::to_vec(&event).expect("account events encode");
    let payload = envelope::seal(
        key_id,
        &secret,
        channel,
        Uuid::new_v4(),
        1,
        now_ms(),
        &event,
    );
    let publish = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
    };
    tokio::time::timeout(Duration::from_secs(5), publish)
        .await
        .map_err(|_| ClusterError::Timeout)??;
    Ok(())
}
