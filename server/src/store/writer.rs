//! Group commit: one task owns all appends to the update log. Rooms hand it
//! their accepted updates and wait; it writes whatever has queued up since its
//! last commit in a single transaction, so many concurrent writers share one
//! fsync instead of paying one each.
//!
//! Snapshots go through the same task, after the appends queued with them.
//! SQLite has one writer at a time: a snapshot written from elsewhere would
//! hold the write lock while a group commit waits in SQLite's busy handler,
//! which sleeps in steps of 1 to 100 ms: tens of milliseconds of tail
//! latency for every client. Deleting the log rows a snapshot covers is the
//! expensive part of compaction, and nothing waits for it (loading reads
//! only the log after the snapshot): it runs when no commit is waiting, at
//! least every `FORCE_COMPACTION_AFTER` rounds, and for everything left
//! when the writer stops.

use std::{collections::HashMap, time::Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, error, info_span};

use super::{AppendBatch, Appended, DynStore, Seq};
use crate::{meeting::MeetingId, telemetry::metric};

/// How many rooms' batches one commit may carry. Bounds the transaction size
/// while letting a commit absorb a burst across hundreds of meetings.
const MAX_BATCHES_PER_COMMIT: usize = 1_024;

/// Queue of appends waiting for the writer. When full, rooms wait: that is the
/// back-pressure from a slow disk to the clients.
const QUEUE_CAPACITY: usize = 4_096;

/// Under sustained load the queue is never empty; compact one meeting's
/// log after this many commit rounds anyway.
const FORCE_COMPACTION_AFTER: u32 = 64;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitWriterError {
    #[error("the update log could not be written: {0}")]
    Failed(String),
    #[error("the commit writer has stopped")]
    Stopped,
    /// The meeting's protocol is locked: nothing of the batch was stored.
    #[error("the protocol is locked")]
    Locked,
}

enum Job {
    Append {
        batch: AppendBatch,
        done: oneshot::Sender<Result<Seq, CommitWriterError>>,
    },
    Snapshot(SnapshotJob),
}

struct SnapshotJob {
    meeting: MeetingId,
    state: Vec<u8>,
    upto: Seq,
    done: oneshot::Sender<Result<(), CommitWriterError>>,
}

/// Handle to the group-commit task. Cheap to clone. The task ends when every
/// handle is dropped, after committing what was queued.
#[derive(Clone)]
pub struct CommitWriter {
    jobs: mpsc::Sender<Job>,
}

impl CommitWriter {
    pub fn spawn(store: DynStore) -> (Self, tokio::task::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(run(store, rx).instrument(info_span!("commit_writer")));
        (Self { jobs }, task)
    }

    /// Appends `updates` to `meeting`'s log; returns once they are durable,
    /// with the sequence number of the last one, or `Locked` (nothing
    /// stored) if the meeting's protocol is locked.
    pub async fn append(
        &self,
        meeting: MeetingId,
        updates: Vec<Bytes>,
    ) -> Result<Seq, CommitWriterError> {
        self.submit(|done| Job::Append {
            batch: AppendBatch { meeting, updates },
            done,
        })
        .await
    }

    /// Writes a snapshot covering the log up to `upto` (already committed).
    /// The log rows it covers are deleted later (see the module docs).
    pub async fn snapshot(
        &self,
        meeting: MeetingId,
        state: Vec<u8>,
        upto: Seq,
    ) -> Result<(), CommitWriterError> {
        self.submit(|done| {
            Job::Snapshot(SnapshotJob {
                meeting,
                state,
                upto,
                done,
            })
        })
        .await
    }

    /// Queues the job `job` makes around its answer's sender, and waits
    /// for the answer.
    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, CommitWriterError>>) -> Job,
    ) -> Result<T, CommitWriterError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(job(done))
            .await
            .map_err(|_| CommitWriterError::Stopped)?;
        wait.await.map_err(|_| CommitWriterError::Stopped)?
    }
}

async fn run(store: DynStore, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCHES_PER_COMMIT);
    let mut snapshots = Vec::new();
    // Meeting -> log position its latest snapshot covers, not yet compacted.
    let mut compactions: HashMap<MeetingId, Seq> = HashMap::new();
    let mut rounds_since_compaction = 0u32;
    while rx.recv_many(&mut jobs, MAX_BATCHES_PER_COMMIT).await > 0 {
        // Let every task that is ready run once before committing: rooms
        // that were woken by the last commit, or that have frames waiting,
        // queue their batches now and share this commit instead of each
        // paying for one of their own. Costs one pass of the run queue.
        tokio::task::yield_now().await;
        while jobs.len() < MAX_BATCHES_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut batches = Vec::with_capacity(jobs.len());
        let mut waiters = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            match job {
                Job::Append { batch, done } => {
                    batches.push(batch);
                    waiters.push(done);
                }
                Job::Snapshot(snapshot) => snapshots.push(snapshot),
            }
        }
        if !batches.is_empty() {
            commit(&store, batches, waiters).await;
        }
        for SnapshotJob {
            meeting,
            state,
            upto,
            done,
        } in snapshots.drain(..)
        {
            let result = store.write_snapshot(meeting, &state, upto).await;
            if result.is_ok() {
                let covered = compactions.entry(meeting).or_default();
                *covered = (*covered).max(upto);
            }
            let _ = done.send(result.map_err(|e| CommitWriterError::Failed(e.to_string())));
        }
        rounds_since_compaction += 1;
        if !compactions.is_empty()
            && (rx.is_empty() || rounds_since_compaction >= FORCE_COMPACTION_AFTER)
        {
            rounds_since_compaction = 0;
            if let Some(&meeting) = compactions.keys().next() {
                let upto = compactions.remove(&meeting).unwrap_or_default();
                compact(&store, meeting, upto).await;
            }
        }
    }
    for (meeting, upto) in compactions {
        compact(&store, meeting, upto).await;
    }
}

async fn compact(store: &DynStore, meeting: MeetingId, upto: Seq) {
    // A failure only leaves rows that loading skips; a later snapshot of
    // the meeting covers them again.
    if let Err(e) = store.compact_log(meeting, upto).await {
        error!(meeting_id = %meeting, error = %e, "compacting the update log failed");
    }
}

async fn commit(
    store: &DynStore,
    batches: Vec<AppendBatch>,
    waiters: Vec<oneshot::Sender<Result<Seq, CommitWriterError>>>,
) {
    let updates: usize = batches.iter().map(|b| b.updates.len()).sum();
    let started = Instant::now();
    let result = store.append_to_drafts(&batches).await;
    metrics::histogram!(metric::STORE_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::histogram!(metric::STORE_COMMIT_UPDATES).record(updates as f64);
    match result {
        Ok(outcomes) => {
            for (waiter, outcome) in waiters.into_iter().zip(outcomes) {
                let _ = waiter.send(match outcome {
                    Appended::Stored(seq) => Ok(seq),
                    Appended::Locked => Err(CommitWriterError::Locked),
                });
            }
        }
        Err(e) => {
            error!(error = %e, batches = batches.len(), updates, "group commit failed");
            metrics::counter!(metric::STORE_COMMIT_FAILURES).increment(1);
            let failure = CommitWriterError::Failed(e.to_string());
            for waiter in waiters {
                let _ = waiter.send(Err(failure.clone()));
            }
        }
    }
}
