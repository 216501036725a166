//! The commands of the `protokoll` binary, one file per group: each parses
//! its arguments and calls the services (`meetings::`, `finalise::Lifecycle`,
//! the store) that the API calls too, then prints what they answer. This
//! file holds the list of commands, the dispatch and the few helpers the
//! groups share (finding a user by name, telling the nodes of a change).

mod accounts;
mod agencies;
mod keys;
mod meetings;
mod protocol;
pub mod serve;
mod tokens;

use anyhow::Context;
use clap::Subcommand;
use protokoll::{
    cluster::AccountEvent,
    config::ServerConfig,
    demo,
    people::{User, Username},
    store::Database,
};

use self::{
    accounts::UserCommand,
    agencies::AgencyCommand,
    keys::{ClusterCommand, SigningKeyCommand},
    meetings::MeetingCommand,
    tokens::TokenCommand,
};

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Manage meetings.
    Meeting {
        #[command(subcommand)]
        command: MeetingCommand,
    },
    /// Manage agencies.
    Agency {
        #[command(subcommand)]
        command: AgencyCommand,
    },
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Issue and revoke personal API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The keys that sign verified protocols: which is in use, and
    /// retiring one.
    ///
    /// The database records which key is in use. Only a process that signs
    /// (the server, and `meeting signoff`) loads it, and it creates or
    /// records a key only when none is in use; one that would sign with
    /// another key refuses and says which key is in use.
    #[command(name = "signing-key")]
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// Create the demo council and print how to sign in.
    Demo,
    /// Several nodes: the keys that authenticate their messages.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

/// Runs an administrative command (every one but `serve`) against `db`.
pub async fn run(command: Command, db: &Database, server: &ServerConfig) -> anyhow::Result<()> {
    match command {
        Command::Serve => unreachable!("main serves"),
        Command::Demo => {
            let meeting = demo::ensure_demo(db).await?;
            print!("{}", demo::sign_in_help(&meeting));
        }
        Command::Meeting { command } => {
            meetings::run(db, command, server.signing_key_file.as_deref()).await?
        }
        Command::Agency { command } => agencies::run(db, command).await?,
        Command::User { command } => accounts::run(db, command, server).await?,
        Command::Cluster { command } => keys::cluster(db, command, server).await?,
        Command::SigningKey { command } => keys::signing(db, command).await?,
        Command::Token { command } => tokens::run(db, command, server).await?,
    }
    Ok(())
}

async fn find_user(db: &Database, username: &str) -> anyhow::Result<User> {
    db.dir
        .user_by_username(&Username::parse(username)?)
        .await?
        .with_context(|| format!("no user {username:?}"))
}

/// With `--redis-url`: tells every node to check the connections an
/// account event names against the database (which has the change
/// already), so that they close at once; without Redis, a node rechecks
/// its connections every ping interval.
async fn announce(db: &Database, server: &ServerConfig, event: AccountEvent) {
    let Some(url) = &server.redis_url else {
        return;
    };
    let announced = async {
        let keys = db
            .dir
            .cluster_keys()
            .ok_or(protokoll::cluster::ClusterError::NoPostgres)?;
        let client =
            protokoll::cluster::redis_client(url.expose(), server.redis_ca_file.as_deref())?;
        protokoll::cluster::announce(&client, &keys, event).await
    };
    if let Err(e) = announced.await {
        eprintln!(
            "warning: could not tell the nodes through Redis ({e}); open connections close \
             when their node next rechecks them"
        );
    }
}
