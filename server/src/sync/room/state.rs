//! The protocol's state in the room: a lock or reopening committed by a
//! job (`Transition`) or found made elsewhere (`RoomMsg::StateElsewhere`),
//! applied and announced; and updates to a locked protocol refused (4423).

use bytes::Bytes;
use tracing::{error, info, warn};
use yrs::ClientID;

use super::{LOCKED_REASON, Room, Target, Transition, load::read_after};
use crate::{
    sync::{
        peer::{CloseReason, PeerId, close_code},
        protocol::{self, IncomingUpdate},
    },
    telemetry::metric,
};

impl Room {
    /// Applies a committed state change: the update the change appended is
    /// applied here and broadcast to everyone, so clients learn of it live.
    pub(super) fn apply_transition(&mut self, transition: Transition) {
        self.locked.set(transition.locked);
        let Some((update, seq)) = transition.update else {
            if let Some(node) = &self.node {
                node.cluster.publish_locked(self.id, transition.locked);
            }
            return;
        };
        if !self.doc.apply_trusted(&update) {
            error!(meeting_id = %self.id, "the state change does not decode or apply");
        }
        self.doc_bytes += update.len() as u64;
        match &self.node {
            Some(node) => {
                node.cluster.publish_updates(
                    self.id,
                    seq,
                    seq,
                    vec![update.clone()],
                    Vec::new(),
                    false,
                    Some(transition.locked),
                );
                self.record_own(seq, seq);
            }
            None => self.last_seq = self.last_seq.max(seq),
        }
        self.since_snapshot += 1;
        self.deliver(vec![(Target::All, protocol::encode_update(&update))]);
    }

    /// The database says the protocol is in another state than this room
    /// holds (see `RoomMsg::StateElsewhere`). Whoever changed it appended
    /// the announcement (`protocol` map) to the log in the same
    /// transaction, so reading the log past `last_seq` brings it; clients
    /// get it as one update, as they would a change made through the room.
    pub(super) async fn follow_state_elsewhere(&mut self, outgoing: &mut Vec<(Target, Bytes)>) {
        if self.node.is_some() {
            // Several nodes: their catch-up reads the log in turns.
            self.catch_up(outgoing).await;
            self.reload_state().await;
            return;
        }
        let (id, after) = (self.id, self.last_seq);
        let stored = match read_after(&self.ctx.store, id, after).await {
            Ok(Ok(stored)) => stored,
            Ok(Err(e)) => {
                // The next check asks again: the states still differ.
                warn!(meeting_id = %id, error = %e, "reading a change made elsewhere failed");
                return;
            }
            Err(_) => {
                warn!(meeting_id = %id, "reading a change made elsewhere timed out");
                return;
            }
        };
        let before = self.doc.state_vector();
        let mut top = after;
        let snapshot = stored.snapshot.map(|s| (s.upto, s.state));
        for (seq, update) in snapshot.into_iter().chain(stored.updates) {
            if !self.doc.apply_trusted(&update) {
                error!(meeting_id = %id, seq, "an update stored elsewhere does not apply");
            }
            self.doc_bytes += update.len() as u64;
            self.since_snapshot += 1;
            top = top.max(seq);
        }
        if top > after {
            info!(meeting_id = %id, after, upto = top, "read a change of the protocol's state made elsewhere");
            self.last_seq = top;
            outgoing.push((
                Target::All,
                protocol::encode_update(&self.doc.diff(&before)),
            ));
        }
        self.reload_state().await;
    }

    /// An update to a locked protocol: refused (4423) if it would change
    /// anything. Clients that reconnect send their whole delete set in sync
    /// step 2, which changes nothing and is let through.
    pub(super) fn refuse_if_changing(&mut self, peer: PeerId, update: &IncomingUpdate) {
        let snapshot = yrs::ReadTxn::snapshot(&yrs::Transact::transact(self.doc.doc()));
        let new_blocks = update.structure.blocks.iter().any(|b| {
            b.clock.saturating_add(b.len) > snapshot.state_map.get(&ClientID::new(b.client))
        });
        let new_deletes = {
            let mut deletes = yrs::IdSet::new();
            for (client, clock, len) in &update.structure.deletes {
                deletes.insert(yrs::ID::new(ClientID::new(*client), *clock), *len);
            }
            !deletes.diff(&snapshot.delete_set).is_empty()
        };
        if new_blocks || new_deletes {
            self.refuse_locked(peer);
        }
    }

    /// Tells a client that the protocol is locked and closes it (4423).
    pub(super) fn refuse_locked(&mut self, peer: PeerId) {
        metrics::counter!(metric::UPDATES_REJECTED, "reason" => "locked").increment(1);
        let message = format!("permission denied: {LOCKED_REASON}");
        let reason = CloseReason::new(close_code::PROTOCOL_LOCKED, LOCKED_REASON)
            .with_last_frame(protocol::encode_permission_denied(&message));
        self.close_peer(peer, reason);
    }
}
