//! A room as one of several nodes serving its meeting (with `--redis-url`):
//! applying what the other nodes committed in log order, filling holes from
//! the store, and riding out a database that stops answering.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{error, info, warn};
use yrs::{StateVector, sync::awareness::AwarenessUpdate};

use super::{
    Room, Target,
    commit::{Staged, broadcast_frames},
    load::{load, load_ownership, read_after},
    protocol::{self, Inbound},
};
use crate::{
    cluster::{HOLE_WAIT, Remote, RemoteUpdates},
    sync::peer::{PeerId, SERVER_PEER},
    telemetry::metric,
};

/// Longest a room waits for the store while catching up; it tries again
/// later rather than stall its clients.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How often, while Redis is away, a room's catch-up also reads the
/// protocol's state and section ownership.
const STATE_EVERY: Duration = Duration::from_secs(3);

/// What a client is told when its update could not be stored.
const STORAGE_DOWN: &str = "permission denied: storage unavailable: your latest changes are \
    not saved yet; they are kept on your device and sent again when the database is back";

impl Room {
    /// When the room must look at its log again (a hole waited for long
    /// enough, or a document to rebuild once the database is back).
    pub(super) fn node_wake(&self) -> Option<tokio::time::Instant> {
        let node = self.node.as_ref()?;
        let at = match (node.read_at, node.hole_since) {
            (Some(at), _) => at,
            // While Redis is away the poll loop has every held meeting
            // read its log once a second: holes are no news then.
            (None, Some(since)) if node.cluster.connected() => since + node.cluster.hole_wait(),
            (None, _) => return None,
        };
        Some(tokio::time::Instant::from_std(at))
    }

    pub(super) async fn node_timer(&mut self, outgoing: &mut Vec<(Target, Bytes)>) {
        self.catch_up(outgoing).await;
    }

    /// This node committed `first..=last` (its document holds them).
    pub(super) fn record_own(&mut self, first: i64, last: i64) {
        let Some(node) = &mut self.node else {
            return;
        };
        node.ahead.insert(first, (last, None));
        // Applying own ranges needs no await; remote ones wait for `advance`.
        while let Some(entry) = node.ahead.first_entry() {
            let (first, (last, pending)) = (*entry.key(), entry.get());
            if *last <= self.last_seq {
                entry.remove();
                continue;
            }
            if first > self.last_seq + 1 || pending.is_some() {
                break;
            }
            self.last_seq = *last;
            entry.remove();
        }
        self.note_hole();
    }

    fn note_hole(&mut self) {
        let Some(node) = &mut self.node else {
            return;
        };
        match node.ahead.first_key_value() {
            Some((&first, _)) if first > self.last_seq + 1 => {
                node.hole_since.get_or_insert_with(Instant::now);
            }
            Some(_) => {}
            // Nothing arrived past the prefix, but the log is known to
            // reach further: what carried it may be lost.
            None if node.known_head > self.last_seq => {
                node.hole_since.get_or_insert_with(Instant::now);
            }
            None if !node.tainted => node.hole_since = None,
            None => {}
        }
    }

    pub(super) async fn on_remote(&mut self, remote: Remote, outgoing: &mut Vec<(Target, Bytes)>) {
        let Some(node) = &mut self.node else {
            return;
        };
        match remote {
            Remote::Updates(updates) => {
                if updates.last <= self.last_seq {
                    // Read from the log already: Redis was this late.
                    if let Some((opened, after, upto)) = node.read_past
                        && updates.first > after
                        && updates.last <= upto
                    {
                        node.cluster.note_delivery_lag(opened);
                    }
                    return;
                }
                let waiting = node.hole_since.map(|since| (since, self.last_seq));
                node.ahead
                    .insert(updates.first, (updates.last, Some(updates)));
                self.advance(outgoing).await;
                // The hole this filled had waited this long.
                if let (Some((since, before)), Some(node)) = (waiting, &self.node)
                    && self.last_seq > before
                {
                    node.cluster.note_delivery_lag(since);
                }
            }
            Remote::Presence { frame, user } => self.remote_presence(&frame, user, outgoing),
            Remote::Locked(locked) => self.locked.set(locked),
            Remote::Head(head) => {
                // Redis up: what it has not brought of this within a hole
                // wait is read from the log (with the state: a lost agenda
                // change or lock is read there too).
                if head > self.last_seq {
                    node.known_head = node.known_head.max(head);
                    self.note_hole();
                }
            }
            Remote::CatchUp { head } => {
                if node.tainted {
                    self.recover(outgoing).await;
                    return;
                }
                if !node.refused.is_empty() && !node.cluster.storage_down() {
                    // The database is back: ask the clients whose updates
                    // were refused for what the room lacks.
                    let step_1 = protocol::encode_sync_step_1(&self.doc.state_vector());
                    for peer in node.refused.drain() {
                        outgoing.push((Target::One(peer), step_1.clone()));
                    }
                }
                // A state left unread by an earlier catch-up is read once
                // `STATE_EVERY` has passed, even with the log unchanged.
                let state_due =
                    node.state_due && node.state_read.is_none_or(|at| at.elapsed() >= STATE_EVERY);
                if head.is_none_or(|head| head > self.last_seq) || state_due {
                    self.catch_up(outgoing).await;
                }
            }
        }
    }

    /// Applies the ranges that continue the log prefix, in order.
    async fn advance(&mut self, outgoing: &mut Vec<(Target, Bytes)>) {
        loop {
            let Some(node) = &mut self.node else {
                return;
            };
            let Some(entry) = node.ahead.first_entry() else {
                break;
            };
            let (first, last) = (*entry.key(), entry.get().0);
            if last <= self.last_seq {
                entry.remove();
                continue;
            }
            if first > self.last_seq + 1 {
                break;
            }
            let (_, pending) = entry.remove();
            self.last_seq = last;
            if let Some(updates) = pending {
                self.apply_remote(updates, outgoing).await;
            }
        }
        self.note_hole();
    }

    /// Updates another node's guard accepted and its store committed:
    /// into the document and the guard's index, and out to the clients.
    async fn apply_remote(&mut self, remote: RemoteUpdates, outgoing: &mut Vec<(Target, Bytes)>) {
        for (client, user) in remote.owners {
            self.owners.bind(client, user);
        }
        let mut staged = Vec::with_capacity(remote.updates.len());
        for update in remote.updates {
            if !self.doc.apply_trusted(&update) {
                error!(meeting_id = %self.id, "an update from another node does not apply");
            }
            // Stored by the other node: part of what a rebuild reads.
            self.doc_bytes += update.len() as u64;
            staged.push(Staged {
                peer: SERVER_PEER,
                broadcast: protocol::encode_update(&update),
                payload: Bytes::from(update),
            });
        }
        self.since_snapshot += staged.len() as u64;
        outgoing.extend(broadcast_frames(staged));
        if let Some(locked) = remote.locked {
            self.locked.set(locked);
        }
        if remote.ownership {
            self.reload_state().await;
        }
    }

    /// Presence another node stamped: kept for joiners, sent to everyone.
    fn remote_presence(
        &mut self,
        frame: &Bytes,
        user: Option<crate::people::UserId>,
        outgoing: &mut Vec<(Target, Bytes)>,
    ) {
        let Ok(messages) = protocol::decode_frame(frame) else {
            warn!(meeting_id = %self.id, "ignoring unreadable presence from another node");
            return;
        };
        for message in messages {
            let Inbound::Awareness(incoming) = message else {
                continue;
            };
            let changed = self.awareness.apply(&incoming.update);
            if changed.is_empty() {
                continue;
            }
            if let Some(user) = user {
                for client in &changed {
                    self.owners.bind(client.get(), user);
                }
            }
            let clients = incoming
                .update
                .clients
                .into_iter()
                .filter(|(c, _)| changed.contains(c))
                .collect();
            outgoing.push((
                Target::All,
                protocol::encode_awareness(&AwarenessUpdate { clients }),
            ));
        }
    }

    /// Reads the log after the prefix the document holds, and the
    /// protocol's state and section ownership with it.
    pub(super) async fn catch_up(&mut self, outgoing: &mut Vec<(Target, Bytes)>) {
        let Some(node) = &mut self.node else {
            return;
        };
        node.read_at = None;
        // The head that asked for this read is within what it reads; a
        // later head check asks again if not.
        node.known_head = 0;
        if node.tainted {
            node.hole_since = None;
            self.recover(outgoing).await;
            return;
        }
        if node.cluster.storage_down() {
            // Not worth a wait on the pool: the poll loop says when it is
            // back, and every room then catches up.
            node.hole_since = None;
            return;
        }
        let cluster = node.cluster.clone();
        let Some(_turn) = cluster.catch_up_turn() else {
            metrics::counter!(metric::CLUSTER_CATCH_UPS_DEFERRED).increment(1);
            node.read_at = Some(Instant::now() + HOLE_WAIT);
            return;
        };
        let opened = node.hole_since.take();
        // With Redis up a read fills what a lost message carried, which
        // may have been a change of ownership or of the protocol's state;
        // while it is away the poll loop reads every second, and the state
        // is read again every `STATE_EVERY`.
        let read_state =
            cluster.connected() || node.state_read.is_none_or(|at| at.elapsed() >= STATE_EVERY);
        let (id, after) = (self.id, self.last_seq);
        let stored = match read_after(&self.ctx.store, id, after).await {
            Ok(Ok(stored)) => stored,
            Ok(Err(e)) => {
                warn!(meeting_id = %self.id, error = %e, "catching up from the store failed; trying again");
                self.retry_later();
                return;
            }
            Err(_) => {
                warn!(meeting_id = %self.id, "catching up from the store timed out; trying again");
                self.retry_later();
                return;
            }
        };
        metrics::counter!(metric::CLUSTER_CATCH_UPS).increment(1);
        let before = self.doc.state_vector();
        let mut top = after;
        if let Some(snapshot) = stored.snapshot {
            if !self.doc.apply_trusted(&snapshot.state) {
                error!(meeting_id = %self.id, "the stored snapshot does not apply");
            }
            top = top.max(snapshot.upto);
            self.doc_bytes = snapshot.state.len() as u64;
        }
        for (seq, data) in stored.updates {
            if !self.doc.apply_trusted(&data) {
                error!(meeting_id = %self.id, seq, "a stored update does not apply");
            }
            self.doc_bytes += data.len() as u64;
            top = top.max(seq);
        }
        if let Some(node) = &mut self.node {
            node.read_past = opened.map(|opened| (opened, after, top));
        }
        if top > after {
            self.since_snapshot += (top - after) as u64;
            self.last_seq = top;
            let diff = self.doc.diff(&before);
            outgoing.push((Target::All, protocol::encode_update(&diff)));
        }
        if read_state {
            if let Some(node) = &mut self.node {
                node.state_read = Some(Instant::now());
                node.state_due = false;
            }
            self.reload_state().await;
        } else if top > after
            && let Some(node) = &mut self.node
        {
            // Any of these may have been an agenda change or a lock.
            node.state_due = true;
        }
        self.advance(outgoing).await;
    }

    fn retry_later(&mut self) {
        if let Some(node) = &mut self.node {
            node.read_at = Some(Instant::now() + node.cluster.hole_wait());
        }
    }

    /// Whether the protocol is locked and who owns which section, as the
    /// database says now.
    pub(super) async fn reload_state(&mut self) {
        match self.ctx.dir.get_meeting(self.id).await {
            Ok(Some(meeting)) => {
                self.locked
                    .set(meeting.state != crate::meeting::ProtocolState::Draft);
            }
            Ok(None) => {}
            Err(e) => {
                warn!(meeting_id = %self.id, error = %e, "could not read the meeting's state")
            }
        }
        match load_ownership(&self.ctx, self.id).await {
            Ok(ownership) => self.ownership = ownership,
            Err(e) => warn!(meeting_id = %self.id, error = %e, "could not read section ownership"),
        }
    }

    /// Rebuilds a document that holds updates an append failed to store,
    /// once the database answers, and then gives every client the whole
    /// state and asks it for what the store lacks.
    async fn recover(&mut self, outgoing: &mut Vec<(Target, Bytes)>) {
        let Some(node) = &self.node else {
            return;
        };
        if node.cluster.storage_down() {
            self.retry_later();
            return;
        }
        match tokio::time::timeout(READ_TIMEOUT, load(&self.ctx.store, self.id)).await {
            Ok(Ok(loaded)) => {
                info!(meeting_id = %self.id, "database back: document rebuilt from the store");
                self.install(loaded);
                if let Some(node) = &mut self.node {
                    node.tainted = false;
                    node.ahead.clear();
                    node.hole_since = None;
                    node.read_at = None;
                    node.read_past = None;
                    node.refused.clear();
                }
                self.reload_state().await;
                let step_1 = protocol::encode_sync_step_1(&self.doc.state_vector());
                let state = protocol::encode_update(&self.doc.diff(&StateVector::default()));
                let peers: Vec<PeerId> = self.peers.keys().copied().collect();
                for peer in peers {
                    outgoing.push((Target::One(peer), state.clone()));
                    outgoing.push((Target::One(peer), step_1.clone()));
                }
            }
            _ => {
                node.cluster.set_storage_down(true);
                self.retry_later();
            }
        }
    }

    /// Tells a client, once per outage, that its updates are not stored.
    /// The socket stays; the update stays on the client, which sends it
    /// again when asked (sync step 1) after the database is back.
    pub(super) fn refuse_storage_down(&mut self, peer: PeerId) {
        metrics::counter!(metric::UPDATES_REJECTED, "reason" => "storage_unavailable").increment(1);
        let Some(node) = &mut self.node else {
            return;
        };
        if !node.refused.insert(peer) {
            return;
        }
        self.send(peer, protocol::encode_permission_denied(STORAGE_DOWN));
    }
}
