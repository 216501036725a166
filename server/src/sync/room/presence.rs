//! Presence (awareness) from a room's clients: stamped with the sender's
//! identity, held to the ids the sender may speak for and to the size and
//! count limits, and passed on to everyone else.

use std::collections::HashMap;

use tracing::warn;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};

use super::{Room, Target};
use crate::{
    access::Principal,
    sync::{
        awareness,
        limits::{count_trip, limit},
        peer::{CloseReason, PeerId, close_code},
        protocol::{self, IncomingAwareness},
    },
};

impl Room {
    /// Presence cannot be forged: a client id belongs to the first
    /// connection that announces it (until that connection ends), and the
    /// `user` in every state is replaced by the connection's authenticated
    /// identity.
    pub(super) fn on_awareness(&mut self, peer: PeerId, incoming: IncomingAwareness) {
        let Some(principal) = self.peers.get(&peer).map(|p| p.link.principal.clone()) else {
            return;
        };
        let mut accepted = HashMap::new();
        for (client, entry) in incoming.update.clients {
            if self
                .owners
                .get(client.get())
                .is_some_and(|owner| owner != principal.user_id)
            {
                continue;
            }
            let json = if &*entry.json == "null" {
                entry.json
            } else if entry.json.len() > self.ctx.config.limits.max_presence_bytes {
                // Too large already; refused below without parsing it.
                entry.json
            } else {
                awareness::stamp_identity(&entry.json, &principal).into()
            };
            accepted.insert(
                client,
                AwarenessUpdateEntry {
                    clock: entry.clock,
                    json,
                },
            );
        }
        let limits = self.ctx.config.limits;
        if let Some(client) = accepted
            .iter()
            .find(|(_, e)| e.json.len() > limits.max_presence_bytes)
            .map(|(c, _)| *c)
        {
            self.refuse_presence_size(peer, &principal, client.get());
            return;
        }
        let spoken = self.peers.get(&peer).map(|p| &p.spoken);
        let new_ids = accepted
            .iter()
            .filter(|(c, e)| self.awareness.would_change(**c, e))
            .filter(|(c, _)| !spoken.is_some_and(|s| s.contains(*c)))
            .count();
        if spoken.map_or(0, |s| s.len()) + new_ids > limits.max_presence_clients {
            count_trip(limit::PRESENCE_CLIENTS);
            warn!(
                meeting_id = %self.id,
                user_id = %principal.user_id,
                max = limits.max_presence_clients,
                "connection closed: presence for too many client ids"
            );
            self.close_peer(
                peer,
                CloseReason::new(
                    close_code::TOO_MANY,
                    format!(
                        "presence for more than {} client ids on one connection",
                        limits.max_presence_clients
                    ),
                ),
            );
            return;
        }
        let update = AwarenessUpdate { clients: accepted };
        let changed = self.awareness.apply(&update);
        if changed.is_empty() {
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.clients.extend(changed.iter().copied());
            p.spoken.extend(changed.iter().copied());
        }
        for client in &changed {
            self.owners.bind(client.get(), principal.user_id);
            // A reconnecting client speaks for its id on its new connection;
            // the old one, when it finally ends, must not remove it.
            if let Some(previous) = self.speakers.insert(*client, peer)
                && previous != peer
                && let Some(p) = self.peers.get_mut(&previous)
            {
                p.clients.remove(client);
            }
        }
        let clients = update
            .clients
            .into_iter()
            .filter(|(c, _)| changed.contains(c))
            .collect();
        let frame = protocol::encode_awareness(&AwarenessUpdate { clients });
        if let Some(node) = &self.node {
            node.cluster
                .publish_presence(self.id, &frame, Some(principal.user_id));
        }
        self.deliver(vec![(Target::AllBut(peer), frame)]);
    }

    /// Closes a connection whose presence state is too large (4413).
    fn refuse_presence_size(&mut self, peer: PeerId, principal: &Principal, client: u64) {
        let max = self.ctx.config.limits.max_presence_bytes;
        count_trip(limit::PRESENCE_SIZE);
        warn!(
            meeting_id = %self.id,
            user_id = %principal.user_id,
            client,
            max,
            "connection closed: presence state too large"
        );
        let reason = format!("presence state larger than {} bytes", max);
        let message = format!("permission denied: {reason}");
        self.close_peer(
            peer,
            CloseReason::new(close_code::TOO_LARGE, reason)
                .with_last_frame(protocol::encode_permission_denied(&message)),
        );
    }
}
