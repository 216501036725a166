//! `protokoll user`: creating accounts, new passwords, confirming (vouching
//! for) accounts made through invitations, rights, the account audit log
//! and the list of users.

use std::io::Read;

use anyhow::{Context, bail};
use clap::Subcommand;
use protokoll::{
    auth::{password, secret},
    cluster::AccountEvent,
    config::ServerConfig,
    people::{NewPassword, Username, Voucher, parse_name},
    store::{Confirmation, Database, NewUser},
    sync::peer::close_code,
};

use super::{announce, find_user};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. Reads the password from standard input with
    /// `--password-stdin`; otherwise generates one and prints it.
    Create {
        username: String,
        #[arg(long)]
        name: String,
        /// The user's agency, by name.
        #[arg(long)]
        agency: Option<String>,
        /// A system administrator.
        #[arg(long)]
        admin: bool,
        /// May create meetings (administrators always may).
        #[arg(long)]
        can_create_meetings: bool,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (from standard input, or generated and printed);
    /// the user's sessions end and their API tokens are revoked (open
    /// connections close within a ping interval).
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Confirm an account made by accepting an invitation: you vouch that
    /// whoever signs in as it is who its name and agency say. Only vouched
    /// accounts may sign protocols off or reject them (as chair or
    /// justerare); accounts created by an administrator (this command
    /// line, the API, the demo) are vouched for when created. Recorded in
    /// the account's audit log.
    Confirm { username: String },
    /// The account's audit log: time, action (`create`,
    /// `accept_invitation`, `confirm`), who, via (tab-separated).
    Audit { username: String },
    /// Give (`true`) or take (`false`) a user's right to create meetings.
    SetCreator {
        username: String,
        #[arg(action = clap::ArgAction::Set)]
        allowed: bool,
    },
    /// List users: id, username, agency, rights (`admin`, `creator` or `-`,
    /// followed by `,unconfirmed` for an account made through an invitation
    /// that no administrator has confirmed yet), name.
    List,
}

/// A password from standard input, or a generated one that is printed.
fn new_password(from_stdin: bool) -> anyhow::Result<(NewPassword, bool)> {
    if from_stdin {
        let mut raw = String::new();
        std::io::stdin().read_to_string(&mut raw)?;
        Ok((
            NewPassword::parse(raw.trim_end_matches(['\n', '\r']))?,
            false,
        ))
    } else {
        let (generated, _) = secret::generate("");
        Ok((NewPassword::parse(&generated[..20])?, true))
    }
}

pub async fn run(db: &Database, command: UserCommand, server: &ServerConfig) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            username,
            name,
            agency,
            admin,
            can_create_meetings,
            password_stdin,
        } => {
            let agency = match agency {
                Some(a) => Some(
                    db.dir
                        .agency_by_name(&a)
                        .await?
                        .with_context(|| format!("no agency {a:?}"))?
                        .id,
                ),
                None => None,
            };
            let (pw, generated) = new_password(password_stdin)?;
            let shown = generated.then(|| pw.expose().to_owned());
            let user = db
                .dir
                .create_user_with(
                    NewUser {
                        username: Username::parse(&username)?,
                        display_name: parse_name(&name)?,
                        agency,
                        is_admin: admin,
                        password_hash: Some(password::hash(pw).await?),
                        vouched_by: Voucher::CommandLine,
                    },
                    can_create_meetings,
                )
                .await?;
            println!("{}", user.id);
            if let Some(pw) = shown {
                eprintln!("password for {}: {pw}", user.username.as_str());
            }
        }
        UserCommand::ResetPassword {
            username,
            password_stdin,
        } => {
            let user = find_user(db, &username).await?;
            let (pw, generated) = new_password(password_stdin)?;
            let shown = generated.then(|| pw.expose().to_owned());
            db.dir
                .set_password_hash(user.id, &password::hash(pw).await?)
                .await?;
            let sessions = db.dir.delete_sessions_of(user.id).await?;
            let tokens = db.dir.revoke_tokens_of(user.id).await?.len();
            announce(
                db,
                server,
                AccountEvent::user(user.id, close_code::UNAUTHORIZED, "password changed"),
            )
            .await;
            eprintln!(
                "{}: {sessions} sessions ended, {tokens} API tokens revoked",
                user.username.as_str()
            );
            if let Some(pw) = shown {
                eprintln!("new password for {}: {pw}", user.username.as_str());
            }
        }
        UserCommand::Confirm { username } => {
            let user = find_user(db, &username).await?;
            match db.dir.confirm_user(user.id, Voucher::CommandLine).await? {
                Confirmation::Confirmed => {
                    eprintln!(
                        "{}: confirmed; it may now sign protocols off",
                        user.username.as_str()
                    )
                }
                Confirmation::AlreadyVouched => eprintln!(
                    "{}: vouched for already; nothing changed",
                    user.username.as_str()
                ),
                Confirmation::NoSuchUser => bail!("no user {username:?}"),
            }
        }
        UserCommand::Audit { username } => {
            let user = find_user(db, &username).await?;
            for e in db.dir.account_audit(user.id).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    protokoll::finalise::rfc3339(e.at),
                    e.action,
                    e.actor_name,
                    e.via
                );
            }
        }
        UserCommand::SetCreator { username, allowed } => {
            let user = find_user(db, &username).await?;
            db.dir.set_can_create_meetings(user.id, allowed).await?;
        }
        UserCommand::List => {
            for u in db.dir.list_users().await? {
                let agency = u
                    .agency
                    .as_ref()
                    .map(|a| a.name.clone())
                    .unwrap_or_else(|| "-".into());
                let rights = if u.is_admin {
                    "admin"
                } else if u.can_create_meetings {
                    "creator"
                } else {
                    "-"
                };
                let admin = if u.may_sign_off() {
                    rights.to_owned()
                } else {
                    format!("{rights},unconfirmed")
                };
                println!(
                    "{}\t{}\t{agency}\t{admin}\t{}",
                    u.id,
                    u.username.as_str(),
                    u.display_name
                );
            }
        }
    }
    Ok(())
}
