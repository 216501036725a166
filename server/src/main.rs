//! The `protokoll` binary: reads configuration, sets up logging and either
//! serves or runs an administrative command against the database.

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use protokoll::{
    auth::{self, password, secret},
    cluster::AccountEvent,
    config::{DatabaseArgs, LogFormat, ServerConfig},
    demo,
    finalise::{Actor, Format, Lifecycle, SignerSlot},
    meeting::{MeetingDetails, MeetingId, MeetingTitle},
    meetings::{Company, Creator, Meetings, NewMeeting},
    people::{
        NewPassword, Role, Section, SectionId, SectionOwner, TokenId, Username, Voucher,
        parse_name, parse_section_number,
    },
    store::{self, Confirmation, Database, NewUser},
    sync::peer::close_code,
    telemetry,
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

#[derive(Subcommand)]
enum ClusterCommand {
    /// Add a cluster key, which nodes sign with from now on, and retire
    /// the keys older than the one they signed with until now (that one
    /// stays accepted until the next rotation). Prints the new key's id.
    /// With --redis-url the nodes are told at once; otherwise they take it
    /// within 30 s.
    RotateKey {
        /// Retire every other key at once (a key that leaked): messages
        /// signed with them are refused from now on.
        #[arg(long)]
        retire_others: bool,
    },
    /// List the cluster keys: id, created, retired (or `-`). Never the
    /// secrets.
    Keys,
}

#[derive(Subcommand)]
enum MeetingCommand {
    /// Create a meeting and print its id.
    Create(CreateMeeting),
    /// List meetings: id, creation time and title, tab-separated.
    List,
    /// Lock the protocol, acting as USER (its secretary, or an
    /// administrator); prints the protocol's hash.
    Lock(Acting),
    /// Take a locked protocol back to draft before anyone signed it off,
    /// acting as USER (its secretary, or an administrator).
    Reopen(Acting),
    /// Sign the protocol off as USER (its chair or a justerare), against
    /// the hash they were shown; prints the protocol's state.
    Signoff {
        #[command(flatten)]
        acting: Acting,
        #[arg(long)]
        hash: String,
    },
    /// Reject the protocol as USER (its chair or a justerare), with a
    /// reason; it goes back to draft.
    Reject {
        #[command(flatten)]
        acting: Acting,
        #[arg(long)]
        hash: String,
        #[arg(long)]
        reason: String,
    },
    /// The protocol's state, hash and sign-offs, as JSON.
    Status { meeting: String },
    /// The audit log: time, action, who, via, hash, reason (tab-separated).
    Audit { meeting: String },
    /// Write an export of the locked protocol (html, md, pdf or json) to
    /// FILE, or to standard output.
    Export {
        meeting: String,
        #[arg(long, default_value = "pdf")]
        format: String,
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Verify a protocol file (or, with --hash, a hash); prints the report
    /// as JSON and exits with status 1 if it does not match.
    Verify {
        file: Option<std::path::PathBuf>,
        #[arg(long)]
        hash: Option<String>,
    },
}

/// A meeting and the user a command acts for. The CLI is for operators
/// with access to the database; what it does is recorded in the audit log
/// under the named user, marked `via: cli`, and a sign-off records that
/// it was made from the command line.
#[derive(Args)]
struct Acting {
    meeting: String,
    /// The username to act as.
    #[arg(long = "as")]
    user: String,
}

#[derive(Args)]
struct CreateMeeting {
    title: String,
    /// Date, YYYY-MM-DD.
    #[arg(long)]
    date: Option<String>,
    /// Start time, HH:MM.
    #[arg(long)]
    time: Option<String>,
    #[arg(long, default_value = "")]
    place: String,
    /// The body that meets.
    #[arg(long, default_value = "")]
    body: String,
    /// An agenda item: `NUMBER|TITLE|OWNER`, OWNER being `secretary`,
    /// `agency:NAME` or `user:USERNAME`. Repeat for each item, in order.
    #[arg(long = "section")]
    sections: Vec<String>,
    /// A participant: `USERNAME=ROLE` (secretary, chair, justerare, member).
    #[arg(long = "participant")]
    participants: Vec<String>,
}

#[derive(Subcommand)]
enum AgencyCommand {
    /// Create an agency and print its id.
    Create { name: String },
    /// List agencies: id and name, tab-separated.
    List,
}

#[derive(Subcommand)]
enum UserCommand {
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

#[derive(Subcommand)]
enum SigningKeyCommand {
    /// List the keys: id, created, status (`in-use`, `retired <time>` or
    /// `not-in-use`) and where the secret is (`database`, `file`, or
    /// `erased` once retired), tab-separated.
    List,
    /// Retire a key: it never signs again, its secret is erased from the
    /// database (a key file is left to you to delete), and what it signed
    /// still verifies (`/verify` says the key was retired). After the key
    /// in use is retired, the next process that signs records its own key
    /// (the server's `--signing-key-file`, created if missing, or a new
    /// key in the database); restart running servers so that they load it.
    Retire { key_id: String },
}

#[derive(Subcommand)]
enum TokenCommand {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing(cli.log_format);
    let url = cli.database.resolve();
    if matches!(cli.command, None | Some(Command::Serve)) {
        // Before the database is touched: a SQLite file is not even made.
        cli.server
            .check_database(store::is_postgres(url.expose()))
            .map_err(anyhow::Error::msg)?;
    }
    let db = store::connect(url.expose())
        .await
        .with_context(|| format!("opening the database at {url}"))?;

    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.server, db.clone(), &url.to_string()).await?,
        Command::Demo => {
            let meeting = demo::ensure_demo(&db).await?;
            print!("{}", demo::sign_in_help(&meeting));
        }
        Command::Meeting { command } => {
            meeting_command(&db, command, cli.server.signing_key_file.as_deref()).await?
        }
        Command::Agency { command } => match command {
            AgencyCommand::Create { name } => {
                let agency = db.dir.create_agency(&parse_name(&name)?).await?;
                println!("{}", agency.id);
            }
            AgencyCommand::List => {
                for a in db.dir.list_agencies().await? {
                    println!("{}\t{}", a.id, a.name);
                }
            }
        },
        Command::User { command } => user_command(&db, command, &cli.server).await?,
        Command::Cluster { command } => cluster_command(&db, command, &cli.server).await?,
        Command::SigningKey { command } => signing_key_command(&db, command).await?,
        Command::Token { command } => match command {
            TokenCommand::Issue { username, name } => {
                let user = find_user(&db, &username).await?;
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
                    &db,
                    &cli.server,
                    AccountEvent::credential(
                        auth::CredentialKey::Token(id),
                        close_code::UNAUTHORIZED,
                        "token revoked",
                    ),
                )
                .await;
            }
            TokenCommand::List { username } => {
                let user = find_user(&db, &username).await?;
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
        },
    }
    db.close().await;
    Ok(())
}

async fn find_user(db: &Database, username: &str) -> anyhow::Result<protokoll::people::User> {
    db.dir
        .user_by_username(&Username::parse(username)?)
        .await?
        .with_context(|| format!("no user {username:?}"))
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

async fn cluster_command(
    db: &Database,
    command: ClusterCommand,
    server: &ServerConfig,
) -> anyhow::Result<()> {
    let keys = db
        .dir
        .cluster_keys()
        .context("several nodes need a Postgres database; this one has no cluster keys")?;
    match command {
        ClusterCommand::RotateKey { retire_others } => {
            let before = keys.active().await?;
            let rotation = keys.rotate(retire_others).await?;
            println!("{}", rotation.new);
            eprintln!(
                "cluster key {} added; nodes sign with it from now on{}",
                rotation.new,
                match rotation.previous {
                    Some(previous) =>
                        format!(" (key {previous} stays accepted until the next rotation)"),
                    None => String::new(),
                }
            );
            if !rotation.retired.is_empty() {
                eprintln!("retired: {:?}", rotation.retired);
            }
            if let Some(url) = &server.redis_url {
                // Signed with a key the nodes hold: the one they signed
                // with until now, unless it was just retired.
                let signer = match rotation.previous {
                    Some(previous) => before.into_iter().find(|k| k.id == previous),
                    None => None,
                };
                let signer = match signer {
                    Some(key) => (key.id, key.secret),
                    None => {
                        let newest = keys.active().await?.into_iter().next();
                        let key = newest.context("the new key is not active")?;
                        (key.id, key.secret)
                    }
                };
                let client = protokoll::cluster::redis_client(
                    url.expose(),
                    server.redis_ca_file.as_deref(),
                )?;
                if let Err(e) = protokoll::cluster::announce_keys(&client, signer).await {
                    eprintln!(
                        "warning: could not tell the nodes through Redis ({e}); they read the \
                         keys again within 30 s"
                    );
                }
            }
        }
        ClusterCommand::Keys => {
            let active = keys.active().await?;
            for key in keys.list().await? {
                let retired = key
                    .retired_at
                    .map(|r| r.to_rfc3339())
                    .unwrap_or_else(|| "-".into());
                let signing = if active.first().is_some_and(|a| a.id == key.id) {
                    "\tsigning"
                } else {
                    ""
                };
                println!(
                    "{}\t{}\t{retired}{signing}",
                    key.id,
                    key.created_at.to_rfc3339()
                );
            }
        }
    }
    Ok(())
}

async fn user_command(
    db: &Database,
    command: UserCommand,
    server: &ServerConfig,
) -> anyhow::Result<()> {
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

async fn actor(db: &Database, acting: &Acting) -> anyhow::Result<(MeetingId, Actor)> {
    let meeting: MeetingId = acting.meeting.parse()?;
    let user = find_user(db, &acting.user).await?;
    let role = db.dir.role(meeting, user.id).await?;
    if role.is_none() && !user.is_admin {
        bail!("{} is not a participant of meeting {meeting}", acting.user);
    }
    Ok((
        meeting,
        Actor {
            user,
            role,
            via: "cli",
            signed_in_with: protokoll::auth::SignIn::command_line(),
        },
    ))
}

async fn meeting_command(
    db: &Database,
    command: MeetingCommand,
    key_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    // Loaded only if a sign-off completes a justering: reading commands
    // never create or record a signing key.
    let signer = SignerSlot::lazy(db.clone(), key_file.map(std::path::Path::to_path_buf));
    let lifecycle = Lifecycle {
        db,
        signer: &signer,
        rooms: None,
    };
    let print_state = |view: &protokoll::finalise::ProtocolView| {
        match &view.locked {
            Some(locked) => println!("{}\t{}", view.state, locked.hash),
            None => println!("{}", view.state),
        };
    };
    match command {
        MeetingCommand::Lock(acting) => {
            let (meeting, actor) = actor(db, &acting).await?;
            print_state(&lifecycle.lock(meeting, &actor).await?);
        }
        MeetingCommand::Reopen(acting) => {
            let (meeting, actor) = actor(db, &acting).await?;
            print_state(&lifecycle.reopen(meeting, &actor).await?);
        }
        MeetingCommand::Signoff { acting, hash } => {
            let (meeting, actor) = actor(db, &acting).await?;
            print_state(&lifecycle.signoff(meeting, &actor, hash.trim()).await?);
        }
        MeetingCommand::Reject {
            acting,
            hash,
            reason,
        } => {
            let (meeting, actor) = actor(db, &acting).await?;
            print_state(
                &lifecycle
                    .reject(meeting, &actor, hash.trim(), &reason)
                    .await?,
            );
        }
        MeetingCommand::Status { meeting } => {
            let view = lifecycle.view(meeting.parse()?).await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        MeetingCommand::Audit { meeting } => {
            for e in db.protocols.audit(meeting.parse()?).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    protokoll::finalise::rfc3339(e.at),
                    e.action,
                    e.actor_name,
                    e.via,
                    e.hash.unwrap_or_default(),
                    e.reason.unwrap_or_default().replace('\n', " ")
                );
            }
        }
        MeetingCommand::Export {
            meeting,
            format,
            output,
        } => {
            let format = Format::parse(&format).context("a format is html, md, pdf or json")?;
            let export = lifecycle.export(meeting.parse()?, format).await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &export.bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "{} ({} bytes, sha256 {})",
                        path.display(),
                        export.bytes.len(),
                        export.sha256
                    );
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&export.bytes)?;
                }
            }
        }
        MeetingCommand::Verify { file, hash } => {
            let report = match (file, hash) {
                (Some(path), None) => {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    lifecycle.verify_file(&bytes).await?
                }
                (None, Some(hash)) => lifecycle.verify_hash(&hash).await?,
                _ => bail!("give a file or --hash, not both"),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.matches {
                std::process::exit(1);
            }
        }
        other => plain_meeting_command(db, other).await?,
    }
    Ok(())
}

async fn plain_meeting_command(db: &Database, command: MeetingCommand) -> anyhow::Result<()> {
    match command {
        MeetingCommand::List => {
            for m in db.dir.list_meetings(None).await? {
                println!(
                    "{}\t{}\t{}",
                    m.id,
                    m.created_at.to_rfc3339(),
                    m.title.as_str()
                );
            }
        }
        MeetingCommand::Create(args) => {
            // The same checks as the API's, so that nothing the API would
            // refuse gets in through the command line. Everything is
            // checked before anything is created.
            let details = MeetingDetails::parse(
                &args.body,
                args.date.as_deref(),
                args.time.as_deref(),
                &args.place,
            )?;
            let creator = Creator::operator();
            let mut participants = Vec::new();
            for p in &args.participants {
                let (username, role) = p
                    .split_once('=')
                    .context("a participant is USERNAME=ROLE")?;
                participants.push((find_user(db, username).await?, role.parse::<Role>()?));
            }
            let company = Company::gather(&creator, participants)?;
            let mut sections = Vec::new();
            for raw in &args.sections {
                let [number, title, owner] = raw.splitn(3, '|').collect::<Vec<_>>()[..] else {
                    bail!("a section is NUMBER|TITLE|OWNER, got {raw:?}");
                };
                let owner = match owner.split_once(':') {
                    _ if owner == "secretary" => SectionOwner::Secretary,
                    Some(("agency", name)) => {
                        let a = db
                            .dir
                            .agency_by_name(name)
                            .await?
                            .with_context(|| format!("no agency {name:?}"))?;
                        SectionOwner::Agency { agency_id: a.id }
                    }
                    Some(("user", name)) => SectionOwner::User {
                        user_id: find_user(db, name).await?.id,
                    },
                    _ => bail!("a section owner is secretary, agency:NAME or user:USERNAME"),
                };
                let title = parse_name(title)?;
                let section = Section {
                    id: SectionId::from_title(&title),
                    number: parse_section_number(number)?,
                    title,
                    owner,
                };
                sections.push((section, &[][..]));
            }
            let new = NewMeeting {
                title: MeetingTitle::parse(&args.title)?,
                details,
                company,
                // Without sections the document stays untouched.
                agenda: (!sections.is_empty()).then_some(sections),
            };
            let meeting = Meetings::offline(db).create(&creator, new).await?;
            println!("{}", meeting.id);
        }
        _ => unreachable!("handled by meeting_command"),
    }
    Ok(())
}

async fn signing_key_command(db: &Database, command: SigningKeyCommand) -> anyhow::Result<()> {
    match command {
        SigningKeyCommand::List => {
            for k in db.protocols.signing_keys().await? {
                let status = match (k.retired_at, k.in_use) {
                    (Some(at), _) => format!("retired {}", protokoll::finalise::rfc3339(at)),
                    (None, true) => "in-use".to_owned(),
                    (None, false) => "not-in-use".to_owned(),
                };
                let secret = match (&k.secret_key, k.retired_at) {
                    (Some(_), _) => "database",
                    (None, Some(_)) => "erased",
                    (None, None) => "file",
                };
                println!(
                    "{}\t{}\t{status}\t{secret}",
                    k.key_id,
                    protokoll::finalise::rfc3339(k.created_at)
                );
            }
        }
        SigningKeyCommand::Retire { key_id } => {
            let key_id = key_id.trim();
            if !db.protocols.retire_signing_key(key_id).await? {
                bail!("no signing key {key_id:?} that is not retired already");
            }
            eprintln!(
                "signing key {key_id} retired: it signs no more, what it signed still verifies; \
                 restart running servers so that they record and load a key in use"
            );
        }
    }
    Ok(())
}

async fn serve(config: ServerConfig, db: Database, url: &str) -> anyhow::Result<()> {
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
