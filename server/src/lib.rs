//! Protokoll: a real-time collaborative editor for meeting protocols.
//!
//! The library holds the whole server; `main.rs` only reads configuration
//! and calls [`run`]. Tests call the same `run` on an ephemeral port.

pub mod access;
pub mod auth;
pub mod client_addr;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod document;
pub mod finalise;
pub mod guard;
pub mod http;
pub mod live;
pub mod meeting;
pub mod meetings;
pub mod people;
pub mod secrecy;
pub mod secret;
pub mod store;
pub mod sync;
pub mod telemetry;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::info;

use crate::{
    config::ServerConfig,
    http::AppState,
    store::{CommitWriter, Database},
    sync::{RoomConfig, RoomContext, Rooms},
};

/// Serves until `shutdown` is cancelled, then stops accepting, closes every
/// WebSocket with 1001, commits and snapshots what the rooms hold, and
/// returns once everything accepted is on disk.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    db: Database,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;

    config
        .check_database(db.docs.backend() == "postgres")
        .map_err(std::io::Error::other)?;
    let cluster = match &config.redis_url {
        Some(url) => {
            let client = cluster::redis_client(url.expose(), config.redis_ca_file.as_deref())
                .map_err(std::io::Error::other)?;
            let cluster = cluster::Cluster::new(client, db.docs.clone(), db.dir.clone())
                .map_err(std::io::Error::other)?;
            // Everything a node publishes is signed: the keys first.
            cluster
                .prepare_keys()
                .await
                .map_err(std::io::Error::other)?;
            Some(cluster)
        }
        None => None,
    };

    let signer = finalise::Signer::load(&db, config.signing_key_file.as_deref())
        .await
        .map_err(std::io::Error::other)?;
    // Keys left from before the key in use was recorded (the command line
    // could add one beside the server's file key): they verify what they
    // signed, but a secret kept in the database should not outlive its use.
    for key in db
        .protocols
        .signing_keys()
        .await
        .map_err(std::io::Error::other)?
    {
        if !key.in_use && key.retired_at.is_none() {
            tracing::warn!(
                key_id = %key.key_id,
                secret_in_database = key.secret_key.is_some(),
                "a signing key that is not in use is not retired either; if nothing signs with \
                 it any more, retire it: protokoll signing-key retire {}",
                key.key_id
            );
        }
    }
    let metrics = telemetry::prometheus();
    let budget = http::sockets::descriptor_budget();
    let sockets = Arc::new(http::sockets::SocketLimits::new(
        config.max_sockets_per_user,
        config.max_sockets_per_address,
        budget.sockets,
    ));
    let proxies = Arc::new(client_addr::TrustedProxies::new(
        config.trusted_proxies.iter().copied(),
    ));
    let (writer, writer_task) = CommitWriter::spawn(db.docs.clone());
    let tracker = TaskTracker::new();
    let rooms = Rooms::new(
        RoomContext {
            store: db.docs.clone(),
            writer,
            dir: db.dir.clone(),
            config: RoomConfig {
                section_guard: config.section_guard,
                outbound_queue: sync::peer::QueueLimits {
                    frames: config.outbound_queue,
                    bytes: config.outbound_queue_bytes,
                },
                snapshot_every: config.snapshot_every,
                grace: config.room_grace(),
                limits: config.limits(),
            },
            cluster: cluster.clone(),
        },
        tracker.clone(),
        shutdown.clone(),
    );
    let live: Arc<live::LiveConnections> = Default::default();
    if let Some(cluster) = &cluster {
        let to_rooms = rooms.clone();
        let deliver = cluster::Deliver {
            remote: Box::new(
                move |meeting: meeting::MeetingId, remote: cluster::Remote| {
                    to_rooms.notify(meeting, remote)
                },
            ),
            account: Box::new(live::account::remote(db.dir.clone(), live.clone())),
        };
        cluster.start(deliver, shutdown.clone());
        info!(node = %cluster.node(), "serving as one of several nodes (Redis)");
    }
    tracker.spawn(sync::state_check::run(
        rooms.clone(),
        db.dir.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(live::recheck::run(
        db.dir.clone(),
        live.clone(),
        cluster.clone(),
        config.ping_interval(),
        shutdown.clone(),
    ));
    let state = AppState {
        db,
        rooms: rooms.clone(),
        config: Arc::new(config),
        metrics,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        live,
        cluster: cluster.clone(),
        throttle: Default::default(),
        proxies,
        sockets,
        signer: Arc::new(finalise::SignerSlot::loaded(signer)),
        verify_gate: Default::default(),
    };
    let app = http::router(state);
    // Keystrokes are tiny frames; Nagle's algorithm would hold them back.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await?;
    info!("no longer accepting connections; closing sockets and flushing");
    tracker.close();
    tracker.wait().await;
    // The closures the cluster was given hold the rooms (and with them the
    // commit writer): let go of them, so that the writer ends.
    if let Some(cluster) = &cluster {
        cluster.detach();
    }
    drop(rooms);
    let _ = writer_task.await;
    info!("shutdown complete");
    Ok(())
}
