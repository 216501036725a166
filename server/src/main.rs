//! The `protokoll` binary: reads configuration, sets up logging, opens the
//! database and either serves or runs one of the administrative commands
//! in [`cli`].

mod cli;

use anyhow::Context;
use clap::Parser;
use protokoll::{
    config::{DatabaseArgs, LogFormat, ServerConfig},
    store, telemetry,
};

use crate::cli::Command;

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing(cli.log_format);
    let url = cli.database.resolve();
    let command = cli.command.unwrap_or(Command::Serve);
    if matches!(command, Command::Serve) {
        // Before the database is touched: a SQLite file is not even made.
        cli.server
            .check_database(store::is_postgres(url.expose()))
            .map_err(anyhow::Error::msg)?;
    }
    let db = store::connect(url.expose())
        .await
        .with_context(|| format!("opening the database at {url}"))?;

    match command {
        Command::Serve => cli::serve::serve(cli.server, db.clone(), &url.to_string()).await?,
        other => cli::run(other, &db, &cli.server).await?,
    }
    db.close().await;
    Ok(())
}
