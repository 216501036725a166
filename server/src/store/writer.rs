//! Group commit: one task owns all appends to the update log. Rooms hand it
//! their accepted updates and wait; it writes whatever has queued up since its
//! last commit in a single transaction, so many concurrent writers share one
//! fsync instead of paying one each.

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, error, info_span};

use super::{AppendBatch, DynStore, Seq};
use crate::{meeting::MeetingId, telemetry::metric};

/// How many rooms' batches one commit may carry. Bounds the transaction size
/// while letting a commit absorb a burst across hundreds of meetings.
const MAX_BATCHES_PER_COMMIT: usize = 1_024;

/// Queue of appends waiting for the writer. When full, rooms wait: that is the
/// back-pressure from a slow disk to the clients.
const QUEUE_CAPACITY: usize = 4_096;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitWriterError {
    #[error("the update log could not be written: {0}")]
    Failed(String),
    #[error("the commit writer has stopped")]
    Stopped,
}

struct Job {
    batch: AppendBatch,
    done: oneshot::Sender<Result<Seq, CommitWriterError>>,
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
    /// with the sequence number of the last one.
    pub async fn append(
        &self,
        meeting: MeetingId,
        updates: Vec<Bytes>,
    ) -> Result<Seq, CommitWriterError> {
        let (done, wait) = oneshot::channel();
        let job = Job {
            batch: AppendBatch { meeting, updates },
            done,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| CommitWriterError::Stopped)?;
        wait.await.map_err(|_| CommitWriterError::Stopped)?
    }
}

async fn run(store: DynStore, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCHES_PER_COMMIT);
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
        let (batches, waiters): (Vec<_>, Vec<_>) =
            jobs.drain(..).map(|j| (j.batch, j.done)).unzip();
        let updates: usize = batches.iter().map(|b| b.updates.len()).sum();
        let started = Instant::now();
        let result = store.append_updates(&batches).await;
        metrics::histogram!(metric::STORE_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(metric::STORE_COMMIT_UPDATES).record(updates as f64);
        match result {
            Ok(seqs) => {
                for (waiter, seq) in waiters.into_iter().zip(seqs) {
                    let _ = waiter.send(Ok(seq));
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
}
