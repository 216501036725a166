//! A batch's commit: the updates the room applied go to the group-commit
//! writer in one piece, and only once they are stored do their broadcasts
//! (merged where they can be) and the sync replies owed go out.

use std::collections::HashSet;

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::{error, info};
use yrs::StateVector;

use super::{Reply, Room, Target};
use crate::{
    store::{CommitWriterError, Seq},
    sync::{
        peer::{PeerId, SERVER_PEER},
        protocol,
    },
    telemetry::metric,
};

/// An update applied in this batch, waiting for its commit.
pub(super) struct Staged {
    pub(super) peer: PeerId,
    pub(super) payload: Bytes,
    pub(super) broadcast: Bytes,
}

/// A merged broadcast stays below this size, so that large pastes do not
/// add up to frames that clients refuse (browsers and tungstenite cap
/// message sizes).
const MERGE_LIMIT: usize = 256 * 1024;

/// yrs' `merge_updates_v1` grows quadratically with the number of updates
/// (5,000 typing updates: ~190 ms); in chunks of 64 it stays negligible.
const MERGE_MAX_UPDATES: usize = 64;

/// Broadcast frames for a committed batch. Consecutive small updates are
/// merged into one update, encoded once and shared by every recipient, so a
/// burst costs each client one frame instead of one per update. Senders
/// receive their own updates back inside a merged frame, which Yjs ignores,
/// as it does with the reference server's echoes. An update that travels
/// alone goes out as the very frame its sender sent, to everyone else.
pub(super) fn broadcast_frames(staged: Vec<Staged>) -> Vec<(Target, Bytes)> {
    let mut frames = Vec::new();
    let mut chunk: Vec<Staged> = Vec::new();
    let mut chunk_bytes = 0;
    for update in staged {
        if !chunk.is_empty()
            && (chunk_bytes + update.payload.len() > MERGE_LIMIT
                || chunk.len() == MERGE_MAX_UPDATES)
        {
            frames.extend(chunk_frames(std::mem::take(&mut chunk)));
            chunk_bytes = 0;
        }
        chunk_bytes += update.payload.len();
        chunk.push(update);
    }
    if !chunk.is_empty() {
        frames.extend(chunk_frames(chunk));
    }
    frames
}

fn chunk_frames(mut chunk: Vec<Staged>) -> Vec<(Target, Bytes)> {
    if chunk.len() == 1 {
        let only = chunk.pop().expect("one staged update");
        return vec![(Target::AllBut(only.peer), only.broadcast)];
    }
    let first = chunk[0].peer;
    let target = if chunk.iter().all(|s| s.peer == first) {
        Target::AllBut(first)
    } else {
        Target::All
    };
    match yrs::merge_updates_v1(chunk.iter().map(|s| s.payload.as_ref())) {
        Ok(merged) => vec![(target, protocol::encode_update(&merged))],
        Err(e) => {
            // Every payload decoded once already, so this should not happen;
            // if it does, the updates still go out one by one.
            error!(error = %e, "merging a batch failed; broadcasting updates singly");
            chunk
                .into_iter()
                .map(|s| (Target::AllBut(s.peer), s.broadcast))
                .collect()
        }
    }
}

impl Room {
    /// Commits the updates applied so far in this batch (taking them, and
    /// the server edits among them, out of `staged` and `server_edits`)
    /// and queues their broadcasts; answers the server edits.
    pub(super) async fn commit_staged(
        &mut self,
        staged: &mut Vec<Staged>,
        outgoing: &mut Vec<(Target, Bytes)>,
        server_edits: &mut Vec<oneshot::Sender<Result<(), ()>>>,
        rebuild: &mut bool,
    ) {
        let staged = std::mem::take(staged);
        let mut server_edits = std::mem::take(server_edits);
        if !staged.is_empty() {
            let count = staged.len() as u64;
            let payloads = staged.iter().map(|s| s.payload.clone()).collect();
            match self.ctx.writer.append(self.id, payloads).await {
                Ok(seq) => {
                    match &mut self.node {
                        Some(node) => {
                            let first = seq - count as Seq + 1;
                            let updates = staged.iter().map(|s| s.payload.to_vec()).collect();
                            let ownership = staged.iter().any(|s| s.peer == SERVER_PEER);
                            node.cluster.set_storage_down(false);
                            node.cluster.publish_updates(
                                self.id,
                                first,
                                seq,
                                updates,
                                std::mem::take(&mut node.bindings),
                                ownership,
                                None,
                            );
                            self.record_own(first, seq);
                        }
                        None => self.last_seq = seq,
                    }
                    self.since_snapshot += count;
                    metrics::counter!(metric::UPDATES_APPLIED).increment(count);
                    outgoing.extend(broadcast_frames(staged));
                    for done in server_edits.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                }
                Err(CommitWriterError::Locked) => {
                    // Locked elsewhere (the CLI, another node): the database
                    // refused this batch. Its senders are told so; everyone
                    // else stays, and the document is rebuilt from the
                    // store, which never held these updates.
                    info!(meeting_id = %self.id, "protocol locked elsewhere; refusing the batch");
                    let senders: HashSet<PeerId> = staged
                        .iter()
                        .map(|s| s.peer)
                        .filter(|p| *p != SERVER_PEER)
                        .collect();
                    for peer in senders {
                        self.refuse_locked(peer);
                    }
                    self.locked.set(true);
                    *rebuild = true;
                }
                Err(e) if self.node.is_some() => {
                    // Several nodes: the sockets stay. Nothing of this batch
                    // is announced; its senders are told it was not stored
                    // (their clients keep it), further updates are refused
                    // until the database answers, and then the document is
                    // rebuilt from the store and everyone is asked for what
                    // it lacks (sync step 1), which brings these back.
                    error!(meeting_id = %self.id, error = %e, "updates could not be stored; refusing updates until the database is back");
                    outgoing.clear();
                    let senders: HashSet<PeerId> = staged
                        .iter()
                        .map(|s| s.peer)
                        .filter(|p| *p != SERVER_PEER)
                        .collect();
                    if let Some(node) = &mut self.node {
                        node.cluster.set_storage_down(true);
                        node.tainted = true;
                        node.bindings.clear();
                    }
                    for peer in senders {
                        self.refuse_storage_down(peer);
                    }
                }
                Err(e) => {
                    // Nothing of this batch may be announced, and the document
                    // in memory now holds updates that were never accepted:
                    // everyone resyncs against the stored state.
                    error!(meeting_id = %self.id, error = %e, "updates could not be stored; resetting room");
                    outgoing.clear();
                    self.close_all("storage unavailable, reconnect");
                    *rebuild = true;
                }
            }
        }
        for done in server_edits {
            let _ = done.send(Err(()));
        }
    }

    /// Owes `peer` the sync step 2 answering its sync step 1. While the
    /// answers wait for a rebuild (`send_replies`), a connection is owed
    /// one at most: the first state vector it sent is the smallest, so its
    /// answer covers the later ones, and a client asking over and over
    /// while the database is away cannot grow the list.
    pub(super) fn ask_for_step_2(&mut self, peer: PeerId, sv: StateVector) {
        if self.node.as_ref().is_some_and(|n| n.tainted)
            && self
                .replies
                .iter()
                .any(|(p, r)| *p == peer && matches!(r, Reply::Step2(_)))
        {
            return;
        }
        self.replies.push((peer, Reply::Step2(sv)));
    }

    /// Sends the answers owed (see `Reply`), computed from the document as
    /// it stands now that the batch is committed. While the document holds
    /// updates an append failed to store they wait: the rebuild that
    /// follows the database's return sends them.
    pub(super) fn send_replies(&mut self) {
        if self.replies.is_empty() || self.node.as_ref().is_some_and(|n| n.tainted) {
            return;
        }
        let mut frames = Vec::with_capacity(self.replies.len());
        let mut step_1 = None;
        for (peer, reply) in std::mem::take(&mut self.replies) {
            if !self.peers.contains_key(&peer) {
                continue;
            }
            let frame = match reply {
                Reply::Step1 => step_1
                    .get_or_insert_with(|| protocol::encode_sync_step_1(&self.doc.state_vector()))
                    .clone(),
                Reply::Step2(sv) => protocol::encode_sync_step_2(&self.doc.diff(&sv)),
            };
            frames.push((Target::One(peer), frame));
        }
        self.deliver(frames);
    }
}
