//! The `protokoll` binary: reads configuration, sets up logging and either
//! serves or runs an administrative command against the database.

use anyhow::Context;
use clap::{Parser, Subcommand};
use protokoll::{
    config::{DatabaseArgs, LogFormat, ServerConfig},
    demo,
    meeting::MeetingTitle,
    store, telemetry,
};
use tokio_util::sync::CancellationToken;
use tracing::info;

#[derive(Parser)]
#[command(
    name = "protokoll",
    version,
    about = "Real-time collaborative meeting protocols"
)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,

    /// Log format: `human` or `json`.
    #[arg(
        long,
        env = "PROTOKOLL_LOG_FORMAT",
        value_enum,
        default_value_t,
        global = true
    )]
    log_format: LogFormat,

    #[command(flatten)]
    server: ServerConfig,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Manage meetings.
    Meeting {
        #[command(subcommand)]
        command: MeetingCommand,
    },
}

#[derive(Subcommand)]
enum MeetingCommand {
    /// Create a meeting and print its id.
    Create { title: String },
    /// List meetings: id, creation time and title, tab-separated.
    List,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing(cli.log_format);
    let url = cli.database.resolve();
    let store = store::connect(url.expose())
        .await
        .with_context(|| format!("opening the database at {url}"))?;

    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.server, store, &url.to_string()).await?,
        Command::Meeting {
            command: MeetingCommand::Create { title },
        } => {
            let title = MeetingTitle::parse(&title)?;
            let meeting = store.create_meeting(title).await?;
            println!("{}", meeting.id);
        }
        Command::Meeting {
            command: MeetingCommand::List,
        } => {
            for m in store.list_meetings().await? {
                println!(
                    "{}\t{}\t{}",
                    m.id,
                    m.created_at.to_rfc3339(),
                    m.title.as_str()
                );
            }
        }
    }
    Ok(())
}

async fn serve(config: ServerConfig, store: store::DynStore, url: &str) -> anyhow::Result<()> {
    if config.demo {
        let meeting = demo::ensure_demo(&store).await?;
        info!(meeting_id = %meeting.id, "demo meeting ready");
        println!("demo meeting: {} ({})", meeting.title.as_str(), meeting.id);
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    info!(%addr, database = url, backend = store.backend(), "listening");
    // A plain line on stdout for people and for scripts that wait for it.
    println!("protokoll listening on http://{addr}");

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    protokoll::run(listener, config, store.clone(), shutdown).await?;
    store.close().await;
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
