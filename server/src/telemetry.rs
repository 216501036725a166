//! Logs and metrics. Logs are human-readable by default and JSON on request;
//! metrics are exported in Prometheus' text format at `/metrics`.
//!
//! Nothing here may log a secret: database URLs are redacted before they
//! reach a log line (see `config::DatabaseUrl`).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written (`--log-format`): for people, or as JSON
/// lines for a log collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Metric names, in one place so dashboards and code agree.
pub mod metric {
    pub const CONNECTIONS_OPEN: &str = "protokoll_connections_open";
    pub const CONNECTIONS_TOTAL: &str = "protokoll_connections_total";
    pub const CONNECTIONS_CLOSED: &str = "protokoll_connections_closed_total";
    pub const ROOMS_OPEN: &str = "protokoll_rooms_open";
    pub const ROOM_LOAD_SECONDS: &str = "protokoll_room_load_seconds";
    pub const UPDATES_RECEIVED: &str = "protokoll_updates_received_total";
    pub const UPDATES_APPLIED: &str = "protokoll_updates_applied_total";
    pub const UPDATES_REJECTED: &str = "protokoll_updates_rejected_total";
    /// Updates held back until the part of their history the server lacked
    /// arrived (`sync::waiting`).
    pub const UPDATES_WAITING: &str = "protokoll_updates_waited_total";
    pub const MESSAGES_REJECTED: &str = "protokoll_messages_rejected_total";
    pub const SLOW_CONSUMERS: &str = "protokoll_slow_consumer_disconnects_total";
    pub const BYTES_IN: &str = "protokoll_bytes_in_total";
    pub const BYTES_OUT: &str = "protokoll_bytes_out_total";
    pub const STORE_COMMIT_SECONDS: &str = "protokoll_store_commit_seconds";
    pub const STORE_COMMIT_UPDATES: &str = "protokoll_store_commit_updates";
    pub const STORE_COMMIT_FAILURES: &str = "protokoll_store_commit_failures_total";
    pub const SNAPSHOTS_WRITTEN: &str = "protokoll_snapshots_written_total";
    pub const GUARD_SECONDS: &str = "protokoll_guard_check_seconds";
    /// Cluster (with `--redis-url`): messages published to and received
    /// from the other nodes, dropped ones (by why), whether the Redis
    /// subscription is up, and log reads that filled a hole.
    pub const CLUSTER_PUBLISHED: &str = "protokoll_cluster_published_total";
    pub const CLUSTER_RECEIVED: &str = "protokoll_cluster_received_total";
    pub const CLUSTER_DROPPED: &str = "protokoll_cluster_dropped_total";
    pub const CLUSTER_CONNECTED: &str = "protokoll_cluster_redis_connected";
    pub const CLUSTER_CATCH_UPS: &str = "protokoll_cluster_catch_ups_total";
    /// Seconds the last Redis outage lasted (lost subscription to the next
    /// one), set when Redis is back.
    pub const CLUSTER_LAST_OUTAGE: &str = "protokoll_cluster_last_outage_seconds";
    /// How long a room now waits for a missing position to arrive over
    /// Redis before reading the log (follows the recent delivery lag).
    pub const CLUSTER_HOLE_WAIT_SECONDS: &str = "protokoll_cluster_hole_wait_seconds";
    /// Catch-ups put off because the node's turns were all taken.
    pub const CLUSTER_CATCH_UPS_DEFERRED: &str = "protokoll_cluster_catch_ups_deferred_total";
    /// Messages from Redis refused, by `why` (`unauthenticated`,
    /// `unknown_key`, `expired`, `replayed`, `unreadable`): see
    /// `cluster::envelope`.
    pub const CLUSTER_REFUSED: &str = "protokoll_cluster_refused_total";
    /// Batches sent again on a new connection after publishing failed.
    pub const CLUSTER_PUBLISH_RETRIES: &str = "protokoll_cluster_publish_retries_total";
    /// Account events from other nodes checked against the database.
    pub const CLUSTER_ACCOUNT_CHECKS: &str = "protokoll_cluster_account_checks_total";
    /// Cluster keys this node accepts (not retired).
    pub const CLUSTER_KEYS: &str = "protokoll_cluster_keys";
    /// A quota or flood limit tripped, by `limit` (see `sync::limits::limit`).
    pub const LIMIT_TRIPS: &str = "protokoll_limit_trips_total";
    /// Presence messages held back and replaced by a later state of the
    /// same connection (normal: y-websocket sends one per caret move).
    pub const PRESENCE_COALESCED: &str = "protokoll_presence_coalesced_total";
    /// Encoded size of meeting documents: recorded when a room opens and at
    /// every snapshot (a histogram, not a gauge per meeting, to keep the
    /// number of series bounded).
    pub const DOCUMENT_BYTES: &str = "protokoll_document_bytes";
    /// Exports rendered, by `format` (`html`, `md`, `pdf`) and `stage`:
    /// each (protocol, stage, format) once in its life, then kept.
    pub const PROTOCOL_RENDERS: &str = "protokoll_protocol_renders_total";
    /// How long rendering an export took, by `format`.
    pub const PROTOCOL_RENDER_SECONDS: &str = "protokoll_protocol_render_seconds";
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides the default
/// filter (`info`).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init(),
    }
}

/// Builds the Prometheus recorder. Installed globally at most once per
/// process; later calls (tests start many servers in one process) reuse it.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency_buckets = [
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ];
            let size_buckets = [
                1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0, 1_000.0, 5_000.0,
            ];
            // 4 KiB (a fresh protocol) to 8 MiB (the default cap) and past it.
            let document_buckets = [
                4_096.0,
                16_384.0,
                65_536.0,
                262_144.0,
                1_048_576.0,
                2_097_152.0,
                4_194_304.0,
                8_388_608.0,
                16_777_216.0,
            ];
            let buckets: [(&str, &[f64]); 4] = [
                (metric::STORE_COMMIT_SECONDS, &latency_buckets),
                (metric::ROOM_LOAD_SECONDS, &latency_buckets),
                (metric::STORE_COMMIT_UPDATES, &size_buckets),
                (metric::DOCUMENT_BYTES, &document_buckets),
            ];
            let recorder = buckets
                .into_iter()
                .try_fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
                    builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
                })
                .expect("static bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed already, in which
            // case that one keeps receiving the metrics.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
