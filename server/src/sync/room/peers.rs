//! A room's connections: admitting and removing them, queueing frames to
//! them without ever waiting (a client that does not read is closed), and
//! which person each client id belongs to.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tracing::warn;

use super::{Peer, Room, Target};
use crate::{
    people::UserId,
    sync::{
        limits::{count_trip, limit},
        peer::{CloseReason, PeerId, PeerLink, Queued, close_code},
        protocol,
        waiting::Waiting,
    },
    telemetry::metric,
};

impl Room {
    /// Adds a joining connection unless the meeting already has as many as
    /// allowed; that one is closed with 4429 and a reason.
    pub(super) fn admit(&mut self, link: PeerLink) -> Option<PeerId> {
        let max = self.ctx.config.limits.max_connections_per_meeting;
        if self.peers.len() >= max {
            count_trip(limit::MEETING_CONNECTIONS);
            warn!(
                meeting_id = %self.id,
                user_id = %link.principal.user_id,
                max,
                "connection refused: the meeting has as many connections as allowed"
            );
            link.closer.close(CloseReason::new(
                close_code::TOO_MANY,
                format!("this meeting already has {max} connections"),
            ));
            return None;
        }
        Some(self.add_peer(link))
    }

    fn add_peer(&mut self, link: PeerLink) -> PeerId {
        let peer = link.id;
        self.owners.person_joined(link.principal.user_id);
        self.peers.insert(
            peer,
            Peer {
                link,
                clients: HashSet::new(),
                spoken: HashSet::new(),
                asked: 0,
                waiting: Waiting::default(),
            },
        );
        peer
    }

    /// Queues frames without waiting. Clients whose queue is full are
    /// disconnected (and their presence removed, which may in turn find
    /// more full queues).
    pub(super) fn deliver(&mut self, outgoing: Vec<(Target, Bytes)>) {
        let mut slow = Vec::new();
        for (target, frame) in outgoing {
            match target {
                Target::One(peer) => {
                    if let Some(p) = self.peers.get(&peer)
                        && !try_queue(p, &frame)
                    {
                        slow.push(peer);
                    }
                }
                Target::All | Target::AllBut(_) => {
                    let skip = match target {
                        Target::AllBut(sender) => Some(sender),
                        _ => None,
                    };
                    for (&id, p) in &self.peers {
                        if Some(id) != skip && !try_queue(p, &frame) {
                            slow.push(id);
                        }
                    }
                }
            }
        }
        for peer in slow {
            if self.peers.contains_key(&peer) {
                metrics::counter!(metric::SLOW_CONSUMERS).increment(1);
                warn!(meeting_id = %self.id, peer, "client is not reading; disconnecting it");
                self.close_peer(
                    peer,
                    CloseReason::new(
                        close_code::TRY_AGAIN_LATER,
                        "too far behind: outgoing queue full, reconnect to resync",
                    ),
                );
            }
        }
    }

    pub(super) fn send(&mut self, peer: PeerId, frame: Bytes) {
        self.deliver(vec![(Target::One(peer), frame)]);
    }

    pub(super) fn close_peer(&mut self, peer: PeerId, reason: CloseReason) {
        if let Some(p) = self.peers.get(&peer) {
            p.link.closer.close(reason);
        }
        self.remove_peer(peer);
    }

    /// Closes every connection with an internal error (1011).
    pub(super) fn close_all(&mut self, reason: &'static str) {
        let peers: Vec<_> = self.peers.keys().copied().collect();
        for peer in peers {
            self.close_peer(peer, CloseReason::new(close_code::INTERNAL_ERROR, reason));
        }
    }

    pub(super) fn remove_peer(&mut self, peer: PeerId) {
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        // What it held back goes with it: it was never applied.
        self.waiting.remove(&peer);
        if let Some(node) = &mut self.node {
            node.refused.remove(&peer);
        }
        for client in &p.clients {
            if self.speakers.get(client) == Some(&peer) {
                self.speakers.remove(client);
            }
        }
        let user = p.link.principal.user_id;
        if !self
            .peers
            .values()
            .any(|q| q.link.principal.user_id == user)
        {
            self.owners.person_left(user);
        }
        if let Some(removal) = self.awareness.remove(p.clients) {
            let frame = protocol::encode_awareness(&removal);
            if let Some(node) = &self.node {
                node.cluster.publish_presence(self.id, &frame, None);
            }
            self.deliver(vec![(Target::AllBut(peer), frame)]);
        }
    }
}

fn try_queue(peer: &Peer, frame: &Bytes) -> bool {
    // A connection already gone is not slow; its Leave message is on the way.
    !matches!(peer.link.try_queue(frame), Queued::Full)
}

/// How long a person keeps their client ids after their last connection to
/// the room ends: a client that reconnects within it (y-websocket keeps its
/// id across reconnects) continues under its id, and nobody else can take it
/// over meanwhile.
const RELEASE_AFTER: Duration = Duration::from_secs(10 * 60);

/// Which person each client id (document and presence) belongs to. The
/// first person to write or speak under an id holds it.
#[derive(Debug, Default)]
pub(super) struct ClientOwners {
    by_client: HashMap<u64, (UserId, Option<Instant>)>,
}

impl ClientOwners {
    pub(super) fn get(&self, client: u64) -> Option<UserId> {
        match self.by_client.get(&client)? {
            (_, Some(since)) if since.elapsed() >= RELEASE_AFTER => None,
            (user, _) => Some(*user),
        }
    }

    pub(super) fn bind(&mut self, client: u64, user: UserId) {
        self.by_client.insert(client, (user, None));
    }

    fn person_joined(&mut self, user: UserId) {
        for (owner, idle) in self.by_client.values_mut() {
            if *owner == user {
                *idle = None;
            }
        }
    }

    /// The person's last connection to the room has ended: their ids are
    /// released once `RELEASE_AFTER` has passed.
    fn person_left(&mut self, user: UserId) {
        let now = Instant::now();
        self.by_client.retain(|_, (owner, idle)| {
            if *owner == user {
                *idle = Some(now);
            }
            idle.is_none_or(|since| now.duration_since(since) < RELEASE_AFTER)
        });
    }
}
