//! Subscribing and delivering: one task keeps a subscription to the
//! account channel and to the channel of every meeting this node holds a
//! room for, across reconnections; each message is verified (key, MAC,
//! replay window, seen before) and handed to the closures `lib.rs` gave
//! (`Deliver`): to the rooms, or to the live connections' account check.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    Cluster, MAX_BACKOFF, Remote, RemoteUpdates, envelope,
    wire::{Event, now_ms},
};
use crate::{meeting::MeetingId, store::Seq, telemetry::metric};

/// What the subscribing task is asked to change.
pub(super) enum Command {
    Subscribe(MeetingId),
    Unsubscribe(MeetingId),
}

/// Keeps a meeting subscribed while a room holds it.
pub struct Held {
    cluster: Arc<Cluster>,
    meeting: MeetingId,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.cluster.release(self.meeting);
    }
}

impl Cluster {
    /// Subscribes to `meeting` for as long as the returned value lives.
    pub fn hold(self: &Arc<Self>, meeting: MeetingId) -> Held {
        let mut held = self.held.lock().expect("cluster lock");
        let count = held.entry(meeting).or_default();
        *count += 1;
        if *count == 1 {
            let _ = self.commands.send(Command::Subscribe(meeting));
        }
        Held {
            cluster: self.clone(),
            meeting,
        }
    }

    fn release(&self, meeting: MeetingId) {
        let mut held = self.held.lock().expect("cluster lock");
        if let Some(count) = held.get_mut(&meeting) {
            *count -= 1;
            if *count == 0 {
                held.remove(&meeting);
                let _ = self.commands.send(Command::Unsubscribe(meeting));
            }
        }
    }

    pub(super) fn held_meetings(&self) -> Vec<MeetingId> {
        self.held
            .lock()
            .expect("cluster lock")
            .keys()
            .copied()
            .collect()
    }

    /// Verifies a message from Redis and hands it to where it belongs;
    /// refuses (counts, drops, logs at most every `LOG_EVERY`) what does
    /// not verify, is outside the replay window or was seen before.
    async fn receive(&self, channel: &str, payload: &[u8], seen: &mut envelope::Seen) {
        let opened = match self.open(channel, payload, seen).await {
            Ok(Some(opened)) => opened,
            Ok(None) => return,
            Err(why) => {
                metrics::counter!(metric::CLUSTER_REFUSED, "why" => why.label()).increment(1);
                if self.log_due() {
                    // Never the payload: it may be anything.
                    warn!(
                        channel,
                        why = why.label(),
                        "refusing a message from Redis (one line per 10 s at most; \
                         protokoll_cluster_refused_total counts them all)"
                    );
                }
                return;
            }
        };
        metrics::counter!(metric::CLUSTER_RECEIVED).increment(1);
        self.dispatch(opened.event).await;
    }

    /// The event inside a message, if it is authentic, fresh, another
    /// node's and not seen before (`Ok(None)`: this node's own).
    async fn open(
        &self,
        channel: &str,
        payload: &[u8],
        seen: &mut envelope::Seen,
    ) -> Result<Option<envelope::Opened<Event>>, envelope::Refused> {
        let message = envelope::parse(payload).ok_or(envelope::Refused::Unauthenticated)?;
        let secret = self
            .key(message.key_id)
            .await
            .ok_or(envelope::Refused::UnknownKey)?;
        let opened: envelope::Opened<Event> = message.open(&secret, channel)?;
        if opened.origin == self.node {
            return Ok(None);
        }
        if !envelope::fresh(opened.ts, now_ms()) {
            return Err(envelope::Refused::Expired);
        }
        if !seen.first_time(opened.origin, opened.seq, Instant::now()) {
            return Err(envelope::Refused::Replayed);
        }
        Ok(Some(opened))
    }

    /// Hands an authenticated event to where it belongs: another node's
    /// account event to the account check (the database decides whether
    /// the connections it names close), the rest to the meeting's room.
    async fn dispatch(&self, event: Event) {
        // Read inline: messages signed with a new key may follow at once.
        if let Event::Keys = event {
            return self.reload_keys().await;
        }
        let Some(deliver) = self.deliver() else {
            return;
        };
        match event {
            Event::Account(event) => (deliver.account)(event),
            Event::Updates {
                meeting,
                first,
                last,
                updates,
                owners,
                ownership,
                locked,
            } => {
                if first > last || last - first + 1 != updates.len() as Seq {
                    warn!(%meeting, first, last, "ignoring an inconsistent update message");
                    return;
                }
                (deliver.remote)(
                    meeting,
                    Remote::Updates(RemoteUpdates {
                        first,
                        last,
                        updates: updates.into_iter().map(|u| u.0).collect(),
                        owners,
                        ownership,
                        locked,
                    }),
                );
            }
            Event::Locked { meeting, locked } => (deliver.remote)(meeting, Remote::Locked(locked)),
            Event::Presence {
                meeting,
                frame,
                user,
            } => (deliver.remote)(
                meeting,
                Remote::Presence {
                    frame: Bytes::from(frame.0),
                    user,
                },
            ),
            Event::Keys => unreachable!("handled above"),
        }
    }
}

pub(super) async fn subscribe_loop(
    cluster: Arc<Cluster>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    // What was received within the replay window, across reconnections.
    let mut seen = envelope::Seen::default();
    // When the subscription was lost, for the outage's length in the log.
    let mut lost_at: Option<Instant> = None;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let connected = tokio::select! {
            c = tokio::time::timeout(Duration::from_secs(2), cluster.client.get_async_pubsub()) => c,
            _ = shutdown.cancelled() => return,
        };
        let pubsub = match connected {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                debug!(error = %e, "Redis unreachable");
                wait_draining(&mut commands, backoff, &shutdown).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_) => {
                wait_draining(&mut commands, backoff, &shutdown).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut channels = vec![cluster.account_channel()];
        let held = cluster.held_meetings();
        channels.extend(held.iter().map(|m| cluster.meeting_channel(*m)));
        if let Err(e) = sink.subscribe(&channels).await {
            debug!(error = %e, "subscribing failed");
            wait_draining(&mut commands, backoff, &shutdown).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        match lost_at.take() {
            Some(lost) => {
                let outage = lost.elapsed();
                metrics::gauge!(metric::CLUSTER_LAST_OUTAGE).set(outage.as_secs_f64());
                info!(
                    meetings = held.len(),
                    outage_ms = outage.as_millis() as u64,
                    "subscribed to Redis again; catching up the held meetings from the log"
                );
            }
            None => info!(meetings = held.len(), "subscribed to Redis"),
        }
        *cluster.subscribed_at.lock().expect("cluster lock") = Instant::now();
        cluster.connected.send_replace(true);
        cluster.epoch.send_modify(|e| *e += 1);
        metrics::gauge!(metric::CLUSTER_CONNECTED).set(1.0);
        // Whatever was published while we were away is read from the log.
        cluster.catch_up(held);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Subscribe(meeting)) => {
                        if sink.subscribe(cluster.meeting_channel(meeting)).await.is_err() {
                            break;
                        }
                        // Published between loading the room and now.
                        cluster.catch_up([meeting]);
                    }
                    Some(Command::Unsubscribe(meeting)) => {
                        if sink.unsubscribe(cluster.meeting_channel(meeting)).await.is_err() {
                            break;
                        }
                    }
                    None => return,
                },
                message = stream.next() => match message {
                    Some(message) => {
                        cluster
                            .receive(message.get_channel_name(), message.get_payload_bytes(), &mut seen)
                            .await
                    }
                    None => break,
                },
                _ = shutdown.cancelled() => return,
            }
        }
        lost_at = Some(Instant::now());
        warn!("lost the Redis subscription; polling the log until it is back");
        cluster.connected.send_replace(false);
        metrics::gauge!(metric::CLUSTER_CONNECTED).set(0.0);
    }
}

/// Waits `delay`, taking subscription changes meanwhile (the held set is
/// what a reconnection subscribes to; the commands themselves are moot).
async fn wait_draining(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    delay: Duration,
    shutdown: &CancellationToken,
) {
    let until = tokio::time::sleep(delay);
    tokio::pin!(until);
    loop {
        tokio::select! {
            _ = &mut until => return,
            _ = shutdown.cancelled() => return,
            command = commands.recv() => if command.is_none() { return },
        }
    }
}
