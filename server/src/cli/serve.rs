//! `protokoll serve` (the default command): binds the port, prints where
//! it listens and serves until interrupted or terminated.

use anyhow::Context;
use protokoll::{config::ServerConfig, demo, store::Database};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub async fn serve(config: ServerConfig, db: Database, url: &str) -> anyhow::Result<()> {
    if config.demo {
        let meeting = demo::ensure_demo(&db).await?;
        info!(meeting_id = %meeting.id, "demo council ready");
        print!("{}", demo::sign_in_help(&meeting));
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    info!(%addr, database = url, backend = db.docs.backend(), "listening");
    // A plain line on stdout for people and for scripts that wait for it.
    println!("protokoll listening on http://{addr}");

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    protokoll::run(listener, config, db, shutdown).await?;
    Ok(())
}

async fn signal_shutdown(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!("interrupted; shutting down"),
        _ = term => info!("terminated; shutting down"),
    }
    token.cancel();
}
