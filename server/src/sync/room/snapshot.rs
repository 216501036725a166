//! A room's snapshots: the document written whole in the background once
//! enough updates are logged (or to measure it again after a refusal at
//! the size cap), and once more before the room unloads.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tracing::{debug, error};
use yrs::StateVector;

use super::Room;
use crate::{
    store::{CommitWriterError, Seq},
    telemetry::metric,
};

/// Least time between two snapshots started only to measure the document
/// again after a refusal at the size cap: each re-encodes the document.
const REMEASURE_EVERY: Duration = Duration::from_secs(5);

impl Room {
    /// Starts a snapshot in the background once enough updates have been
    /// logged since the last one.
    pub(super) fn maybe_snapshot(&mut self) {
        // A document that holds what the store refused is never written.
        if self.broken || self.node.as_ref().is_some_and(|n| n.tainted) {
            return;
        }
        if let Some(task) = &self.snapshot_task
            && !task.is_finished()
        {
            return;
        }
        let remeasure = self.remeasure
            && self.since_snapshot > 0
            && self
                .last_remeasure
                .is_none_or(|at| at.elapsed() >= REMEASURE_EVERY);
        if self.since_snapshot < self.ctx.config.snapshot_every.max(1) && !remeasure {
            return;
        }
        if remeasure {
            self.last_remeasure = Some(Instant::now());
        }
        self.collect_finished_snapshot();
        self.snapshot_task = Some(self.start_snapshot());
    }

    fn start_snapshot(&mut self) -> JoinHandle<Result<Seq, CommitWriterError>> {
        let state = self.doc.diff(&StateVector::default());
        self.doc_bytes = state.len() as u64;
        self.deleted_since_snapshot = false;
        self.remeasure = false;
        metrics::histogram!(metric::DOCUMENT_BYTES).record(state.len() as f64);
        let upto = self.last_seq;
        let writer = self.ctx.writer.clone();
        let id = self.id;
        self.since_snapshot = 0;
        tokio::spawn(async move {
            let bytes = state.len();
            writer.snapshot(id, state, upto).await?;
            metrics::counter!(metric::SNAPSHOTS_WRITTEN).increment(1);
            debug!(meeting_id = %id, upto, bytes, "snapshot written");
            Ok(upto)
        })
    }

    fn collect_finished_snapshot(&mut self) {
        if let Some(task) = self.snapshot_task.take_if(|t| t.is_finished()) {
            // A finished task's result is ready; polling it does not wait.
            let result = futures::FutureExt::now_or_never(task);
            self.record_snapshot(result.unwrap_or_else(|| {
                Ok(Err(CommitWriterError::Failed(
                    "snapshot result lost".into(),
                )))
            }));
        }
    }

    fn record_snapshot(
        &mut self,
        result: Result<Result<Seq, CommitWriterError>, tokio::task::JoinError>,
    ) {
        match result {
            Ok(Ok(upto)) => self.snapshot_upto = self.snapshot_upto.max(upto),
            Ok(Err(e)) => {
                error!(meeting_id = %self.id, error = %e, "snapshot failed; the log keeps every update")
            }
            Err(e) => error!(meeting_id = %self.id, error = %e, "snapshot task failed"),
        }
    }

    pub(super) async fn await_snapshot(&mut self) {
        if let Some(task) = self.snapshot_task.take() {
            let result = task.await;
            self.record_snapshot(result);
        }
    }

    /// Waits for any snapshot in flight, then folds whatever the log holds
    /// beyond the latest snapshot into a new one.
    pub(super) async fn compact_now(&mut self) {
        self.await_snapshot().await;
        if self.broken || self.node.as_ref().is_some_and(|n| n.tainted) {
            return;
        }
        if self.last_seq > self.snapshot_upto {
            let task = self.start_snapshot();
            let result = task.await;
            self.record_snapshot(result);
        }
    }
}
