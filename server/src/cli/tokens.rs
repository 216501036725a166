//! `protokoll token`: issuing, revoking and listing a user's personal API
//! tokens.

use anyhow::bail;
use clap::Subcommand;
use protokoll::{
    auth::{self, secret},
    cluster::AccountEvent,
    config::ServerConfig,
    people::{TokenId, parse_name},
    store::Database,
    sync::peer::close_code,
};

use super::{announce, find_user};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a user and print it (shown only this once).
    Issue {
        username: String,
        #[arg(long)]
        name: String,
    },
    /// Revoke a token by its id.
    Revoke { id: String },
    /// List a user's tokens: id, created, revoked, name.
    List { username: String },
}

pub async fn run(
    db: &Database,
    command: TokenCommand,
    server: &ServerConfig,
) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue { username, name } => {
            let user = find_user(db, &username).await?;
            let (token_secret, hash) = secret::generate(auth::TOKEN_PREFIX);
            let token = db
                .dir
                .create_token(user.id, &parse_name(&name)?, &hash)
                .await?;
            eprintln!("token {} issued for {}", token.id, user.username.as_str());
            println!("{token_secret}");
        }
        TokenCommand::Revoke { id } => {
            let id: TokenId = id.parse()?;
            if !db.dir.revoke_token(id, None).await? {
                bail!("no live token with id {id}");
            }
            announce(
                db,
                server,
                AccountEvent::credential(
                    auth::CredentialKey::Token(id),
                    close_code::UNAUTHORIZED,
                    "token revoked",
                ),
            )
            .await;
        }
        TokenCommand::List { username } => {
            let user = find_user(db, &username).await?;
            for t in db.dir.list_tokens(user.id).await? {
                let revoked = t
                    .revoked_at
                    .map(|r| r.to_rfc3339())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{}\t{}\t{}\t{}",
                    t.id,
                    t.created_at.to_rfc3339(),
                    revoked,
                    t.name
                );
            }
        }
    }
    Ok(())
}
