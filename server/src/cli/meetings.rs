//! `protokoll meeting`: the list of meeting commands, creating and listing
//! meetings. The protocol's lifecycle (lock, reopen, sign-off, reject,
//! status, audit, export, verify) is in [`super::protocol`].

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use protokoll::{
    meeting::{MeetingDetails, MeetingTitle},
    meetings::{Company, Creator, Meetings, NewMeeting},
    people::{Role, Section, SectionId, SectionOwner, parse_name, parse_section_number},
    store::Database,
};

use super::{find_user, protocol};

#[derive(Subcommand)]
pub enum MeetingCommand {
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
pub struct Acting {
    pub meeting: String,
    /// The username to act as.
    #[arg(long = "as")]
    pub user: String,
}

#[derive(Args)]
pub struct CreateMeeting {
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

pub async fn run(
    db: &Database,
    command: MeetingCommand,
    key_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match command {
        MeetingCommand::List => list(db).await,
        MeetingCommand::Create(args) => create(db, args).await,
        lifecycle => protocol::run(db, lifecycle, key_file).await,
    }
}

async fn list(db: &Database) -> anyhow::Result<()> {
    for m in db.dir.list_meetings(None).await? {
        println!(
            "{}\t{}\t{}",
            m.id,
            m.created_at.to_rfc3339(),
            m.title.as_str()
        );
    }
    Ok(())
}

async fn create(db: &Database, args: CreateMeeting) -> anyhow::Result<()> {
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
    Ok(())
}
