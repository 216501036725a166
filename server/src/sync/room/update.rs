//! A client's update on its way in: refused at once (a locked protocol,
//! the store away, the size cap, the section guard), held back while it
//! waits for the part of its history the document lacks, or checked,
//! applied and staged for the batch's commit.

use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, error, warn};

use super::{Room, Staged};
use crate::{
    access::Principal,
    guard,
    sync::{
        guarded::Rejected,
        limits::{count_trip, limit},
        peer::{CloseReason, PeerId, close_code},
        protocol::{self, IncomingUpdate},
        waiting,
    },
    telemetry::metric,
};

impl Room {
    /// A client's update: refused at once when the protocol is locked or
    /// the store is away, held back while it waits for the part it builds
    /// on, else checked and applied (and staged for the commit).
    pub(super) fn receive(
        &mut self,
        peer: PeerId,
        update: IncomingUpdate,
        since: Option<Instant>,
        staged: &mut Vec<Staged>,
        rebuild: &mut bool,
    ) {
        if self.locked.get() {
            self.refuse_if_changing(peer, &update);
        } else if self
            .node
            .as_ref()
            .is_some_and(|n| n.tainted || n.cluster.storage_down())
            && !update.update.is_empty()
        {
            self.refuse_storage_down(peer);
        } else if let Some((payload, broadcast)) = self.apply(peer, update, since, rebuild) {
            staged.push(Staged {
                peer,
                payload,
                broadcast,
            });
        }
    }

    /// Lets through every waiting update whose missing part the document
    /// now holds, in each connection's arrival order, until none is left:
    /// one let through may be what another waits for.
    pub(super) fn release_waiting(&mut self, staged: &mut Vec<Staged>, rebuild: &mut bool) {
        if self.waiting.is_empty() {
            return;
        }
        // Each round lets at least one through, so this ends; a waiting
        // update let through and held again is not let through again in
        // the same round (its missing part is not there).
        loop {
            let mut released = false;
            let peers: Vec<PeerId> = self.waiting.iter().copied().collect();
            for peer in peers {
                while let Some(held) = self
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.waiting.take_ready(&self.doc))
                {
                    released = true;
                    match IncomingUpdate::decode(held.payload, held.sync_step_2) {
                        Ok(update) => self.receive(peer, update, Some(held.since), staged, rebuild),
                        // It decoded when it arrived.
                        Err(e) => {
                            error!(meeting_id = %self.id, peer, error = %e, "a waiting update no longer decodes")
                        }
                    }
                }
                if self.peers.get(&peer).is_none_or(|p| p.waiting.is_empty()) {
                    self.waiting.remove(&peer);
                }
            }
            if !released || self.waiting.is_empty() {
                break;
            }
        }
    }

    /// Refuses the connections whose updates waited `waiting::MAX_WAIT`
    /// for a part that never came.
    pub(super) fn expire_waiting(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .waiting
            .iter()
            .copied()
            .filter(|peer| self.peers.get(peer).is_some_and(|p| p.waiting.expired(now)))
            .collect();
        for peer in expired {
            let Some(principal) = self.peers.get(&peer).map(|p| p.link.principal.clone()) else {
                continue;
            };
            let reason = guard::Refusal::Unfilled(waiting::EXPIRED);
            self.refuse(peer, &principal, &reason);
        }
    }

    /// Checks and applies one update. Returns the log payload and the
    /// broadcast frame if it was applied. One refused as building on what
    /// the document lacks waits for it instead, where it may
    /// (`may_wait`); `since` is when it first arrived, if it waited before.
    fn apply(
        &mut self,
        peer: PeerId,
        incoming: IncomingUpdate,
        since: Option<Instant>,
        rebuild: &mut bool,
    ) -> Option<(Bytes, Bytes)> {
        if incoming.update.is_empty() {
            // An empty sync step 2 ("I have nothing you lack"): nothing to do.
            return None;
        }
        let principal = self.peers[&peer].link.principal.clone();
        // The size cap, before anything is applied: judged on the update as
        // sent. Updates that only delete are let through (their size is
        // bounded by what the document holds, and they are how a full
        // meeting is cleaned up).
        let adds = !incoming.structure.blocks.is_empty();
        let deletes = !incoming.structure.deletes.is_empty();
        if adds && self.over_cap(incoming.payload.len()) {
            self.refuse_too_large(peer, &principal);
            return None;
        }
        let owners = &self.owners;
        let outcome = self.doc.apply_client(
            &principal,
            &self.ownership,
            |client| owners.get(client),
            incoming.update,
            &incoming.structure,
            self.ctx.config.section_guard,
        );
        match outcome {
            Ok(applied) => {
                if applied.ignored {
                    debug!(meeting_id = %self.id, peer, "formatting clean-up outside the sender's sections ignored");
                    metrics::counter!(metric::UPDATES_REJECTED, "reason" => "formatting_cleanup_ignored")
                        .increment(1);
                }
                for client in applied.new_clients {
                    self.owners.bind(client, principal.user_id);
                    if let Some(node) = &mut self.node {
                        node.bindings.push((client, principal.user_id));
                    }
                }
                // `None`: nothing new (a sync step 2 of what the server has).
                let payload = Bytes::from(applied.canonical?);
                if adds && self.over_cap(payload.len()) {
                    // What yrs integrated encodes larger than what was sent
                    // and would pass the cap: it is in the document now,
                    // so refuse it and rebuild from the store.
                    self.refuse_too_large(peer, &principal);
                    *rebuild = true;
                    return None;
                }
                self.doc_bytes += payload.len() as u64;
                self.deleted_since_snapshot |= deletes;
                let broadcast = protocol::encode_update(&payload);
                Some((payload, broadcast))
            }
            Err(Rejected::Refused(guard::Refusal::Gap | guard::Refusal::UnknownItems))
                if let Some(missing) = self.may_wait(peer, &incoming.structure) =>
            {
                let p = self.peers.get_mut(&peer).expect("checked by may_wait");
                let held = p.waiting.hold(
                    incoming.payload,
                    incoming.sync_step_2,
                    missing,
                    since.unwrap_or_else(Instant::now),
                );
                match held {
                    Ok(()) => {
                        self.waiting.insert(peer);
                        metrics::counter!(metric::UPDATES_WAITING).increment(1);
                        debug!(meeting_id = %self.id, peer, "update waits for the part of its history the server lacks");
                    }
                    Err(refusal) => self.refuse(peer, &principal, &refusal),
                }
                None
            }
            Err(rejected) => {
                *rebuild |= rejected.must_rebuild();
                match rejected {
                    Rejected::Refused(refusal) | Rejected::RefusedAfterApplying(refusal) => {
                        self.refuse(peer, &principal, &refusal)
                    }
                    Rejected::Invalid(detail) => {
                        warn!(meeting_id = %self.id, peer, error = %detail, "update does not apply");
                        metrics::counter!(metric::UPDATES_REJECTED, "reason" => "invalid")
                            .increment(1);
                        self.close_peer(
                            peer,
                            CloseReason::new(
                                close_code::INVALID_PAYLOAD,
                                "update could not be applied",
                            ),
                        );
                    }
                }
                None
            }
        }
    }

    /// What a refused update builds on that the document lacks, if it may
    /// wait for it: only on a connection that has been asked for what the
    /// room lacks and has not answered yet, or whose updates the store
    /// could not take and that will be asked once it is back. Anywhere
    /// else the missing part is not coming.
    fn may_wait(&self, peer: PeerId, structure: &guard::Decoded) -> Option<guard::Missing> {
        let asked = self.peers.get(&peer)?.asked > 0
            || self
                .node
                .as_ref()
                .is_some_and(|n| n.refused.contains(&peer));
        if !asked {
            return None;
        }
        self.doc.missing(structure)
    }

    /// Whether `more` bytes would take the document past its size cap.
    fn over_cap(&self, more: usize) -> bool {
        self.doc_bytes.saturating_add(more as u64) > self.ctx.config.limits.max_document_bytes
    }

    /// Refuses an update at the size cap: the auth message with the reason
    /// and close code 4413. If deletions since the last snapshot may have
    /// made the document smaller than counted, it is measured again.
    fn refuse_too_large(&mut self, peer: PeerId, principal: &Principal) {
        let cap = self.ctx.config.limits.max_document_bytes;
        warn!(
            meeting_id = %self.id,
            user_id = %principal.user_id,
            document_bytes = self.doc_bytes,
            limit_bytes = cap,
            "update refused: the document would exceed its size limit"
        );
        count_trip(limit::DOCUMENT_SIZE);
        metrics::counter!(metric::UPDATES_REJECTED, "reason" => "too_large").increment(1);
        let reason = format!(
            "the meeting's document would exceed its size limit ({})",
            human_bytes(cap)
        );
        let message = format!("permission denied: {reason}");
        let close = CloseReason::new(close_code::TOO_LARGE, reason)
            .with_last_frame(protocol::encode_permission_denied(&message));
        self.close_peer(peer, close);
        if self.deleted_since_snapshot {
            self.remeasure = true;
        }
    }

    /// Refuses a client's update: the auth message and close code 4403.
    fn refuse(&mut self, peer: PeerId, principal: &Principal, refusal: &guard::Refusal) {
        warn!(
            meeting_id = %self.id,
            user_id = %principal.user_id,
            agency = principal.agency.as_deref().unwrap_or("-"),
            reason = %refusal,
            "update refused by the section guard"
        );
        metrics::counter!(metric::UPDATES_REJECTED, "reason" => "forbidden").increment(1);
        let message = format!("permission denied: {refusal}");
        let reason = CloseReason::new(close_code::FORBIDDEN, message.clone())
            .with_last_frame(protocol::encode_permission_denied(&message));
        self.close_peer(peer, reason);
    }
}

/// `8388608` as `8 MiB`, for people.
fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    const KIB: u64 = 1024;
    if n >= MIB && n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n % KIB == 0 {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}
